"""Where evidence records go (issue 15, 2; design.md: the SQL table through the store, JSON Lines).

:class:`corridor.audit.log.AuditLog` writes through an :class:`EvidenceSink`, which appends each
record to its writer's hash chain: sequence number, the hash of the record before it, and its own
hash, :func:`corridor.audit.chain.record_hash` of the same columns in every sink, so the same
records chain to the same hashes whichever sink holds them.

* :class:`SqlSink`: rows of the store's audit table (audit/chain.py), inside the caller's
  transaction when one is given; the AS's trail, and a resource server's with a database.
* :class:`JsonLinesSink`: an append-only file, one JCS (RFC 8785) object per line, 0600 from its
  first byte (design.md 5c); :func:`verify_file` checks its chains as ``corridor audit verify``
  checks the store's. A line torn by a crash mid-write is found when the file is opened and cut
  off, as a transaction that never committed leaves nothing.
* :class:`MemorySink`: a list; the default of a resource server without a database, and tests.

A file or a list keeps no head row: a cut of a chain's last records is not detectable from it
alone (the store's head rows and signed checkpoints are what detect that).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from corridor.audit import chain, jcs
from corridor.audit.chain import GENESIS, ChainReport, record_hash, verify_chain
from corridor.core.private_files import PRIVATE_FILE, tighten
from corridor.core.text import escaping_logger

if TYPE_CHECKING:
    from corridor.store.protocols import UnitOfWork
    from corridor.store.sql import Store

log = escaping_logger("corridor.audit")


class EvidenceSink(Protocol):
    """Appends evidence records to their writer's hash chain."""

    def append(
        self, writer: str, records: Sequence[Mapping[str, Any]], conn: UnitOfWork | None = None
    ) -> list[dict[str, Any]]:
        """Append ``records`` in order to ``writer``'s chain and return them chained (``writer``,
        ``seq``, ``prev_hash``, ``hash``). ``conn``: the caller's unit of work, which a sink with a
        database writes in (so a record commits or rolls back with its decision)."""
        ...


class SqlSink:
    """Records as rows of the store's audit table, each writer's chain locked at its head row."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(
        self, writer: str, records: Sequence[Mapping[str, Any]], conn: UnitOfWork | None = None
    ) -> list[dict[str, Any]]:
        if conn is not None:
            return [chain.append(conn, writer, record) for record in records]
        with self.store.unit_of_work() as own:
            return [chain.append(own, writer, record) for record in records]


class _Heads:
    """Each writer's chain head (seq, hash), for the sinks that keep no head row."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._heads: dict[str, tuple[int, str]] = {}

    def chained(self, writer: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``records`` linked after the writer's head (not yet moved: :meth:`advance` after writing)."""
        seq, prev = self._heads.get(writer, (0, GENESIS))
        rows = []
        for record in records:
            seq += 1
            row = {**record, "writer": writer, "seq": seq, "prev_hash": prev}
            row["hash"] = prev = record_hash(row)
            rows.append(row)
        return rows

    def advance(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self._heads[row["writer"]] = (row["seq"], row["hash"])


class MemorySink:
    """Records in :attr:`records`, most recent last, each with an ``id`` (1, 2, …) as a row would
    have. ``keep``: at most this many are kept, the oldest dropped first."""

    def __init__(self, keep: int | None = None) -> None:
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        self._heads = _Heads()
        self._ids = itertools.count(1)

    def append(
        self, writer: str, records: Sequence[Mapping[str, Any]], conn: UnitOfWork | None = None
    ) -> list[dict[str, Any]]:
        with self._heads.lock:
            rows = [{"id": next(self._ids), **row} for row in self._heads.chained(writer, records)]
            self._heads.advance(rows)
            self.records.extend(rows)
            if self.keep is not None and len(self.records) > self.keep:
                del self.records[: len(self.records) - self.keep]
        return rows

    def verify(self) -> list[ChainReport]:
        """Every writer's chain in the list (a ``keep`` that dropped records shows as missing)."""
        return verify_records(self.records)


# -- JSON Lines ------------------------------------------------------------------------------------


def jsonl_line(row: Mapping[str, Any]) -> bytes:
    """One record as a line: its JCS form (RFC 8785 escapes every control character, so the line
    holds no newline of its own) and a newline."""
    return jcs.dumps(dict(row)) + b"\n"


def _lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of a file's content, and what follows the last newline (torn when not empty)."""
    *lines, tail = data.split(b"\n")
    return lines, tail


def _record(line: bytes) -> dict[str, Any] | None:
    """A line's record, or None when it is not one (no JSON object with a chain position)."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    position = (value.get("writer"), value.get("seq"), value.get("prev_hash"), value.get("hash"))
    if not (
        isinstance(position[0], str)
        and isinstance(position[1], int)
        and not isinstance(position[1], bool)
        and all(isinstance(h, str) for h in position[2:])
    ):
        return None
    return value


class JsonLinesSink:
    """An append-only JSON Lines file of hash-chained records, 0600, shared safely by processes
    (each append is one ``write`` under an exclusive ``flock``, then ``fsync``ed).

    Opening it reads the file: the heads of the chains already in it, and a torn last line (no
    newline: a crash while it was written) is cut off with a warning naming its line, since the
    append that wrote it never returned. :attr:`torn` holds what was cut."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._heads = _Heads()
        tighten(self.path)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        self.torn = b""
        try:
            if created:  # 0600 whatever the umask took away (design.md 5c)
                os.fchmod(self._fd, PRIVATE_FILE)
            with self._locked():
                self._recover()
        except BaseException:
            os.close(self._fd)
            raise

    def _locked(self) -> _Flock:
        return _Flock(self._fd)

    def _recover(self) -> None:
        """The chains' heads, and the torn last line cut off."""
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0)
        lines, tail = _lines(data)
        if tail:
            self.torn = tail
            os.ftruncate(self._fd, size - len(tail))
            os.fsync(self._fd)
            log.warning(
                "%s: line %d was torn (%d bytes, no end of line: a crash while it was written); cut off",
                self.path,
                len(lines) + 1,
                len(tail),
            )
        self._heads.advance([record for record in map(_record, lines) if record is not None])

    def append(
        self, writer: str, records: Sequence[Mapping[str, Any]], conn: UnitOfWork | None = None
    ) -> list[dict[str, Any]]:
        with self._heads.lock, self._locked():
            rows = self._heads.chained(writer, records)
            data = b"".join(jsonl_line(row) for row in rows)
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
            self._heads.advance(rows)
        return rows

    def close(self) -> None:
        os.close(self._fd)


class _Flock:
    """An exclusive ``flock`` on the file while a block runs (appends of other processes wait)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def read_file(path: Path | str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Each complete line of a JSON Lines trail: its number (1, 2, …) and its record, or None
    when the line is not one; a torn last line is not complete."""
    lines, _ = _lines(Path(path).read_bytes())
    for number, line in enumerate(lines, 1):
        yield number, _record(line)


def read_records(path: Path | str) -> list[dict[str, Any]]:
    """The records of a JSON Lines trail in file order, each with its line number as ``id``."""
    return [{"id": number, **record} for number, record in read_file(path) if record is not None]


def verify_records(records: Iterable[Mapping[str, Any]]) -> list[ChainReport]:
    """Each writer's chain in storage order (``id``), by audit/chain.py's rules; no head to end at."""
    chains: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        chains.setdefault(record["writer"], []).append(record)
    return [verify_chain(writer, chains[writer], None) for writer in sorted(chains)]


def verify_file(path: Path | str) -> list[ChainReport]:
    """What ``corridor audit verify`` says of the store, for a JSON Lines trail: every chain in
    it intact, or its first broken record (``id``: the line); a line that is not a record and a
    torn last line are reported under the file's name."""
    path = Path(path)
    lines, tail = _lines(path.read_bytes())
    records, problems = [], []
    for number, line in enumerate(lines, 1):
        record = _record(line)
        if record is None:
            problems.append(ChainReport(str(path), 0, problem=f"line {number} is not a record (edited)"))
        else:
            records.append({"id": number, **record})
    if tail:
        problems.append(
            ChainReport(
                str(path),
                0,
                problem=f"line {len(lines) + 1} is torn (no end of line: a crash while it was written)",
            )
        )
    return verify_records(records) + problems


__all__ = [
    "EvidenceSink",
    "JsonLinesSink",
    "MemorySink",
    "SqlSink",
    "jsonl_line",
    "read_file",
    "read_records",
    "verify_file",
    "verify_records",
]
