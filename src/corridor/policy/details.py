"""RFC 9396 authorization_details: parsing, validation against each type's JSON Schema, and the
words the consent page shows for each entry.

The types are declared in configuration (``authorization_details_types``; built in:
policy/detail_types.py; more as JSON files); each schema is compiled once and each template
parsed once (:class:`DetailTypes`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jinja2.sandbox import SandboxedEnvironment

from corridor.core import strictjson
from corridor.core.json_limits import JSONLimitError
from corridor.policy.detail_types import BUILTIN

MAX_ENTRIES = 16
#: Issue 13 B5: the largest authorization_details document (16 generous entries), in bytes.
MAX_SIZE = 32 * 1024


class AuthorizationDetailsError(ValueError):
    """RFC 9396 5: ``invalid_authorization_details``."""


def parse_authorization_details(text: str, supported_types: Collection[str]) -> list[dict[str, Any]]:
    """RFC 9396 2: a JSON array of objects, each with a supported string ``type``."""
    try:
        value = strictjson.loads(text, max_size=MAX_SIZE)
    except JSONLimitError as exc:
        raise AuthorizationDetailsError(f"authorization_details: {exc}") from exc
    except ValueError as exc:
        raise AuthorizationDetailsError("authorization_details is not JSON") from exc
    if not isinstance(value, list) or not value:
        raise AuthorizationDetailsError("authorization_details must be a non-empty JSON array")
    if len(value) > MAX_ENTRIES:
        raise AuthorizationDetailsError("too many authorization_details entries")
    for entry in value:
        validate_entry(entry, supported_types)
    return value


def validate_entry(entry: Any, supported_types: Collection[str]) -> None:
    if not isinstance(entry, dict):
        raise AuthorizationDetailsError("each authorization_details entry must be a JSON object")
    kind = entry.get("type")
    if not isinstance(kind, str):
        raise AuthorizationDetailsError("each authorization_details entry needs a string type")
    if kind not in supported_types:
        raise AuthorizationDetailsError(f"authorization_details type {kind!r} is not supported")
    for common in ("locations", "actions", "datatypes", "privileges"):
        if common in entry and not (
            isinstance(entry[common], list) and all(isinstance(x, str) for x in entry[common])
        ):
            raise AuthorizationDetailsError(f"{common} must be an array of strings (RFC 9396 2.2)")
    if "identifier" in entry and not isinstance(entry["identifier"], str):
        raise AuthorizationDetailsError("identifier must be a string (RFC 9396 2.2)")


@dataclass(frozen=True)
class DetailType:
    """One authorization_details type: its schema (compiled) and its words (a template)."""

    name: str
    schema: Mapping[str, Any]
    template: str
    validator: Any
    render: Any

    @property
    def version(self) -> str:
        """Names exactly what was shown: a hash of the schema and the template (issue 8 records
        it with each consent, so a later reader knows which words the user saw)."""
        body = json.dumps({"schema": self.schema, "template": self.template}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


#: Plain text out (the page escapes it once, like every other value); sandboxed, because a
#: deployment's template is configuration, not code.
_TEMPLATES = SandboxedEnvironment(autoescape=False)


def detail_type(name: str, schema: Mapping[str, Any], template: str) -> DetailType:
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return DetailType(name, schema, template, validator, _TEMPLATES.from_string(template))


class DetailTypes:
    """The supported types, by name (``authorization_details_types_supported``)."""

    def __init__(self, types: Iterable[DetailType]) -> None:
        self.types = {t.name: t for t in types}

    @classmethod
    def configured(cls, names: Collection[str], files: Iterable[str] = ()) -> DetailTypes:
        """The built-in types named in ``names``, plus the types defined in ``files`` (JSON files
        with ``type``, ``schema`` and ``template``)."""
        declared = {
            name: detail_type(name, spec["schema"], spec["template"]) for name, spec in BUILTIN.items()
        }
        for file in files:
            spec = json.loads(Path(file).read_text())
            declared[spec["type"]] = detail_type(spec["type"], spec["schema"], spec["template"])
        unknown = [n for n in names if n not in declared]
        if unknown:
            raise ValueError(f"authorization_details types without a schema: {', '.join(unknown)}")
        return cls(declared[n] for n in names)

    def names(self) -> list[str]:
        return list(self.types)

    def parse(self, text: str) -> list[dict[str, Any]]:
        """RFC 9396 2 and 5: structure, known types, then each entry against its type's schema."""
        entries = parse_authorization_details(text, self.types)
        for index, entry in enumerate(entries):
            error = next(iter(self.types[entry["type"]].validator.iter_errors(entry)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(entry)"
                raise AuthorizationDetailsError(
                    f"authorization_details[{index}] ({entry['type']}) at {where}: {_short(error.message)}"
                )
        return entries

    def describe(self, entry: Mapping[str, Any]) -> str:
        """The entry in words, as plain text (pages escape it)."""
        kind = self.types.get(str(entry.get("type")))
        if kind is None:
            return json.dumps(entry, sort_keys=True)
        return str(kind.render.render(**entry))

    def version(self, name: str) -> str | None:
        kind = self.types.get(name)
        return kind.version if kind else None


def _short(message: str, limit: int = 160) -> str:
    """jsonschema messages quote the offending value; keep the description small."""
    return message if len(message) <= limit else message[: limit - 1] + "…"
