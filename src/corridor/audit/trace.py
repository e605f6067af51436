"""``corridor audit trace ID``: the whole story of a grant, a token or a request, in order.

From any correlation id (grant id, access-token ``jti``, request id) it gathers: the pushed
request (by the hash of its reference), the consent page shown and the user's decision (by the
interaction), the code, every token issued under the grant, and every resource-server decision
made with those tokens (rs.access records carry the token's ``jti``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from corridor.core.text import escape_controls
from corridor.store.sql import Row, Store


def _detail(row: Row) -> dict[str, Any]:
    try:
        value = json.loads(row["detail"]) if row.get("detail") else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def trace(store: Store, ident: str) -> list[Row]:
    seed = (
        store.audit.records(grant_id=ident)
        or store.audit.records(token_jti=ident)
        or store.audit.records(request_id=ident)
    )
    found: dict[int, Row] = {row["id"]: row for row in seed}
    grants = {row["grant_id"] for row in seed if row.get("grant_id")}
    for grant in grants:
        found.update((row["id"], row) for row in store.audit.records(grant_id=grant))
    links = [_detail(row) for row in found.values()]
    for interaction in {d["interaction"] for d in links if isinstance(d.get("interaction"), str)}:
        found.update((row["id"], row) for row in store.audit.records(interaction=interaction))
    for par in {d["par"] for d in [_detail(row) for row in found.values()] if isinstance(d.get("par"), str)}:
        found.update((row["id"], row) for row in store.audit.records(par=par))
    for jti in {row["token_jti"] for row in list(found.values()) if row.get("token_jti")}:
        found.update((row["id"], row) for row in store.audit.records(token_jti=jti))
    return sorted(found.values(), key=lambda row: (row["time"], row["id"]))


def readable(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Records with their JSON members parsed (for --json and JSON Lines)."""
    out = []
    for row in rows:
        record = dict(row)
        for structured in ("authorization_details", "resource", "detail"):
            if isinstance(record.get(structured), str):
                record[structured] = json.loads(record[structured])
        out.append(record)
    return out


def story_line(record: dict[str, Any]) -> str:
    """One line per record for people: when, what, who, about what, and why when refused. Control
    and bidirectional formatting characters of the values are escaped (issue 13 E1): a newline in
    a recorded path cannot start a line of its own."""
    import time as _time

    when = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(record["time"]))
    parts = [when, f"{record['event']} {record['outcome']}"]
    if record.get("error"):
        parts.append(f"error={record['error']} rule={record.get('rule')!r}")
    for name in ("client_id", "user_id", "scope", "grant_id", "token_jti", "sender_constraint"):
        if record.get(name):
            parts.append(f"{name}={record[name]}")
    detail = record.get("detail") or {}
    surface = detail.get("approval_surface") if isinstance(detail, dict) else None
    if isinstance(surface, dict):
        shown = "; ".join(d["words"] for d in surface.get("facts", {}).get("details", []))
        parts.append(f"shown: {shown or 'scopes only'} (page sha256 {surface['body_sha256'][:12]}…)")
    if isinstance(detail, dict) and detail.get("route"):
        parts.append(f"{detail.get('method')} {detail['route']}")
    return escape_controls("  ".join(parts))
