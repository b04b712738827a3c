"""The API key format: shape, offline checksum, stored HMAC, and the scopes roles may hold."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.security.api_keys import (
    BASE62,
    CHECKSUM_LENGTH,
    KEY_LENGTH,
    ROLE_SCOPES,
    SCOPES,
    MalformedKey,
    checksum,
    generate_key,
    hmac_matches,
    key_hmac,
    parse_key,
    scopes_for_role,
)

SHAPE = re.compile(r"ferry_(live|test)_[a-z2-7]{12}_[0-9A-Za-z]{32}[0-9A-Za-z]{6}")
PEPPER = "pepper-for-tests-0123456789abcdef0123"


@pytest.mark.parametrize("env", ["live", "test"])
def test_generated_key_has_the_documented_shape_and_parses_back(env):
    made = generate_key(env)

    assert SHAPE.fullmatch(made.key), made.key
    assert len(made.key) == KEY_LENGTH == 62
    parsed = parse_key(made.key)
    assert (parsed.environment, parsed.key_id, parsed.key) == (env, made.key_id, made.key)
    assert parsed.prefix == f"ferry_{env}_{made.key_id}"
    assert made.key.startswith(parsed.prefix + "_")


def test_keys_and_key_ids_are_random():
    made = [generate_key("live") for _ in range(200)]
    assert len({k.key for k in made}) == len({k.key_id for k in made}) == 200


def test_unknown_environment_cannot_be_generated():
    with pytest.raises(ValueError):
        generate_key("prod")


def test_checksum_is_fixed_width_base62_of_crc32():
    assert checksum("") == "0" * CHECKSUM_LENGTH  # crc32("") == 0
    for body in ("ferry_live_x", "a" * 200, "ferry_test_abcdefghijkl_" + "Z" * 32):
        value = checksum(body)
        assert len(value) == CHECKSUM_LENGTH and set(value) <= set(BASE62)


def test_every_single_character_typo_is_caught_offline():
    """CRC32 catches every burst of up to 32 bits, so every one-character change."""
    key = generate_key("live").key
    for i, char in enumerate(key):
        for other in ("0", "a", "Z", "_", "7"):
            if other == char:
                continue
            typo = key[:i] + other + key[i + 1 :]
            with pytest.raises(MalformedKey):
                parse_key(typo)


def test_swapped_neighbours_are_caught_offline():
    key = generate_key("test").key
    for i in range(len(key) - 1):
        if key[i] == key[i + 1]:
            continue
        swapped = key[:i] + key[i + 1] + key[i] + key[i + 2 :]
        with pytest.raises(MalformedKey):
            parse_key(swapped)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1],
        lambda k: k + "x",
        lambda k: " " + k[1:],
        lambda k: k.upper(),
        lambda k: k.replace("ferry_", "fairy_"),
        lambda k: k.replace("_live_", "_prod_"),
        lambda k: "",
        lambda k: k * 1000,
    ],
    ids=["truncated", "extended", "space", "upper", "prefix", "environment", "empty", "huge"],
)
def test_malformed_keys_are_refused(mangle):
    with pytest.raises(MalformedKey):
        parse_key(mangle(generate_key("live").key))


@given(st.text(max_size=80))
def test_arbitrary_text_is_never_accepted(text):
    with pytest.raises(MalformedKey):
        parse_key(text)


def test_a_key_with_a_recomputed_checksum_parses():
    """The checksum catches typos, not attackers: it is public, the HMAC is the check."""
    key = generate_key("live").key
    body = key[:-CHECKSUM_LENGTH]
    forged = body[:-1] + ("A" if body[-1] != "A" else "B")
    assert parse_key(forged + checksum(forged)).key_id == parse_key(key).key_id


def test_stored_hmac_is_sha256_hex_peppered_and_not_the_key():
    key = generate_key("live").key
    stored = key_hmac(key, PEPPER)

    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert key not in stored and key_hmac(key, PEPPER) == stored
    assert key_hmac(key, PEPPER + "x") != stored
    assert hmac_matches(key, PEPPER, stored)
    assert not hmac_matches(key, PEPPER + "x", stored)
    assert not hmac_matches(generate_key("live").key, PEPPER, stored)
    assert not hmac_matches(key, PEPPER, None)


def test_roles_nest_and_unknown_roles_get_nothing():
    assert set(SCOPES) == ROLE_SCOPES["admin"]
    assert ROLE_SCOPES["user"] < ROLE_SCOPES["operator"] < ROLE_SCOPES["admin"]
    assert {"requests:read", "requests:write"} <= scopes_for_role("user")
    assert "admin" not in scopes_for_role("operator")
    assert scopes_for_role("superuser") == frozenset()
