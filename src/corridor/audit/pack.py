"""Evidence packs (issue 16): one JSON document that proves a grant's records to a third party
without the database, and without showing any other grant's records.

A pack holds the grant's records in full (:func:`corridor.audit.trace.trace`), the *links* of the
records of the same writers that lie between them and a signed checkpoint (writer, seq,
prev_hash, grant_id, body_sha256, hash: no content), the checkpoints themselves (JWS over the
heads of every chain) and the public keys that signed them. ``corridor.audit.verify_pack`` checks
one offline; the format is in the README ("Evidence packs").

Each record is proven by the checkpoint whose head for its writer is the nearest at or after it
(the earliest that covers it), so the links a pack carries are only those from each record up to
that head: a grant that lasts months (refresh tokens) needs the links after each of its records
to the next checkpoint, not every link of those months.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corridor.audit.chain import ALL_WRITERS, HASHED, CheckpointReport, link, verify_checkpoints
from corridor.audit.trace import trace
from corridor.core.b64 import b64url_decode
from corridor.core.jose import JoseFailure, jwk_thumbprint, read_header
from corridor.store.scope import Row
from corridor.store.sql import Store

FORMAT = "corridor-evidence-pack/1"
#: Issue 17: the detail members naming a signed message the AS kept (store/messages.py).
SIGNED_MEMBERS = ("request_object", "authorization_response")


class PackError(ValueError):
    """No pack can be made (no record carries the grant id)."""


@dataclass(frozen=True)
class _Checkpoint:
    id: int
    time: float
    jws: str
    heads: dict[str, dict[str, Any]]

    def head_seq(self, writer: str) -> int:
        head = self.heads.get(writer)
        return int(head["seq"]) if isinstance(head, dict) else 0

    def as_pack(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "jws": self.jws, "heads": self.heads}


def grant_records(store: Store, grant_id: str) -> list[Row]:
    """The grant's trace in pack order: by time, but each writer's records ascending in seq."""
    rows = trace(store, grant_id)
    if not any(row.get("grant_id") == grant_id for row in rows):
        raise PackError(f"no record carries the grant id {grant_id}")
    return chain_order(rows)


def chain_order(rows: Sequence[Row]) -> list[Row]:
    """Time order with each writer's records ascending in seq (issue 16: a verifier refuses a
    writer's records listed out of chain order, and two records of one process may carry times
    out of their commit order). Each writer's slots in the time order get its records by seq."""
    ordered = sorted(rows, key=lambda row: (row["time"], row.get("writer") or "", row.get("seq") or 0))
    slots: dict[str | None, list[int]] = {}
    for index, row in enumerate(ordered):
        slots.setdefault(row.get("writer"), []).append(index)
    out = list(ordered)
    for writer, indexes in slots.items():
        if writer is None:
            continue
        by_seq = sorted((ordered[i] for i in indexes), key=lambda row: row["seq"])
        for index, row in zip(indexes, by_seq, strict=True):
            out[index] = row
    return out


def issuer_of(rows: Sequence[Row], grant_id: str, fallback: str) -> str:
    """The issuer the grant's records name (the AS's own ``issuer``); ``fallback`` when none does."""
    named = [row["issuer"] for row in rows if row.get("grant_id") == grant_id and row.get("issuer")]
    return str(named[0]) if named else fallback


def _verified_checkpoints(store: Store, public_keys: list[dict[str, Any]], issuer: str) -> list[_Checkpoint]:
    """The stored checkpoints over all writers whose signature and heads verify and that name
    ``issuer``, oldest first (a pack is built on good evidence only; a broken stored one is for
    `audit verify` to name)."""
    good = {report.id for report in verify_checkpoints(store, public_keys) if _good(report)}
    out = []
    for row in store.audit.checkpoints():
        if row["id"] in good and row["writer"] == ALL_WRITERS and row.get("heads") and _iss(row) == issuer:
            out.append(
                _Checkpoint(int(row["id"]), float(row["time"]), str(row["jws"]), json.loads(row["heads"]))
            )
    return out


def _iss(row: Row) -> Any:
    """The ``iss`` of a checkpoint whose signature verified."""
    return json.loads(b64url_decode(str(row["jws"]).split(".")[1])).get("iss")


def _good(report: CheckpointReport) -> bool:
    return report.problem is None and report.source == "stored" and report.writer == ALL_WRITERS


def _covering(checkpoints: Iterable[_Checkpoint], writer: str, seq: int) -> _Checkpoint | None:
    """The checkpoint whose head for ``writer`` is the nearest at or after ``seq``."""
    fits = [cp for cp in checkpoints if cp.head_seq(writer) >= seq]
    return min(fits, key=lambda cp: (cp.head_seq(writer), cp.id), default=None)


def uncovered(store: Store, grant_id: str, issuer: str, public_keys: list[dict[str, Any]]) -> int:
    """How many of the grant's chained records no verified checkpoint of ``issuer`` covers yet."""
    checkpoints = _verified_checkpoints(store, public_keys, issuer)
    return sum(
        1
        for row in grant_records(store, grant_id)
        if row.get("writer") is not None and _covering(checkpoints, row["writer"], row["seq"]) is None
    )


#: The consent page's sentences (server/interaction/consent_words.py) copied when a record has them.
CONSENT_SENTENCES = ("headline", "lifetime", "while_away", "sender_words", "key_thumbprint", "step_up")


def _consent(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The convenience copy of what a consent page showed (the record itself is the evidence)."""
    try:
        detail = json.loads(record.get("detail") or "{}")
    except ValueError:
        return None
    surface = detail.get("approval_surface") if isinstance(detail, dict) else None
    if not isinstance(surface, dict):
        return None
    facts: dict[str, Any] = surface["facts"] if isinstance(surface.get("facts"), dict) else {}
    # Issue 18: the page's question, the lifetime, acting while away, the key, a step-up's spending.
    said = {k: facts[k] for k in CONSENT_SENTENCES if facts.get(k) is not None}
    return {
        "writer": record.get("writer"),
        "seq": record.get("seq"),
        "time": record.get("time"),
        "page_sha256": surface.get("body_sha256"),
        "template_version": surface.get("template_version"),
        "client_id": facts.get("client_id"),
        "client_name": facts.get("client_name"),
        "scopes": [s.get("words") for s in facts.get("scopes", []) if isinstance(s, dict)],
        "details": [d.get("words") for d in facts.get("details", []) if isinstance(d, dict)],
        "resources": facts.get("resources", []),
        "sender_constraint": facts.get("sender_constraint"),
        **said,
    }


def _runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending numbers as runs of consecutive ones: [1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def make_pack(
    store: Store, grant_id: str, issuer: str, now: float, public_keys: list[dict[str, Any]]
) -> dict[str, Any]:
    """The evidence pack of ``grant_id`` (issue 16). ``public_keys``: every AS signing key's public
    JWK; ``issuer``: used when no record of the grant names its issuer."""
    rows = grant_records(store, grant_id)
    issuer = issuer_of(rows, grant_id, issuer)
    checkpoints = _verified_checkpoints(store, public_keys, issuer)
    records = [{**{name: row.get(name) for name in HASHED}, "hash": row.get("hash")} for row in rows]
    used: dict[int, _Checkpoint] = {}
    needed: dict[str, set[int]] = {}
    for row in rows:
        writer = row.get("writer")
        if writer is None:
            continue
        cp = _covering(checkpoints, writer, row["seq"])
        if cp is not None:
            used[cp.id] = cp
            needed.setdefault(writer, set()).update(range(row["seq"], cp.head_seq(writer) + 1))
    shown = {(row.get("writer"), row.get("seq")) for row in rows}
    links: dict[str, list[dict[str, Any]]] = {}
    for writer in sorted(needed):
        wanted = sorted(seq for seq in needed[writer] if (writer, seq) not in shown)
        links[writer] = [
            link(row)
            for first, last in _runs(wanted)
            for row in store.audit.chain_between(writer, first, last)
        ]
    kids = set()
    for cp in used.values():
        try:
            kids.add(read_header(cp.jws).get("kid"))
        except JoseFailure:
            continue
    messages, client_keys = signed_messages(store, rows)
    for message in messages:
        if message["kind"] != "request_object":
            try:
                kids.add(read_header(message["jws"]).get("kid"))
            except JoseFailure:
                continue
    return {
        "format": FORMAT,
        "made_at": now,
        "issuer": issuer,
        "grant_id": grant_id,
        "records": records,
        "links": links,
        "checkpoints": [cp.as_pack() for cp in sorted(used.values(), key=lambda cp: cp.id)],
        "keys": [key for key in public_keys if key.get("kid") in kids],
        "consent": [c for c in map(_consent, records) if c is not None],
        "signed_messages": messages,
        "client_keys": client_keys,
    }


def signed_messages(store: Store, rows: Sequence[Row]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Issue 17 (FAPI 2.0 Message Signing, non-repudiation): the request objects and signed
    authorization responses the grant's records name by SHA-256, as the AS kept them, and the
    client's registered public key that verified each request object (by its RFC 7638
    thumbprint; a ``jwks_uri`` client's key is not stored, the investigator fetches it)."""
    messages: list[dict[str, Any]] = []
    keys: dict[str, dict[str, Any]] = {}
    for row in rows:
        try:
            detail = json.loads(row.get("detail") or "{}")
        except ValueError:
            continue
        if not isinstance(detail, dict):
            continue
        for member in SIGNED_MEMBERS:
            named = detail.get(member)
            if not isinstance(named, dict) or not isinstance(named.get("sha256"), str):
                continue
            kept = store.messages.get(named["sha256"])
            if kept is None:  # purged with the records of its time, or never kept
                continue
            messages.append(
                {
                    "kind": kept["kind"],
                    "sha256": kept["sha256"],
                    "client_id": kept["client_id"],
                    "writer": row.get("writer"),
                    "seq": row.get("seq"),
                    "jws": kept["jws"],
                }
            )
            if member == "request_object":
                for key in _registered_keys(store, str(kept["client_id"])):
                    try:
                        if jwk_thumbprint(key) == named.get("key_thumbprint"):
                            keys[str(named["key_thumbprint"])] = key
                    except JoseFailure:
                        continue
    return messages, list(keys.values())


def _registered_keys(store: Store, client_id: str) -> list[dict[str, Any]]:
    row = store.clients.get(client_id)
    if row is None:
        return []
    jwks = json.loads(row["metadata"]).get("jwks") or {}
    return [
        {k: v for k, v in key.items() if k != "x5c"} for key in jwks.get("keys", []) if isinstance(key, dict)
    ]
