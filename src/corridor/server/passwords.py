"""Passwords: the policy a new one must meet, and the one Argon2id hasher (issue 18).

The policy is NIST SP 800-63B 5.1.1.2 for memorized secrets chosen by a subscriber: a length
floor and a generous ceiling, no composition rules, and a refusal of values known to be commonly
used or breached and of context-specific words (the user name). Each rule is one named check;
:data:`NEW_PASSWORD` composes them. The messages say what is wrong, never the password.

Unicode passwords are normalised with NFKC (5.1.1.2: "the verifier SHOULD apply the
Normalization Process for Stabilized Strings using either the NFKC or NFKD normalization") before
they are checked, hashed and verified, so a password typed in fullwidth forms or with a
decomposed accent is the one that was set. Hashes made before this normalisation were of the
typed form; for those :func:`verify` tries the typed form once more when NFKC changes it, and
asks for a rehash of the normalised form (the store's compare-and-set), so the fallback is used
at most once per such account.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: 5.1.1.2: "at least 8 characters in length"; the message recommends :data:`RECOMMENDED_LENGTH`.
MIN_LENGTH = 8
RECOMMENDED_LENGTH = 15
#: 5.1.1.2: "at least 64 characters" SHOULD be permitted; this bound only caps the hashing input.
MAX_LENGTH = 1024
#: A user name shorter than this is not looked for inside a password: two letters occur in
#: countless good passwords and add nothing to a guesser's dictionary (a shorter name equal to
#: the password is below :data:`MIN_LENGTH` anyway).
MIN_NAME_IN_PASSWORD = 3
#: What ``corridor user add/passwd`` reads from standard input at most (bytes); more is refused.
MAX_INPUT_BYTES = 4 * MAX_LENGTH + 2

_hasher = PasswordHasher()  # Argon2id, RFC 9106 parameters of argon2-cffi


class PasswordRefused(ValueError):
    """A password the policy refuses; the message says which rule, in one line."""


def normalised(password: str) -> str:
    """NIST SP 800-63B 5.1.1.2: the NFKC form, which is what is checked, hashed and verified."""
    return unicodedata.normalize("NFKC", password)


# -- the checks (each takes the NFKC form and the stored user name) ---------------------------------


def require_minimum_length(password: str, username: str) -> None:
    """NIST SP 800-63B 5.1.1.2: at least 8 characters (Unicode code points after NFKC)."""
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(
            f"the password has {len(password)} characters; it needs at least {MIN_LENGTH} "
            f"({RECOMMENDED_LENGTH} or more recommended: a few unrelated words make a good one)"
        )


def limit_length(password: str, username: str) -> None:
    """NIST SP 800-63B 5.1.1.2: at least 64 characters are allowed; beyond MAX_LENGTH, refused
    (a bound on what is hashed)."""
    if len(password) > MAX_LENGTH:
        raise PasswordRefused(f"the password is longer than {MAX_LENGTH} characters")


def refuse_control_characters(password: str, username: str) -> None:
    """NIST SP 800-63B 5.1.1.2 accepts printing characters and spaces; a control character (a
    pasted line end, a NUL) cannot be typed into the sign-in form, so it is a mistake here."""
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in password):
        raise PasswordRefused("the password contains a control character (a tab, line end or similar)")


def refuse_user_name(password: str, username: str) -> None:
    """NIST SP 800-63B 5.1.1.2: no context-specific word such as the user name (compared without
    case, after NFKC; names shorter than MIN_NAME_IN_PASSWORD are not looked for)."""
    name = normalised(username).casefold()
    if len(name) >= MIN_NAME_IN_PASSWORD and name in password.casefold():
        raise PasswordRefused("the password contains the user name; choose one that does not")


def refuse_common_password(password: str, username: str) -> None:
    """NIST SP 800-63B 5.1.1.2: not a value known to be commonly used or compromised (the 30,000
    passwords of zxcvbn's list, drawn from breach corpora), compared without case."""
    if password.casefold() in common_passwords():
        raise PasswordRefused(
            "the password is in a list of commonly used or breached passwords; choose another"
        )


@functools.cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's list of common passwords, loaded once, on first use."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(normalised(word).casefold() for word in FREQUENCY_LISTS["passwords"])


PasswordCheck = Callable[[str, str], None]

#: A password an operator sets (``corridor user add``, ``user passwd``), in order.
NEW_PASSWORD: tuple[PasswordCheck, ...] = (
    limit_length,  # first: the other checks never run on more than MAX_LENGTH characters
    require_minimum_length,
    refuse_control_characters,
    refuse_user_name,
    refuse_common_password,
)


def check_new_password(password: str, username: str) -> str:
    """The NFKC form of ``password`` if every check of :data:`NEW_PASSWORD` passes; otherwise
    PasswordRefused naming the first rule it breaks."""
    if len(password) > 4 * MAX_LENGTH:  # NFKC of a huge input is not worth computing
        raise PasswordRefused(f"the password is longer than {MAX_LENGTH} characters")
    form = normalised(password)
    for check in NEW_PASSWORD:
        check(form, username)
    return form


# -- hashing and verifying --------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """The Argon2id hash of the NFKC form."""
    return _hasher.hash(normalised(password))


@dataclass(frozen=True)
class Verified:
    """The outcome of a password check: right or not, and a new hash to store when the stored one
    is of the un-normalised form or of older Argon2 parameters."""

    ok: bool
    rehash: str | None = None


def verify(password_hash: str, password: str) -> Verified:
    """Check ``password`` (NFKC form first; the typed form once more when NFKC changes it, for a
    hash made before normalisation) against an Argon2 hash."""
    form = normalised(password)
    if _matches(password_hash, form):
        stale = _needs_rehash(password_hash)
        return Verified(True, _hasher.hash(form) if stale else None)
    if form != password and _matches(password_hash, password):
        return Verified(True, _hasher.hash(form))  # set before NFKC: store the normalised form
    return Verified(False)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError, UnicodeError):  # UnicodeError: a lone surrogate
        return False


def _needs_rehash(password_hash: str) -> bool:
    try:
        return bool(_hasher.check_needs_rehash(password_hash))
    except InvalidHashError:
        return False
