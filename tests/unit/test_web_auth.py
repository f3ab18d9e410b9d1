"""Password hashing and token hashing, without a database."""

from __future__ import annotations

import pytest

from hub.storage.credentials import check_name, hash_password, token_hash, verify_password


def test_password_hash_verifies_only_the_right_password() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct hors", hashed)
    assert hash_password("correct horse") != hashed  # salted


@pytest.mark.parametrize("hashed", ["", "plain", "$argon2id$v=19$broken", "$2b$12$abc"])
def test_unreadable_hashes_never_verify(hashed: str) -> None:
    assert not verify_password("anything", hashed)


def test_token_hash_is_stable_sha256_hex() -> None:
    assert token_hash("iot_abc") == token_hash("iot_abc")
    assert token_hash("iot_abc") != token_hash("iot_abd")
    assert len(token_hash("iot_abc")) == 64


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "semi;colon", "ünïcode"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name must be"):
        check_name("user", name)


def test_good_names_pass() -> None:
    assert check_name("user", "ops.lead@site-1") == "ops.lead@site-1"
