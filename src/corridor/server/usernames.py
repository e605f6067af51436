"""User names in one form (issue 13 C6): the PRECIS UsernameCaseMapped profile (RFC 8265 3.3),
applied where a name is created and where one is typed to sign in, so fullwidth ``ADMIN``
(U+FF21...), ``Admin`` and ``admin`` are one account, and ``alice `` (a space) or invisible
joiners are no name at all.

PRECIS maps width and case and refuses what is not an identifier, but it keeps letters of every
script, so ``alice`` with a Cyrillic U+0430 stays distinct from Latin ``alice`` while looking the same. A new
name mixing Latin, Cyrillic and Greek letters is therefore refused (the confusable case PRECIS
leaves open, RFC 8265 10.5 / UTS 39 mixed-script detection); a name wholly in one of these
scripts is accepted. Stored names are in the enforced form (migration 0007 converts older ones),
so a look-up is one equality on the enforced form of what was typed.
"""

from __future__ import annotations

import unicodedata

from precis_i18n import get_profile

_PROFILE = get_profile("UsernameCaseMapped")
#: The column's size; a longer input is refused before PRECIS runs (bounded cost, design.md 5c).
MAX_LENGTH = 255
#: Letters of these scripts look alike (Cyrillic U+0430 and Latin a, Greek U+03BF and Latin o, ...);
#: one name uses one of them.
CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


class UsernameError(ValueError):
    """A name that is not a user name; the message says why, in one line."""


def enforce(name: str) -> str:
    """RFC 8265 3.3: the UsernameCaseMapped form of ``name``, or UsernameError."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_LENGTH:
        raise UsernameError(f"a user name has 1-{MAX_LENGTH} characters")
    try:
        enforced: str = _PROFILE.enforce(name)
    except UnicodeError as exc:
        reason = str(exc).rsplit(": ", 1)[-1]  # e.g. "DISALLOWED/spaces"
        raise UsernameError(f"not a user name under RFC 8265 UsernameCaseMapped ({reason})") from exc
    if len(enforced) > MAX_LENGTH:
        raise UsernameError(f"a user name has 1-{MAX_LENGTH} characters")
    return enforced


def scripts_of(name: str) -> set[str]:
    """The confusable scripts whose letters ``name`` uses (from the Unicode character names)."""
    found = set()
    for char in name:
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in CONFUSABLE_SCRIPTS:
                found.add(script)
    return found


def new_username(name: str) -> str:
    """The enforced form of a name being created; refuses names mixing Latin, Cyrillic or Greek
    letters (issue 13 C6: look-alikes PRECIS keeps apart)."""
    enforced = enforce(name)
    scripts = scripts_of(enforced)
    if len(scripts) > 1:
        raise UsernameError(
            f"the user name mixes {' and '.join(s.title() for s in sorted(scripts))} letters "
            "(refused: such names can look like another user's)"
        )
    return enforced


def sign_in_name(typed: str) -> str | None:
    """The name to look up for what was typed on a sign-in form, or None when it is no user name."""
    try:
        return enforce(typed)
    except UsernameError:
        return None
