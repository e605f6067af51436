"""``corridor audit import FILE.jsonl`` (issue 16): the records of another writer, a resource
server's JSON Lines trail (``JsonLinesSink``) or another store's ``corridor audit export``, added
to this store so that ``corridor audit trace GRANT_ID`` finds every decision made with the grant's
tokens, whichever resource server made it.

Nothing is added unless all of it verifies: every line a record, every chain in the file intact by
audit/chain.py's rules from its first record, and each continuing what the store holds of that
writer (records it holds already are skipped when identical, so an import can be repeated with a
grown file). Chains of the AS (writers ``as:…``) are never extended by an import: only the AS
writes them. The import itself is recorded (``audit.import``: the file's SHA-256 and the range of
each writer added), in the same transaction as the records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corridor.audit.chain import append
from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, Evidence, writer_id
from corridor.audit.sinks import verify_records
from corridor.core.randomness import new_id
from corridor.store.audit import RECORD_COLUMNS, ChainConflict, misfit
from corridor.store.sql import Store

#: The members ``corridor audit export`` writes parsed; stored as JSON text.
STRUCTURED = ("authorization_details", "resource", "detail")
#: The AS's own chains: never extended from a file.
AS_ROLE = "as:"


class ImportRefused(ValueError):
    """The file is not imported; the message says why (nothing was added)."""


@dataclass
class Imported:
    file_sha256: str
    #: Per writer: (records added, records already held, first seq, last seq).
    writers: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def added(self) -> int:
        return sum(added for added, _, _, _ in self.writers.values())


def _stored_form(value: Any) -> str | None:
    """A structured member as the store keeps it (audit/log.py: compact, keys sorted)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def parse(data: bytes, name: str) -> list[dict[str, Any]]:
    """The file's records, each with its line number as ``id``, in the store's form."""
    known = set(RECORD_COLUMNS)
    records = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise ImportRefused(f"{name}:{number}: not a JSON record") from None
        if not isinstance(value, dict) or not isinstance(value.get("writer"), str):
            raise ImportRefused(f"{name}:{number}: not a chained record (no writer)")
        unknown = set(value) - known
        if unknown:
            raise ImportRefused(f"{name}:{number}: unknown fields {', '.join(sorted(unknown))}")
        if not isinstance(value.get("seq"), int) or isinstance(value.get("seq"), bool):
            raise ImportRefused(f"{name}:{number}: no chain position (seq)")
        for member in STRUCTURED:
            value[member] = _stored_form(value.get(member))
        problem = misfit(value)
        if problem:
            raise ImportRefused(f"{name}:{number}: {problem}")
        records.append({**{column: value.get(column) for column in RECORD_COLUMNS}, "id": number})
    if not records:
        raise ImportRefused(f"{name}: no records")
    return records


def import_file(store: Store, path: Path, now: float) -> Imported:
    """Verify ``path`` and add its records to ``store`` in one transaction, or raise
    :class:`ImportRefused` having added nothing."""
    data = path.read_bytes()
    records = parse(data, path.name)
    broken = [report for report in verify_records(records) if not report.intact]
    if broken:
        raise ImportRefused("; ".join(report.line() for report in broken))
    chains: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        chains.setdefault(record["writer"], []).append(record)
    result = Imported(hashlib.sha256(data).hexdigest())
    try:
        with store.unit_of_work() as uow:
            for writer, rows in sorted(chains.items()):
                added = uow.audit.adopt(writer, rows)
                if added and writer.startswith(AS_ROLE):  # rolls the whole import back
                    raise ImportRefused(f"{writer}: an authorization server's chain is written only by it")
                result.writers[writer] = (added, len(rows) - added, rows[0]["seq"], rows[-1]["seq"])
            if result.added:
                evidence = Evidence(
                    issuer="",
                    request_id=new_id(),
                    detail={
                        "file": path.name,
                        "file_sha256": result.file_sha256,
                        "writers": {
                            w: {"from": f, "to": t, "added": a} for w, (a, _, f, t) in result.writers.items()
                        },
                    },
                )
                row = AuditLog.row(evidence, Event.AUDIT_IMPORT, Outcome.IMPORTED, now)
                append(uow, writer_id("cli"), row)
    except ChainConflict as conflict:
        raise ImportRefused(str(conflict)) from None
    return result
