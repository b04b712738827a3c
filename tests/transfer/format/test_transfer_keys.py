"""Ed25519 keys: generation, loading, key ids."""

from __future__ import annotations

import base64
import hashlib
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from transfer.format.keys import (
    KeyFileError,
    generate_keypair,
    key_id,
    load_public_keys,
    load_signing_key,
)


def test_generate_keypair_writes_private_0600_and_public_pem(tmp_path):
    private_path, public_path = generate_keypair(tmp_path / "keys", "req")

    assert private_path.name == "req.ed25519.pem"
    assert public_path.name == "req.pub.pem"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private_path.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public_path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "req.ed25519.pem",
        "req.pub.pem",
    ]


def test_generate_keypair_refuses_to_overwrite(tmp_path):
    private_path, _ = generate_keypair(tmp_path, "req")
    before = private_path.read_bytes()

    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        generate_keypair(tmp_path, "req")

    assert private_path.read_bytes() == before


def test_generate_keypair_refuses_if_only_the_public_key_exists(tmp_path):
    (tmp_path / "req.pub.pem").write_text("old")

    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path, "req")

    assert not (tmp_path / "req.ed25519.pem").exists()


def test_generate_keypair_refuses_a_bad_network_id(tmp_path):
    with pytest.raises(ValueError):
        generate_keypair(tmp_path, "../evil")


def test_signing_key_and_public_keys_agree(tmp_path):
    private_path, public_path = generate_keypair(tmp_path, "req")

    signing_key = load_signing_key(private_path)
    by_file = load_public_keys([public_path])
    by_directory = load_public_keys([tmp_path])

    assert list(by_file) == [signing_key.key_id] == list(by_directory)
    signature = signing_key.sign(b"payload")
    by_file[signing_key.key_id].verify(base64.b64decode(signature), b"payload")


def test_key_id_is_sha256_prefix_of_raw_public_key(signing_key):
    raw = signing_key.public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    assert key_id(signing_key.public_key) == hashlib.sha256(raw).hexdigest()[:16]
    assert signing_key.key_id == key_id(signing_key.public_key)


def test_directory_loads_every_public_key_and_ignores_private_ones(tmp_path):
    generate_keypair(tmp_path, "req")
    generate_keypair(tmp_path, "resp")
    (tmp_path / "notes.txt").write_text("not a key")

    assert len(load_public_keys([tmp_path])) == 2


def test_missing_signing_key_is_a_clear_error(tmp_path):
    with pytest.raises(KeyFileError, match="not found"):
        load_signing_key(tmp_path / "absent.ed25519.pem")


def test_non_ed25519_keys_are_refused(tmp_path):
    ec_key = generate_private_key(SECP256R1())
    private_pem = tmp_path / "ec.ed25519.pem"
    private_pem.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_pem = tmp_path / "ec.pub.pem"
    public_pem.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        load_signing_key(private_pem)
    with pytest.raises(KeyFileError, match="not an Ed25519 public key"):
        load_public_keys([public_pem])


def test_garbage_key_files_are_refused(tmp_path):
    garbage = tmp_path / "x.pub.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")

    with pytest.raises(KeyFileError):
        load_signing_key(garbage)
    with pytest.raises(KeyFileError):
        load_public_keys([tmp_path])
    with pytest.raises(KeyFileError, match="does not exist"):
        load_public_keys([tmp_path / "missing"])


def test_signing_key_repr_hides_the_private_key(signing_key):
    assert repr(signing_key) == f"SigningKey(key_id={signing_key.key_id!r})"
