"""RFC 9396 authorization_details: parsing, validation against each type's JSON Schema, and the
words the consent page shows for each entry.

The types are declared in configuration (``authorization_details_types``; built in:
policy/detail_types.py; more as JSON files); each schema is compiled once and each template
parsed once (:class:`DetailTypes`).

Issue 13 E3, E4: the strings of the built-in types may not carry control or bidirectional
formatting characters (refused at PAR); for every type, built in or not, the consent page gets
the words from an autoescaped template in which each value is isolated in its own ``<bdi>``
element (HTML 4.6.21), so no value can inject markup or reorder the sentence around it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from corridor.core import strictjson
from corridor.core.json_limits import JSONLimitError
from corridor.core.text import has_unsafe_characters
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


def find_unsafe_text(value: Any, path: str = "") -> str | None:
    """Issue 13 E3: where (a /-path) a string of ``value``, member names included, carries a
    control or bidirectional formatting character; None when none does. Iterative (no recursion)."""
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            if has_unsafe_characters(item):
                return where or "(entry)"
        elif isinstance(item, dict):
            for name, member in item.items():
                if has_unsafe_characters(name):
                    return where or "(entry)"
                pending.append((f"{where}/{name}" if where else name, member))
        elif isinstance(item, list):
            pending.extend((f"{where}/{i}" if where else str(i), member) for i, member in enumerate(item))
    return None


@dataclass(frozen=True)
class DetailType:
    """One authorization_details type: its schema (compiled) and its words (a template, parsed
    twice: as plain text for the record and autoescaped, with isolated values, for the page)."""

    name: str
    schema: Mapping[str, Any]
    template: str
    validator: Any
    render: Any
    render_html: Any
    #: Issue 18: the consent page's headline for an entry of this type (the words after "Allow
    #: <client> to"), as (plain text, autoescaped) templates; None when the type has none.
    headline: tuple[Any, Any] | None = None
    #: Issue 13 E3: refuse control and bidirectional formatting characters in every string.
    plain_text_only: bool = False
    headline_source: str | None = None

    @property
    def version(self) -> str:
        """Names exactly what was shown: a hash of the schema and the template (issue 8 records
        it with each consent, so a later reader knows which words the user saw)."""
        words: dict[str, Any] = {"schema": self.schema, "template": self.template}
        if self.headline_source is not None:
            words["headline"] = self.headline_source
        body = json.dumps(words, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def isolate(value: Any) -> Markup:
    """Issue 13 E3, E4: one value of a sentence, escaped and in its own ``<bdi>`` (so a U+202E in
    it reorders nothing outside it, and ``</bdi><script>`` in it is text)."""
    return Markup("<bdi>%s</bdi>") % escape("" if value is None else value)


#: Sandboxed, because a deployment's template is configuration, not code. The page's words come
#: from the autoescaped environment (issue 13 E4), each value isolated by ``finalize``; the
#: record's words (what the user read, as plain text) from the plain one.
_HTML_TEMPLATES = SandboxedEnvironment(autoescape=True, finalize=isolate)
_TEXT_TEMPLATES = SandboxedEnvironment(autoescape=False)


def detail_type(
    name: str,
    schema: Mapping[str, Any],
    template: str,
    *,
    plain_text_only: bool = False,
    headline: str | None = None,
) -> DetailType:
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return DetailType(
        name,
        schema,
        template,
        validator,
        _TEXT_TEMPLATES.from_string(template),
        _HTML_TEMPLATES.from_string(template),
        None
        if headline is None
        else (_TEXT_TEMPLATES.from_string(headline), _HTML_TEMPLATES.from_string(headline)),
        plain_text_only,
        headline,
    )


class DetailTypes:
    """The supported types, by name (``authorization_details_types_supported``)."""

    def __init__(self, types: Iterable[DetailType]) -> None:
        self.types = {t.name: t for t in types}

    @classmethod
    def configured(cls, names: Collection[str], files: Iterable[str] = ()) -> DetailTypes:
        """The built-in types named in ``names``, plus the types defined in ``files`` (JSON files
        with ``type``, ``schema`` and ``template``)."""
        declared = {
            name: detail_type(
                name, spec["schema"], spec["template"], plain_text_only=True, headline=spec.get("headline")
            )
            for name, spec in BUILTIN.items()
        }
        for file in files:
            spec = json.loads(Path(file).read_text())
            declared[spec["type"]] = detail_type(
                spec["type"], spec["schema"], spec["template"], headline=spec.get("headline")
            )
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
            kind = self.types[entry["type"]]
            error = next(iter(kind.validator.iter_errors(entry)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(entry)"
                raise AuthorizationDetailsError(
                    f"authorization_details[{index}] ({entry['type']}) at {where}: {_short(error.message)}"
                )
            unsafe = find_unsafe_text(entry) if kind.plain_text_only else None
            if unsafe is not None:
                raise AuthorizationDetailsError(
                    f"authorization_details[{index}] ({entry['type']}) at {unsafe}: "
                    "control and bidirectional formatting characters are not allowed"
                )
        return entries

    def describe(self, entry: Mapping[str, Any]) -> str:
        """The entry in words, as plain text (for the record of what was shown)."""
        kind = self.types.get(str(entry.get("type")))
        if kind is None:
            return json.dumps(entry, sort_keys=True)
        return str(kind.render.render(**entry))

    def describe_html(self, entry: Mapping[str, Any]) -> Markup:
        """The entry in words for the page: autoescaped, each value in its own ``<bdi>``
        (issue 13 E3, E4)."""
        kind = self.types.get(str(entry.get("type")))
        if kind is None:
            return isolate(json.dumps(entry, sort_keys=True))
        # The autoescaped environment's output is HTML already (every value escaped, in a <bdi>).
        return Markup(kind.render_html.render(**entry))  # noqa: S704

    def headline(self, entry: Mapping[str, Any]) -> tuple[str, Markup] | None:
        """Issue 18: what the consent page's heading asks for this entry, after "Allow <client>
        to", as (plain text, HTML with each value in its own ``<bdi>``); None without a headline."""
        kind = self.types.get(str(entry.get("type")))
        if kind is None or kind.headline is None:
            return None
        text, html = kind.headline
        return str(text.render(**entry)), Markup(html.render(**entry))  # noqa: S704 - autoescaped

    def version(self, name: str) -> str | None:
        kind = self.types.get(name)
        return kind.version if kind else None


def _short(message: str, limit: int = 160) -> str:
    """jsonschema messages quote the offending value; keep the description small."""
    return message if len(message) <= limit else message[: limit - 1] + "…"
