"""The production configuration skeleton of ``corridor init`` (issue 18): every setting of
:class:`~corridor.server.settings.Settings`, its default and what it does, generated from the
class itself so it never drifts. A setting's text is its ``Field(description=...)``, else its
``#:`` comment lines in settings.py (a field right below another without its own comment
shares that one, as ``tls_cert_file`` and ``tls_key_file`` do)."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from pathlib import Path
from typing import Any

from corridor.server import settings as settings_module
from corridor.server.settings import Settings

#: Written empty, to be filled in: ``corridor serve`` refuses to start until they are.
REQUIRED = {
    "issuer": "REQUIRED: the public https URL of this server, e.g. https://as.example.com.",
    "tls_cert_file": "REQUIRED in production unless a TLS proxy on this host is in front (proxy "
    "mode: trusted_proxies set, host and mtls_host on loopback; deploy/nginx).",
}
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
WIDTH = 98


def setting_descriptions() -> dict[str, str]:
    """What each setting does, by name, from its description or its ``#:`` comment."""
    source = inspect.getsource(settings_module)
    lines = source.splitlines()
    tree = ast.parse(source)
    (body,) = (n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    found: dict[str, str] = {}
    previous: tuple[str, int] | None = None  # the field before and its last line
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous = None
            continue
        name = node.target.id
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        field = Settings.model_fields.get(name)
        if field is not None and field.description:
            found[name] = field.description
        elif comment:
            found[name] = " ".join(comment)
        elif previous is not None and previous[1] == node.lineno - 1:
            found[name] = found[previous[0]]
        previous = (name, node.end_lineno or node.lineno)
    return {name: found.get(name, "") for name in Settings.model_fields}


def toml_value(value: Any) -> str:
    """A default as TOML (strings, numbers, booleans, paths and lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ")


def render_skeleton(data_dir: Path) -> str:
    """``corridor.toml`` for production: every setting at its default (``data_dir`` as given),
    the required ones empty, the unset ones commented out."""
    descriptions = setting_descriptions()
    out = [
        "# Corridor configuration, written by `corridor init` from the settings Corridor has",
        "# (corridor.server.settings.Settings): every setting, its default and what it does.",
        "# Precedence: this file < CORRIDOR_<NAME> environment variables < command-line flags.",
        "# Run: corridor serve --config THIS_FILE (production mode: a config file is given).",
        "# Fill in the REQUIRED lines first; `corridor serve` refuses to start without them.",
    ]
    shown = None
    for name, field in Settings.model_fields.items():
        if descriptions[name] != shown:  # fields sharing one text stay together under it
            out.append("")
            out += comment(descriptions[name])
            shown = descriptions[name]
        if name in REQUIRED:
            out += comment(REQUIRED[name])
        default = data_dir if name == "data_dir" else field.get_default(call_default_factory=True)
        if default is None:
            out.append(f"# {name} =    (unset by default; see above)")
        elif isinstance(default, dict):
            out += [f"{name}.{toml_key(key)} = {toml_value(item)}" for key, item in default.items()]
        elif name in REQUIRED or name == "tls_key_file":
            out.append(f'{name} = ""')
        else:
            out.append(f"{name} = {toml_value(default)}")
    return "\n".join(out) + "\n"
