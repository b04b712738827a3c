"""Which stored secret a key matches (the current one or the one a rotation replaced), and a
new secret for an existing key id. No I/O."""

from __future__ import annotations

from shared.security.api_keys import (
    CURRENT,
    PREVIOUS,
    generate_key,
    key_hmac,
    matching_secret,
    parse_key,
)

PEPPER = "pepper-for-tests-0123456789abcdef0123"


def test_a_rotated_key_keeps_its_id_and_gets_a_new_valid_secret():
    old = generate_key("live")
    new = generate_key("live", old.key_id)

    assert new.key_id == old.key_id and new.key != old.key
    assert parse_key(new.key) == new  # shape and checksum hold


def test_the_key_matches_the_current_or_the_previous_secret_or_neither():
    old, new = generate_key("test"), generate_key("test")
    current, previous = key_hmac(new.key, PEPPER), key_hmac(old.key, PEPPER)

    assert matching_secret(new.key, PEPPER, current, previous) == CURRENT
    assert matching_secret(old.key, PEPPER, current, previous) == PREVIOUS
    assert matching_secret(old.key, PEPPER, current, None) is None
    assert matching_secret(generate_key("test").key, PEPPER, current, previous) is None
    assert matching_secret(new.key, PEPPER + "x", current, previous) is None
    assert matching_secret(new.key, PEPPER, None, None) is None
