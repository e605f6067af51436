"""``corridor audit trace ID``: the whole story of a grant, a token or a request, in order.

From any correlation id (grant id, access-token ``jti``, request id) it gathers: the pushed
request (by the hash of its reference), the consent page shown and the user's decision (by the
interaction), the code, every token issued under the grant, and every resource-server decision
made with those tokens (rs.access records carry the token's ``jti``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from corridor.audit.chain import ChainReport, signed_positions, verify_chain, verify_checkpoints
from corridor.core.jose import SigningKey
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


@dataclass(frozen=True)
class Mark:
    """Whether a record of a trace is proven by its chain (issue 16): its content matches its hash
    and every record of its writer's chain before it is there, in order, each sealed."""

    verified: bool
    words: str


def chain_marks(store: Store, records: Iterable[Mapping[str, Any]]) -> dict[int, Mark]:
    """A :class:`Mark` per record id: its writer's chain walked from its first kept record up to
    the last record of ``records`` in it (:func:`corridor.audit.chain.verify_chain`); a chain whose
    start was purged by retention starts at a position a verified checkpoint signed. A record
    after the first broken one is not verified either: its chain is not intact up to it."""
    wanted: dict[str, set[int]] = {}
    marks: dict[int, Mark] = {}
    for record in records:
        if record.get("writer"):
            wanted.setdefault(str(record["writer"]), set()).add(int(record["id"]))
        else:
            marks[int(record["id"])] = Mark(False, "not chained (written before the hash chain)")
    if not wanted:
        return marks
    public = [SigningKey(json.loads(row["private_jwk"])).public_jwk for row in store.keys.signing_keys()]
    signed = signed_positions(verify_checkpoints(store, public))
    with store.snapshot() as reads:
        for writer, ids in wanted.items():
            last = max(ids)
            walked = [row for row in reads.audit.chain(writer) if row["id"] <= last]
            reached = walked[-1]["seq"] if walked else 0
            vouched = [position for position in signed.get(writer, []) if position.seq <= reached]
            report = verify_chain(writer, walked, None, vouched, retention=True)
            for row in walked:
                if row["id"] in ids:
                    marks[row["id"]] = _mark(row, report)
    return marks


def _mark(row: Mapping[str, Any], report: ChainReport) -> Mark:
    if report.intact or (report.broken_id is not None and row["id"] < report.broken_id):
        return Mark(True, f"verified: its chain is intact up to it (record #{row['seq']})")
    if row["id"] == report.broken_id:
        return Mark(False, f"NOT verified: {report.problem}")
    if report.broken_id is None:
        return Mark(False, f"NOT verified: {report.problem}")
    return Mark(False, f"NOT verified: its chain is broken before it, at record #{report.broken_seq}")
