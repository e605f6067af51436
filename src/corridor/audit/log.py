"""The one append path for evidence records, each appended to its writer's hash chain
(audit/chain.py, issue 8).

A record says what was decided (event, outcome, the rule when refused) and about
what: client, user, issuer, redirect URI, scope, authorization details, resource,
sender constraint (method and key thumbprint), grant, token and request ids.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection

from corridor.audit import chain
from corridor.core.text import escaping_logger
from corridor.store.sql import Store

log = escaping_logger("corridor.audit")  # issue 13 E1


@dataclass
class Evidence:
    """What a decision was about; filled in as a request passes its checks."""

    issuer: str
    request_id: str
    client_id: str | None = None
    user_id: str | None = None
    redirect_uri: str | None = None
    scope: str | None = None
    authorization_details: Any = None
    resource: Any = None
    sender_constraint: str | None = None
    key_thumbprint: str | None = None
    grant_id: str | None = None
    token_jti: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def writer_id(role: str) -> str:
    """A chain per process: role, host, process id and a random part (a restarted process starts
    a new chain rather than continuing one it cannot prove it wrote)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class AuditLog:
    """Appends evidence records to the store, hash-chained; never writes secrets."""

    def __init__(self, store: Store, role: str = "as") -> None:
        self.store = store
        self.writer = writer_id(role)

    @staticmethod
    def row(
        evidence: Evidence,
        event: str,
        outcome: str,
        now: float,
        rule: str | None = None,
        error: str | None = None,
    ) -> Mapping[str, Any]:
        data = asdict(evidence)
        for structured in ("authorization_details", "resource"):
            data[structured] = _json(data[structured])
        data["detail"] = _json(data["detail"] or None)
        return {"time": now, "event": event, "outcome": outcome, "rule": rule or None, "error": error, **data}

    def append(
        self,
        evidence: Evidence,
        event: str,
        outcome: str,
        now: float,
        *,
        rule: str | None = None,
        error: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Append one record, inside ``conn``'s transaction when given (so the record
        commits or rolls back with the decision it describes)."""
        record = self.row(evidence, event, outcome, now, rule, error)
        if conn is not None:
            chain.append(conn, self.store.dialect, self.writer, record)
        else:
            with self.store.write() as own:
                chain.append(own, self.store.dialect, self.writer, record)
        log.info(
            "%s %s client=%s rule=%s request=%s",
            event,
            outcome,
            evidence.client_id,
            rule,
            evidence.request_id,
        )
