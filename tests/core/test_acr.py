"""AcrLevels (design.md 5b): ordered, named levels; an unknown level reaches nothing and
nothing reaches it (issue 15: one value object instead of index arithmetic)."""

from __future__ import annotations

from corridor.core.acr import AcrLevels

LEVELS = AcrLevels(("password", "mfa", "passkey"))


def test_reaches_follows_the_order() -> None:
    assert LEVELS.reaches("passkey", "mfa")
    assert LEVELS.reaches("mfa", "mfa")
    assert not LEVELS.reaches("password", "mfa")


def test_an_unknown_level_reaches_nothing_and_nothing_reaches_it() -> None:
    assert not LEVELS.reaches(None, "password")
    assert not LEVELS.reaches("urn:other", "password")
    assert not LEVELS.reaches("passkey", "urn:other")
    assert LEVELS.rank("urn:other") == -1 and "urn:other" not in LEVELS


def test_weakest_of_the_requested_known_levels() -> None:
    assert LEVELS.weakest(["passkey", "urn:other", "mfa"]) == "mfa"
    assert LEVELS.weakest(["urn:other"]) is None
    assert LEVELS.weakest([]) is None
