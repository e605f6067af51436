"""Checking passwords and throttling guesses (issue 13 C1, C2; design.md 5c).

Every sign-in attempt is counted, in the database, against the account it names and the address
it comes from before its password is looked at, so parallel guesses cannot slip past the count
and every instance (and a restarted one) sees the same count. After ``sign_in_account_failures``
consecutive failures an account waits ``sign_in_backoff`` seconds, doubling with each further
failure up to ``sign_in_backoff_max``; a source address likewise after the higher
``sign_in_source_failures``. While either waits, no password is checked, not even the right one.
A success resets the account and takes the attempt back from the source. A name no account has is
counted exactly like one that exists (under a keyed hash of the name), so the wait reveals nothing
about which accounts exist. Second factors (TOTP) are counted per user the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyotp
from starlette.requests import Request

from corridor.core.randomness import new_secret_token
from corridor.core.rules import Rule
from corridor.server.passwords import hash_password, verify
from corridor.server.settings import Settings
from corridor.server.usernames import sign_in_name
from corridor.store.sql import Row, Store

if TYPE_CHECKING:
    from corridor.server.metrics import Metrics

_DUMMY_HASH = hash_password(new_secret_token())
#: A quiet source's count is forgotten after an hour, an account's or a second factor's after a day.
SOURCE_MEMORY = 3600.0
ACCOUNT_MEMORY = 86_400.0
#: Retry-After of a sign-in refused because every password-hashing slot was busy (issue 13 B3).
BUSY_RETRY_AFTER = 2


class ThrottlePolicy:
    """Exponential back-off (NIST SP 800-63B 5.2.2): free attempts up to a threshold, then a wait
    that doubles with each failure, capped so that a locked-out user is back within minutes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def threshold(self, key: str) -> int:
        s = self.settings
        if key.startswith("source:"):
            return s.sign_in_source_failures
        if key.startswith("totp:"):
            return s.second_factor_failures
        return s.sign_in_account_failures

    def wait(self, key: str, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (0: none)."""
        over = failures - self.threshold(key)
        if over < 0:
            return 0.0
        s = self.settings
        return float(min(s.sign_in_backoff_max, s.sign_in_backoff * 2 ** min(over, 32)))

    def forget(self, key: str) -> float:
        return SOURCE_MEMORY if key.startswith("source:") else ACCOUNT_MEMORY


@dataclass
class Attempt:
    """The outcome of one password attempt."""

    #: The user, when the password was checked and is right.
    user: Row | None = None
    #: When the attempt was refused unchecked: until when the account or source waits.
    waiting_until: float = 0.0
    #: The account's user id, when the name is an account's (for the evidence record).
    user_id: str | None = None
    #: What the evidence record of a failure says: account, source, count, any wait now begun.
    detail: dict[str, Any] = field(default_factory=dict)
    #: Refused unchecked and uncounted: every password-hashing slot was taken (issue 13 B3).
    busy: bool = False


@dataclass
class CodeCheck:
    """The outcome of one second-factor code."""

    ok: bool = False
    #: When the code was refused unchecked: until when the user's codes wait.
    waiting_until: float = 0.0
    #: For the evidence record of a failure: the count, and the wait it began if it did.
    detail: dict[str, Any] = field(default_factory=dict)
    rule: str = Rule.RFC_6238


def retry_after(until: float, now: float) -> str:
    """RFC 9110 10.2.3: whole seconds, at least 1."""
    return str(max(1, math.ceil(until - now)))


def waiting_message(until: float, what: str = "Too many failed sign-ins") -> str:
    """What the form says while a wait lasts: when to try again, nothing about the account."""
    when = time.strftime("%H:%M:%S UTC", time.gmtime(math.ceil(until)))
    return f"{what}. Try again after {when}."


def unchecked(attempt: Attempt, now: float) -> tuple[int, str, str] | None:
    """Status, message and Retry-After of an attempt refused without looking at its password:
    503 while every hashing slot is busy (issue 13 B3), 429 while the account or source waits."""
    if attempt.busy:
        return 503, "The server is busy. Try again in a moment.", str(BUSY_RETRY_AFTER)
    if attempt.waiting_until:
        return 429, waiting_message(attempt.waiting_until), retry_after(attempt.waiting_until, now)
    return None


class SignIns:
    """Password checks and the throttle of one AS process (the counts are in the store)."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.policy = ThrottlePolicy(settings)
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self._name_key: bytes | None = None
        #: Issue 13 B3: at most this many Argon2 checks at once; beyond it, refuse (never queue).
        self.hashing_slots = settings.password_hash_concurrency or _usable_cpus()
        self._hashing = threading.BoundedSemaphore(self.hashing_slots)

    # -- who is trying ---------------------------------------------------------------------

    def source(self, request: Request) -> str:
        """The address an attempt comes from: the peer, or the last X-Forwarded-For hop when the
        peer is a trusted proxy (the same list that may forward client certificates). IPv6
        addresses count per /64, the block one subscriber usually has."""
        peer = request.client.host if request.client else ""
        address = _address(peer)
        if address is not None and any(address in net for net in self._trusted):
            hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
            forwarded = _address(hops[-1]) if hops and hops[-1] else None
            address = forwarded or address
        if address is None:
            return "unknown"
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)

    def _account_key(self, user: Row | None, username: str) -> str:
        """``user:ID`` for an account; for any other name an HMAC of it under a secret of this
        database (the trail must not keep what was typed: it may be a password)."""
        if user is not None:
            return f"user:{user['id']}"
        if self._name_key is None:
            secret = self.store.keys.secret("sign_in_names", new_secret_token, time.time())
            self._name_key = hashlib.sha256(secret.encode()).digest()
        digest = hmac.new(self._name_key, username.encode("utf-8", "replace"), hashlib.sha256)
        return f"name:{digest.hexdigest()}"

    # -- passwords ---------------------------------------------------------------------------

    def password(self, username: str, password: str, source: str, now: float) -> Attempt:
        """Take a hashing slot (or refuse at once, uncounted, when none is free), count the
        attempt against the account and the source, then (unless either waits) check the
        password. A dummy hash is verified for unknown names, so the answer takes as long
        either way (no user enumeration by timing)."""
        if not self._hashing.acquire(blocking=False):
            attempt = Attempt(busy=True)
        else:
            try:
                attempt = self._password(username, password, source, now)
            finally:
                self._hashing.release()
        self._count("password", attempt.user is not None, attempt.busy, attempt.waiting_until)
        return attempt

    def _count(self, factor: str, ok: bool, busy: bool, waiting_until: float) -> None:
        """Issue 18: sign-in metrics by factor and result (no user, no source)."""
        if self.metrics is not None:
            result = "busy" if busy else "throttled" if waiting_until else "success" if ok else "failure"
            self.metrics.sign_in(factor, result)

    def _password(self, username: str, password: str, source: str, now: float) -> Attempt:
        valid = 0 < len(username) <= 255 and username.isprintable()
        name = sign_in_name(username) if valid else None  # RFC 8265, as stored (issue 13 C6)
        user = self.store.users.by_name(name) if name is not None else None
        account, origin = self._account_key(user, name or username), f"source:{source}"
        counted, state = self.store.replay.count_attempt([account, origin], now, self.policy)
        detail: dict[str, Any] = {"account": account, "source": source}
        user_id = user["id"] if user else None
        if not counted:
            until = max(row["locked_until"] for row in state.values())
            return Attempt(waiting_until=until, user_id=user_id, detail=detail)
        # NIST SP 800-63B 5.1.1.2: the NFKC form (server/passwords.py), the dummy hash checked
        # the same way for unknown names. A disabled account (``corridor user disable``) fails
        # like a wrong password, so the answer never confirms a password of a disabled account.
        verified = verify(user["password_hash"] if user else _DUMMY_HASH, password)
        if user is not None and user.get("disabled_at") is not None:
            detail["account_disabled"] = True
        elif verified.ok and user is not None:
            if verified.rehash is not None:  # un-normalised or older parameters (once per account)
                self.store.users.rehash_password(user["id"], user["password_hash"], verified.rehash)
            self.store.replay.forgive_attempt([account], [origin], now, self.policy)
            return Attempt(user=user, user_id=user_id)
        detail["failures"] = state[account]["failures"]
        locked = max(row["locked_until"] for row in state.values())
        if locked > now:
            detail["locked_until"] = locked
        return Attempt(user_id=user_id, detail=detail)

    # -- second factors ------------------------------------------------------------------------

    def totp(self, user: Row | None, code: str, now: float) -> CodeCheck:
        """RFC 6238 5.2 / NIST SP 800-63B 5.2.2 (issue 13 C2): a well-formed code is counted
        against the user, in the database, before it is checked, so a new sign-in gives no fresh
        guesses; while the user waits no code is checked, not even the right one. A code of
        this step or one either side is accepted, each once (replay cache)."""
        check = self._totp(user, code, now)
        self._count("totp", check.ok, False, check.waiting_until)
        return check

    def _totp(self, user: Row | None, code: str, now: float) -> CodeCheck:
        secret = user.get("totp_secret") if user else None
        if user is None or not secret or not re.fullmatch(r"[0-9]{6}", code):
            return CodeCheck()
        counted, state = self.count_second_factor(user["id"], now)
        if not counted:
            return CodeCheck(waiting_until=state["locked_until"])
        totp = pyotp.TOTP(secret)
        for step in (-1, 0, 1):
            at = now + step * totp.interval
            if hmac.compare_digest(totp.at(at), code):
                key = f"totp:{user['id']}:{totp.timecode(datetime.fromtimestamp(at, UTC))}"
                if self.store.replay.remember_once(key, now + 3 * totp.interval, now):
                    self.second_factor_passed(user["id"], now)
                    return CodeCheck(ok=True)
                break
        if state["locked_until"] > now:
            detail = {"failures": state["failures"], "locked_until": state["locked_until"]}
            return CodeCheck(detail=detail, rule=Rule.RFC_6238_5_2_TOO_MANY_WRONG_CODES)
        return CodeCheck()

    def second_factor_waiting(self, user_id: str, now: float) -> float:
        """Until when this user's second factor waits (0: it does not)."""
        until = float(self.store.replay.throttle_state(f"totp:{user_id}", now)["locked_until"])
        return until if until > now else 0.0

    def count_second_factor(self, user_id: str, now: float) -> tuple[bool, Row]:
        """Count one code against the user (not the browser session), before it is checked."""
        key = f"totp:{user_id}"
        counted, state = self.store.replay.count_attempt([key], now, self.policy)
        return counted, state[key]

    def second_factor_passed(self, user_id: str, now: float) -> None:
        self.store.replay.forgive_attempt([f"totp:{user_id}"], [], now, self.policy)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text[:64])
    except ValueError:
        return None
