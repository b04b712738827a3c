"""Passwords (bcrypt, never truncated) and JWT access tokens (HS256 only, strict claims)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import bcrypt
import pytest
from jose import jwt

from shared.security.passwords import (
    MAX_PASSWORD_BYTES,
    PasswordTooLong,
    check_length,
    hash_password,
    verify_password,
)
from shared.security.tokens import REQUIRED_CLAIMS, InvalidToken, decode_token, issue_token

SECRET = "a-test-signing-secret-that-is-long-enough"
ISSUER, AUDIENCE = "ferry", "ferry-api"


# Passwords --------------------------------------------------------------------------------


def test_hash_is_bcrypt_and_verifies_only_the_right_password():
    hashed = hash_password("s3cret pass", rounds=4)

    assert hashed.startswith("$2b$04$")
    assert "s3cret" not in hashed
    assert verify_password("s3cret pass", hashed)
    assert not verify_password("s3cret pas", hashed)
    assert not verify_password("S3cret pass", hashed)


def test_same_password_hashes_differently_each_time():
    assert hash_password("again", rounds=4) != hash_password("again", rounds=4)


def test_rounds_set_the_bcrypt_cost():
    assert hash_password("x", rounds=5).startswith("$2b$05$")


@pytest.mark.parametrize(
    "password",
    ["a" * 73, "é" * 37, "🔑" * 19],  # 73, 74 and 76 bytes
    ids=["73-ascii", "74-bytes-2-byte-chars", "76-bytes-4-byte-chars"],
)
def test_hashing_refuses_passwords_over_72_bytes(password):
    assert len(password.encode()) > MAX_PASSWORD_BYTES
    with pytest.raises(PasswordTooLong, match="72 bytes"):
        hash_password(password, rounds=4)
    with pytest.raises(ValueError):
        check_length(password)


def test_72_bytes_is_the_longest_accepted_password():
    password = "é" * 36  # 72 bytes
    assert verify_password(password, hash_password(password, rounds=4))


def test_password_is_never_truncated_to_72_bytes():
    """bcrypt only reads 72 bytes: a longer password sharing them must still be refused."""
    stored = hash_password("k" * 72, rounds=4)

    assert verify_password("k" * 72, stored)
    assert not verify_password("k" * 72 + "x", stored)
    assert not verify_password("k" * 72 + "k" * 100, stored)


def test_verify_refuses_a_long_password_even_against_a_hash_of_its_prefix():
    prefix = "é" * 36
    stored = hash_password(prefix, rounds=4)
    assert not verify_password(prefix + "é", stored)


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$2b$04$short"])
def test_verify_against_a_missing_or_broken_hash_is_false(stored):
    assert verify_password("anything", stored) is False


def test_unknown_user_still_costs_a_full_bcrypt_check(monkeypatch):
    """No account → the same kind of bcrypt work as a real check (no timing oracle)."""
    costs: list[int] = []
    real_hashpw = bcrypt.hashpw

    def spy(secret: bytes, salt: bytes) -> bytes:
        costs.append(int(salt.split(b"$")[2]))
        return real_hashpw(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    assert verify_password("guess", None) is False

    assert costs, "no bcrypt work was done for an unknown user"
    assert costs[-1] >= 4


# Tokens -----------------------------------------------------------------------------------


def _claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": "user-1",
        "role": "user",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def _decode(token: str):
    return decode_token(token, secret=SECRET, issuer=ISSUER, audience=AUDIENCE)


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_issued_token_round_trips_with_all_required_claims():
    token, exp = issue_token(
        subject="user-1", role="admin", secret=SECRET, issuer=ISSUER, audience=AUDIENCE, minutes=5
    )

    claims = _decode(token)
    assert (claims.sub, claims.role) == ("user-1", "admin")
    assert abs((claims.exp - exp).total_seconds()) < 1
    raw = jwt.get_unverified_claims(token)
    assert set(REQUIRED_CLAIMS) <= set(raw)
    assert {"exp", "iat", "sub", "aud", "iss"} <= set(raw)
    assert raw["exp"] - raw["iat"] == 5 * 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_has_its_own_jti():
    make = lambda: issue_token(  # noqa: E731
        subject="u", role="user", secret=SECRET, issuer=ISSUER, audience=AUDIENCE, minutes=5
    )[0]
    assert _decode(make()).jti != _decode(make()).jti


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss", "jti", "role"])
def test_token_missing_a_required_claim_is_refused(claim):
    claims = _claims()
    del claims[claim]
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "another-api"}, {"iss": "someone-else"}, {"aud": []}],
    ids=["wrong-audience", "wrong-issuer", "no-audience"],
)
def test_token_for_another_audience_or_issuer_is_refused(overrides):
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(_claims(**overrides), SECRET, algorithm="HS256"))


def test_expired_token_is_refused():
    past = int(time.time()) - 60
    with pytest.raises(InvalidToken, match="(?i)expired"):
        _decode(jwt.encode(_claims(iat=past - 600, exp=past), SECRET, algorithm="HS256"))


def test_token_issued_with_a_negative_lifetime_is_already_expired():
    token, _ = issue_token(
        subject="u", role="user", secret=SECRET, issuer=ISSUER, audience=AUDIENCE, minutes=-1
    )
    with pytest.raises(InvalidToken):
        _decode(token)


def test_token_not_yet_valid_is_refused():
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(_claims(nbf=int(time.time()) + 3600), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("header", [{"alg": "none", "typ": "JWT"}, {"alg": "None"}])
def test_unsigned_alg_none_token_is_refused(header):
    for signature in ("", "c2lnbmF0dXJl"):
        with pytest.raises(InvalidToken):
            _decode(f"{_b64(header)}.{_b64(_claims())}.{signature}")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_with_another_hmac_algorithm_is_refused(algorithm):
    """Even signed with the right secret: the algorithm is ours to choose, not the token's."""
    with pytest.raises(InvalidToken, match="alg"):
        _decode(jwt.encode(_claims(), SECRET, algorithm=algorithm))


def test_rs256_token_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(_claims(), pem.decode(), algorithm="RS256"))


def test_token_signed_with_another_secret_is_refused():
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(_claims(), SECRET + "-other", algorithm="HS256"))


def test_tampered_payload_is_refused():
    header, _payload, signature = jwt.encode(_claims(), SECRET, algorithm="HS256").split(".")
    forged = f"{header}.{_b64(_claims(role='admin'))}.{signature}"
    with pytest.raises(InvalidToken):
        _decode(forged)


def test_tampered_signature_is_refused():
    header, payload, signature = jwt.encode(_claims(), SECRET, algorithm="HS256").split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    with pytest.raises(InvalidToken):
        _decode(forged)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "....."])
def test_garbage_is_refused(token):
    with pytest.raises(InvalidToken):
        _decode(token)


@pytest.mark.parametrize(
    "claims",
    [{"sub": 42}, {"jti": 7}, {"role": ["admin"]}, {"iat": "yesterday"}],
    ids=["int-sub", "int-jti", "list-role", "string-iat"],
)
def test_claims_of_the_wrong_type_are_refused(claims):
    with pytest.raises(InvalidToken):
        _decode(jwt.encode(_claims(**claims), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "exp",
    [lambda now: str(now + 600), lambda now: 10**20],
    ids=["string-exp", "exp-beyond-datetime"],
)
def test_validly_signed_token_with_a_malformed_exp_is_refused_not_a_crash(exp):
    """python-jose accepts these (it casts with int()); decode_token must still say InvalidToken."""
    token = jwt.encode(_claims(exp=exp(int(time.time()))), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        _decode(token)
