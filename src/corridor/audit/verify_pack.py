"""Verify a Corridor evidence pack offline (issue 16): no database, no network, no Corridor
server code. It needs only the standard library, ``rfc8785`` (JCS) and ``joserfc`` (JWS), so it
is also a reference for anyone writing their own verifier; the format is in the README
("Evidence packs").

The rules, in order:

1. A checkpoint counts only if its JWS (``typ`` ``audit-checkpoint+jwt``, PS256/ES256/EdDSA)
   verifies with a key of the pack (or of the JWKS the investigator saved from the AS's
   ``jwks_uri``), its ``iss`` is the pack's issuer, and SHA-256 of the JCS form of the ``heads``
   beside it is the signed ``heads_sha256`` (with ``writers`` their number).
2. A record is sealed when its hash is SHA-256 of the JCS form of its link
   ``{writer, seq, prev_hash, grant_id, body_sha256}`` (``body_sha256``: SHA-256 of the JCS form of
   the :data:`BODY` columns), or, for records chained before issue 16, of all its columns at once.
3. Each writer's records are listed ascending in seq, no position is given twice, and no link
   carries the pack's grant id (one of its records withheld).
4. Each record is proven by the checkpoint whose head for its writer is the nearest at or after it:
   walking down from that head, each position must be in the pack (a record or a link), hash to
   the hash the position above names (the head's for the top), and name the one below by its
   ``prev_hash``, until the record is reached.
5. Each signed message (issue 17, FAPI 2.0 Message Signing) is bound to a proven record of the
   pack whose detail names its SHA-256 (``request_object`` or ``authorization_response``), and its
   signature verifies: a request object with the client key of the pack (``client_keys``, or the
   client's JWKS the investigator saved) whose RFC 7638 thumbprint the record names, ``iss`` the
   client; a signed authorization response (JARM) with a key of the AS, ``iss`` the pack's issuer
   and ``aud`` the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time as _time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

FORMAT = "corridor-evidence-pack/1"
CHECKPOINT_TYP = "audit-checkpoint+jwt"
ALGORITHMS = ("PS256", "ES256", "EdDSA")  # FAPI2 5.4.1-1b
#: The columns a link shows in the clear, and the columns its ``body_sha256`` covers.
LINK_FIELDS = ("writer", "seq", "prev_hash", "grant_id")
BODY = (
    "time", "event", "outcome", "rule", "error", "client_id", "user_id", "issuer", "redirect_uri", "scope",
    "authorization_details", "resource", "sender_constraint", "key_thumbprint", "token_jti",
    "request_id", "detail",
)  # fmt: skip


class PackFormatError(ValueError):
    """The file is not an evidence pack of this format."""


def _jcs_sha256(value: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


def body_sha256(record: Mapping[str, Any]) -> str:
    return _jcs_sha256({name: record.get(name) for name in BODY})


def link_hash(link: Mapping[str, Any]) -> str:
    return _jcs_sha256(
        {**{name: link.get(name) for name in LINK_FIELDS}, "body_sha256": link.get("body_sha256")}
    )


def record_hash(record: Mapping[str, Any]) -> str:
    return link_hash({**record, "body_sha256": body_sha256(record)})


def flat_hash(record: Mapping[str, Any]) -> str:
    """The form of records chained before issue 16: one hash over every column."""
    return _jcs_sha256({name: record.get(name) for name in (*BODY, *LINK_FIELDS)})


@dataclass
class Checkpoint:
    id: int
    #: The heads the checkpoint names, {writer: (seq, hash)}; they vouch for nothing unless verified.
    heads: dict[str, tuple[int, str]]
    time: float = 0.0
    kid: str | None = None
    problem: str | None = None

    def line(self) -> str:
        if self.problem:
            return f"checkpoint {self.id}: {self.problem}"
        when = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(self.time))
        writers = f"{len(self.heads)} writers, {when}"
        return f"checkpoint {self.id} ({writers}): signature verifies with key {self.kid}"


@dataclass
class Record:
    writer: str | None
    seq: int | None
    event: str
    proven_by: int | None = None
    problem: str | None = None

    def line(self) -> str:
        state = f"proven by checkpoint {self.proven_by}" if self.proven_by is not None else self.problem
        return f"record {self.writer} #{self.seq} ({self.event}): {state}"


@dataclass
class Message:
    kind: str
    client_id: str
    writer: str | None
    seq: int | None
    sha256: str
    signer: str = ""
    problem: str | None = None

    def line(self) -> str:
        where = f"record {self.writer} #{self.seq}, SHA-256 {self.sha256}"
        head = f"{self.kind} of client {self.client_id} ({where})"
        return f"{head}: {self.problem}" if self.problem else f"{head}: signature verifies with {self.signer}"


@dataclass
class Report:
    grant_id: str
    issuer: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and all(r.proven_by is not None for r in self.records)
            and all(m.problem is None for m in self.messages)
        )

    def lines(self) -> list[str]:
        out = [f"pack of grant {self.grant_id} at {self.issuer}: {len(self.records)} records"]
        out += [f"key {k['kid']}: thumbprint {k['thumbprint']} ({k['source']})" for k in self.keys]
        out += [cp.line() for cp in self.checkpoints] + self.problems
        out += [r.line() for r in self.records]
        out += [m.line() for m in self.messages]
        unproven = sum(r.proven_by is None for r in self.records)
        out.append(
            "all records proven" if self.ok else f"NOT PROVEN: {unproven} of {len(self.records)} records"
        )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "grant_id": self.grant_id,
            "issuer": self.issuer,
            "keys": self.keys,
            "checkpoints": [vars(cp) for cp in self.checkpoints],
            "records": [vars(r) for r in self.records],
            "signed_messages": [vars(m) for m in self.messages],
            "problems": self.problems,
        }


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _check_checkpoint(
    raw: Mapping[str, Any], keys: Sequence[Mapping[str, Any]], issuer: str, whose: str
) -> Checkpoint:
    """Rule 1: the signature, the issuer and the heads beside it."""
    token, heads = str(raw["jws"]), raw["heads"]
    named = {str(w): (int(h["seq"]), str(h["hash"])) for w, h in heads.items()}
    cp = Checkpoint(int(raw["id"]), named, float(raw.get("time") or 0.0))
    try:
        header = _b64json(token.split(".")[0])
    except (ValueError, IndexError):
        header = {}
    cp.kid = header.get("kid") if isinstance(header, dict) else None
    if (
        not isinstance(header, dict)
        or header.get("typ") != CHECKPOINT_TYP
        or header.get("alg") not in ALGORITHMS
    ):
        cp.problem = f"not an audit checkpoint JWS ({CHECKPOINT_TYP}, one of {', '.join(ALGORITHMS)})"
        return cp
    claims = None
    for key in [k for k in keys if cp.kid is None or k.get("kid") in (cp.kid, None)]:
        try:
            with warnings.catch_warnings():  # joserfc warns that RFC 9864 renames EdDSA
                warnings.simplefilter("ignore")
                claims = json.loads(
                    jws.deserialize_compact(token, JWKRegistry.import_key(dict(key)), [header["alg"]]).payload
                )
            break
        except (JoseError, ValueError, TypeError):
            continue
    if not isinstance(claims, dict):
        cp.problem = f"the signature does not verify with {whose}"
    elif claims.get("iss") != issuer:
        cp.problem = f"signed for issuer {claims.get('iss')!r}, not the pack's"
    elif (claims.get("heads_sha256"), claims.get("writers")) != (_jcs_sha256(heads), len(heads)):
        cp.problem = "the heads beside it differ from what was signed"
    return cp


def _thumbprint(key: Mapping[str, Any]) -> str:
    try:
        return str(JWKRegistry.import_key(dict(key)).thumbprint())
    except (JoseError, ValueError, TypeError):
        return "(not a usable key)"


def verify_pack(
    pack: Any,
    jwks: Sequence[Mapping[str, Any]] | None = None,
    client_jwks: Sequence[Mapping[str, Any]] | None = None,
) -> Report:
    """Check a parsed pack (rules 1-5); ``jwks``: the AS keys to trust instead of the pack's;
    ``client_jwks``: the client keys to trust instead of the pack's ``client_keys``."""
    try:
        if pack.get("format") != FORMAT:
            raise PackFormatError(f"not a {FORMAT} document")
        report = Report(str(pack["grant_id"]), str(pack["issuer"]))
        _verify(pack, jwks, report)
        as_keys = list(jwks) if jwks is not None else pack["keys"]
        clients = list(client_jwks) if client_jwks is not None else pack.get("client_keys", [])
        _verify_messages(pack, as_keys, clients, report)
        return report
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PackFormatError):
            raise
        raise PackFormatError(f"not a well-formed {FORMAT} document ({type(exc).__name__}: {exc})") from exc


def _verify(pack: Mapping[str, Any], jwks: Sequence[Mapping[str, Any]] | None, report: Report) -> Report:
    keys, whose = (
        (list(jwks), "any key of the given JWKS")
        if jwks is not None
        else (pack["keys"], "any key in the pack")
    )
    source = "from the given JWKS" if jwks is not None else "in the pack: compare with the AS's jwks_uri"
    report.keys = [{"kid": k.get("kid"), "thumbprint": _thumbprint(k), "source": source} for k in keys]
    report.problems += [
        f"key {k.get('kid')} in the pack holds a private member (d)" for k in pack["keys"] if "d" in k
    ]
    report.checkpoints = [_check_checkpoint(cp, keys, report.issuer, whose) for cp in pack["checkpoints"]]
    # Every position of each writer the pack shows: seq -> (hash it hashes to, prev_hash, kind).
    chains: dict[str, dict[int, tuple[str, str, str]]] = {}
    last: dict[str, int] = {}
    for raw in pack["records"]:
        writer, seq = raw.get("writer"), raw.get("seq")
        record = Record(writer, seq, str(raw.get("event")))
        report.records.append(record)
        extra = set(raw) - {*BODY, *LINK_FIELDS, "hash"}
        if extra:
            report.problems.append(
                f"record {writer} #{seq}: columns its hash does not cover: {sorted(extra)}"
            )
        if writer is None or not isinstance(seq, int):
            record.problem = "not proven (not chained: written before the trail was chained)"
            continue
        computed = record_hash(raw)
        if raw.get("hash") not in (computed, None) and flat_hash(raw) == raw.get("hash"):
            computed = raw["hash"]
        kind = "record"
        if computed != raw.get("hash"):
            record.problem, kind = "content does not match its hash (edited)", "edited"
        if seq <= last.get(writer, 0):
            report.problems.append(f"records {writer} #{last[writer]} and #{seq} out of order (swapped)")
        last[writer] = max(seq, last.get(writer, 0))
        if seq in chains.setdefault(writer, {}):
            report.problems.append(f"record {writer} #{seq} appears twice")
        chains[writer][seq] = (computed, str(raw.get("prev_hash")), kind)
    for writer, links in pack["links"].items():
        for item in links:
            seq = int(item["seq"])
            computed = link_hash(item)
            if item.get("writer") != writer or item.get("hash", computed) != computed:
                report.problems.append(f"link {writer} #{seq}: its fields do not give its hash (changed)")
            if item.get("grant_id") == report.grant_id:
                report.problems.append(
                    f"record {writer} #{seq} of this grant is hidden behind a link (dropped)"
                )
            if seq in chains.setdefault(writer, {}):
                report.problems.append(f"record {writer} #{seq} appears twice")
                continue
            chains[writer][seq] = (computed, str(item.get("prev_hash")), "link")
    _walk(report, chains)
    return report


def _walk(report: Report, chains: Mapping[str, Mapping[int, tuple[str, str, str]]]) -> None:
    """Rule 4: each record from the head of the checkpoint nearest at or after it. When that
    checkpoint does not verify, the record is not proven (a forged checkpoint proves nothing)."""
    assigned: dict[tuple[int, str], list[Record]] = {}
    for record in report.records:
        if record.problem or record.writer is None or record.seq is None:
            continue
        writer, seq = record.writer, record.seq
        fits = [cp for cp in report.checkpoints if cp.heads.get(writer, (0, ""))[0] >= seq]
        if not fits:
            record.problem = "not proven (after the newest checkpoint)"
            continue
        cp = min(fits, key=lambda c: (c.heads[writer][0], c.id))
        if cp.problem:
            record.problem = f"not proven (checkpoint {cp.id} does not verify)"
            continue
        assigned.setdefault((cp.id, writer), []).append(record)
    by_id = {cp.id: cp for cp in report.checkpoints}
    for (cp_id, writer), records in assigned.items():
        seq, expected = by_id[cp_id].heads[writer]
        lowest, chain, reason = min(r.seq or 0 for r in records), chains.get(writer, {}), ""
        walked: set[int] = set()
        edited = False  # the record's own line names it
        while seq >= lowest:
            position = chain.get(seq)
            if position is None:
                reason = f"record {writer} #{seq} missing (dropped)"
                break
            hash_, prev, kind = position
            if kind == "edited":
                reason, edited = f"record {writer} #{seq}: content does not match its hash (edited)", True
                break
            if hash_ != expected:
                above = f"checkpoint {cp_id}" if not walked else f"record #{seq + 1}"
                reason = f"record {writer} #{seq} is not the one {above} names (rewritten)"
                break
            walked.add(seq)
            expected, seq = prev, seq - 1
        if reason and not edited and reason not in report.problems:
            report.problems.append(reason)
        for record in records:
            if record.seq in walked:
                record.proven_by = cp_id
            else:
                record.problem = f"not proven by checkpoint {cp_id}: {reason}"


def _verify_messages(
    pack: Mapping[str, Any],
    as_keys: Sequence[Mapping[str, Any]],
    client_keys: Sequence[Mapping[str, Any]],
    report: Report,
) -> None:
    """Rule 5: each signed message is the one a proven record names, and its signature verifies."""
    proven = {(r.writer, r.seq) for r in report.records if r.proven_by is not None}
    details: dict[tuple[Any, Any], Any] = {}
    for raw in pack["records"]:
        try:
            details[(raw.get("writer"), raw.get("seq"))] = json.loads(raw.get("detail") or "{}")
        except (TypeError, ValueError):
            continue
    for raw in pack.get("signed_messages", []):
        kind, token = str(raw["kind"]), str(raw["jws"])
        message = Message(kind, str(raw["client_id"]), raw.get("writer"), raw.get("seq"), str(raw["sha256"]))
        report.messages.append(message)
        detail = details.get((message.writer, message.seq))
        named = detail.get(kind) if isinstance(detail, dict) else None
        if not isinstance(named, dict):
            message.problem = "no record of the pack names it"
        elif hashlib.sha256(token.encode()).hexdigest() != named.get("sha256"):
            message.problem = "it is not the message its record names (SHA-256 differs: swapped or edited)"
        elif (message.writer, message.seq) not in proven:
            message.problem = "the record naming it is not proven"
        elif kind == "request_object":
            thumbprint = named.get("key_thumbprint")
            keys = [k for k in client_keys if _thumbprint(k) == thumbprint]
            claims = _verified_claims(token, keys)
            if claims is None:
                message.problem = f"the signature does not verify with a client key ({thumbprint})"
            elif claims.get("iss") != message.client_id:
                message.problem = f"signed by {claims.get('iss')!r}, not the client"
            else:
                message.signer = f"the client's key with thumbprint {thumbprint}"
        else:
            claims = _verified_claims(token, as_keys)
            if claims is None:
                message.problem = "the signature does not verify with a key of the AS"
            elif claims.get("iss") != report.issuer or claims.get("aud") != message.client_id:
                message.problem = "its iss is not the pack's issuer or its aud not the client"
            else:
                message.signer = f"the AS key {_b64json(token.split('.')[0]).get('kid')}"


def _verified_claims(token: str, keys: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The payload of ``token`` if it verifies with one of ``keys`` (FAPI2 algorithms only)."""
    try:
        header = _b64json(token.split(".")[0])
    except (ValueError, IndexError):
        return None
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        return None
    for key in keys:
        try:
            with warnings.catch_warnings():  # joserfc warns that RFC 9864 renames EdDSA
                warnings.simplefilter("ignore")
                claims = json.loads(
                    jws.deserialize_compact(token, JWKRegistry.import_key(dict(key)), [header["alg"]]).payload
                )
        except (JoseError, ValueError, TypeError):
            continue
        if isinstance(claims, dict):
            return claims
    return None


def read_pack(text: str) -> Any:
    """The pack's JSON (one UTF-8 document)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PackFormatError(f"not JSON: {exc}") from exc
