"""The password policy (NIST SP 800-63B 5.1.1.2, server/passwords.py): each rule with the input
that breaks it and its exact message, the one just inside it, and NFKC before hashing and
verifying (with the once-only fallback for a hash made before normalisation). The policy through
the CLI and the sign-in page: tests/server/test_user_accounts.py."""

from __future__ import annotations

import unicodedata

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from corridor.server import passwords
from corridor.server.passwords import (
    MAX_LENGTH,
    NEW_PASSWORD,
    PasswordRefused,
    check_new_password,
    common_passwords,
    hash_password,
    verify,
)

SHORT = (
    "the password has 7 characters; it needs at least 8 "
    "(15 or more recommended: a few unrelated words make a good one)"
)
COMMON = "the password is in a list of commonly used or breached passwords; choose another"
HAS_NAME = "the password contains the user name; choose one that does not"
TOO_LONG = f"the password is longer than {MAX_LENGTH} characters"
CONTROL = "the password contains a control character (a tab, line end or similar)"

pytestmark = pytest.mark.production_argon2  # the hashing tests check the parameters (tests/conftest.py)


def refused(password: str, username: str = "alice") -> str:
    with pytest.raises(PasswordRefused) as caught:
        check_new_password(password, username)
    message = str(caught.value)
    assert password not in message or len(password) < 3  # never echoed
    return message


def test_the_checks_are_named_after_the_rules_in_order() -> None:
    assert [check.__name__ for check in NEW_PASSWORD] == [
        "limit_length",
        "require_minimum_length",
        "refuse_control_characters",
        "refuse_user_name",
        "refuse_common_password",
    ]
    assert all("NIST SP 800-63B 5.1.1.2" in (check.__doc__ or "") for check in NEW_PASSWORD)


def test_seven_characters_are_refused_and_eight_accepted() -> None:
    assert refused("zqxjvkw") == SHORT
    assert check_new_password("zqxjvkwb", "alice") == "zqxjvkwb"


def test_length_counts_code_points_after_nfkc() -> None:
    # Seven letters with a decomposed accent are 8 code points typed, 7 after NFKC: refused.
    decomposed = "zqxjvk" + "e\u0301"
    assert len(decomposed) == 8 and refused(decomposed) == SHORT
    # Four astral characters (8 UTF-16 units, 16 UTF-8 bytes) are 4 characters.
    assert "has 4 characters" in refused("\U0001f600" * 4)
    assert check_new_password("\U0001f600" * 8, "alice") == "\U0001f600" * 8


def test_at_least_64_characters_are_accepted_and_a_bound_caps_the_rest() -> None:
    assert check_new_password("z" * 64, "alice") == "z" * 64
    assert check_new_password("q" * MAX_LENGTH, "alice") == "q" * MAX_LENGTH
    assert refused("q" * (MAX_LENGTH + 1)) == TOO_LONG
    assert refused("q" * 10_000) == TOO_LONG  # 10 kB: refused before any normalisation


def test_control_characters_are_refused() -> None:
    for char in ("\x00", "\t", "\r", "\x1b", "\x7f", "\x85"):
        assert refused(f"long enough{char}phrase") == CONTROL
    assert refused("long enough \ud800 phrase") == CONTROL  # a lone surrogate
    assert check_new_password("long enough phrase with spaces", "alice")


def test_a_password_containing_the_user_name_is_refused_in_any_case() -> None:
    assert refused("alice", "alice") == SHORT.replace("7", "5")  # too short first
    assert refused("alice1234", "alice") == HAS_NAME
    assert refused("my ALICE password", "alice") == HAS_NAME
    assert refused("\uff21\uff2c\uff29\uff23\uff25 in fullwidth", "alice") == HAS_NAME  # NFKC
    assert refused("zoë's long password", "zoe\u0308") == HAS_NAME  # a decomposed name
    assert check_new_password("bob's long password", "alice")


def test_a_user_name_of_fewer_than_three_characters_is_not_looked_for() -> None:
    assert check_new_password("a long password", "al") == "a long password"
    assert check_new_password("xo xo xo xo", "xo") == "xo xo xo xo"
    assert refused("a long password with bob", "bob") == HAS_NAME  # three characters: looked for


@pytest.mark.parametrize("password", ["password1", "qwerty123", "PASSWORD1", "QwErTy123", "iloveyou"])
def test_listed_passwords_are_refused_in_any_case(password: str) -> None:
    assert refused(password) == COMMON


def test_a_listed_password_in_fullwidth_is_refused() -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "password1")  # U+FF50 U+FF41 ...
    assert refused(fullwidth) == COMMON


def test_the_list_is_zxcvbn_s_and_is_loaded_once() -> None:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    assert common_passwords() is common_passwords()
    assert len(common_passwords()) >= len(set(FREQUENCY_LISTS["passwords"])) - 10
    assert "correct horse battery staple" not in common_passwords()


def test_no_composition_rule() -> None:
    """5.1.1.2: "Verifiers SHOULD NOT impose other composition rules": all lower case, no digit."""
    assert check_new_password("correct horse battery staple", "alice")
    assert check_new_password("zzzzzzzzzzzzzzzz", "alice")


@given(st.text(max_size=80), st.text(min_size=1, max_size=20))
def test_any_input_is_accepted_or_refused_with_a_message(password: str, username: str) -> None:
    try:
        form = check_new_password(password, username)
    except PasswordRefused as refusal:
        assert str(refusal).startswith("the password ")
        return
    assert form == unicodedata.normalize("NFKC", form) and len(form) >= 8


# -- hashing and verifying ------------------------------------------------------------------------


def test_the_hash_is_argon2id_of_the_nfkc_form() -> None:
    stored = hash_password("cre\u0300me bru\u0302le\u0301e")  # decomposed
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, "crème brûlée")  # composed: the NFKC form
    assert verify(stored, "crème brûlée") == passwords.Verified(True)
    assert verify(stored, "cre\u0300me bru\u0302le\u0301e").ok
    assert not verify(stored, "creme brulee").ok


def test_fullwidth_typing_matches_a_password_set_in_ascii() -> None:
    stored = hash_password("Zebra lantern 42")
    typed = "".join(chr(ord(c) + 0xFEE0) if c != " " else "\u3000" for c in "Zebra lantern 42")
    assert verify(stored, typed).ok


def test_a_hash_of_the_typed_form_from_before_nfkc_verifies_once_and_asks_for_a_rehash() -> None:
    typed = "\uff26\uff55\uff4c\uff4c width secret"  # "Full" in fullwidth forms, as set before
    legacy = PasswordHasher().hash(typed)
    outcome = verify(legacy, typed)
    assert outcome.ok and outcome.rehash is not None
    assert PasswordHasher().verify(outcome.rehash, "Full width secret")  # the NFKC form
    again = verify(outcome.rehash, typed)
    assert again.ok and again.rehash is None  # the normalised hash needs no fallback


def test_an_ascii_password_costs_one_verification_and_no_rehash() -> None:
    stored = PasswordHasher().hash("plain ascii words")  # a hash from before: NFKC is the identity
    assert verify(stored, "plain ascii words") == passwords.Verified(True)
    assert verify(stored, "plain ascii word") == passwords.Verified(False)


def test_older_argon2_parameters_are_rehashed() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("plain ascii words")
    outcome = verify(weak, "plain ascii words")
    assert outcome.ok and outcome.rehash is not None
    assert not PasswordHasher().check_needs_rehash(outcome.rehash)


def test_a_broken_hash_or_a_surrogate_is_a_failure_not_an_exception() -> None:
    assert verify("not a hash", "whatever words") == passwords.Verified(False)
    assert verify(hash_password("whatever words"), "whatever \ud800") == passwords.Verified(False)
