"""Ed25519 signing keys: generate, load, identify (key id = sha256 prefix of the raw key)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from transfer.format.fsutil import write_file_atomically
from transfer.format.names import check_network_id

__all__ = [
    "PRIVATE_KEY_SUFFIX",
    "PUBLIC_KEY_SUFFIX",
    "KeyFileError",
    "SigningKey",
    "generate_keypair",
    "key_id",
    "load_public_keys",
    "load_signing_key",
]

PRIVATE_KEY_SUFFIX = ".ed25519.pem"
PUBLIC_KEY_SUFFIX = ".pub.pem"
_MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(Exception):
    """A key file is missing, unreadable, or not an Ed25519 key of the expected kind."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of sha256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """A network's private key and its key id."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        return cls(key_id(private_key.public_key()), private_key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> str:
        """Base64 (standard alphabet, padded) Ed25519 signature of ``data``."""
        return base64.b64encode(self.private_key.sign(data)).decode("ascii")

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def generate_keypair(directory: Path, network_id: str) -> tuple[Path, Path]:
    """Write ``<network_id>.ed25519.pem`` (0600) and ``<network_id>.pub.pem``; never overwrite."""
    check_network_id(network_id)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{network_id}{PRIVATE_KEY_SUFFIX}"
    public_path = directory / f"{network_id}{PUBLIC_KEY_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"refusing to overwrite existing key file {path}")
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_file_atomically(private_path, private_pem, mode=0o600)
    write_file_atomically(public_path, public_pem, mode=0o644)
    return private_path, public_path


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if not path.is_file():
            raise KeyFileError(f"{what} {path} not found or not a regular file")
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise KeyFileError(f"cannot read {what} {path}: {error.strerror}") from error
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{what} {path} is too large to be a key")
    return data


def load_signing_key(path: Path) -> SigningKey:
    """Load a PKCS8 PEM Ed25519 private key (unencrypted)."""
    path = Path(path)
    data = _read_key_file(path, "signing key")
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"signing key {path} is not a readable PEM private key") from error
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyFileError(f"signing key {path} is not an Ed25519 private key")
    return SigningKey.from_private_key(private_key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load one SubjectPublicKeyInfo PEM Ed25519 public key."""
    path = Path(path)
    data = _read_key_file(path, "public key")
    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"public key {path} is not a readable PEM public key") from error
    if not isinstance(public_key, Ed25519PublicKey):
        raise KeyFileError(f"public key {path} is not an Ed25519 public key")
    return public_key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id; each path is a PEM file or a directory of ``*.pub.pem``."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(path.glob(f"*{PUBLIC_KEY_SUFFIX}"))
        elif path.exists():
            files = [path]
        else:
            raise KeyFileError(f"public key path {path} does not exist")
        for file in files:
            public_key = load_public_key(file)
            keys[key_id(public_key)] = public_key
    return keys
