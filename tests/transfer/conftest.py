"""Fixtures for batch-format tests: keys, a writer with defaults, readers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transfer_helpers import DESTINATION, NOW, SOURCE, new_signing_key, request_records

from shared.records import validate_record
from transfer.format import (
    BatchRejected,
    Record,
    VerifyReport,
    WrittenBatch,
    open_batch,
    verify_file,
    write_batch,
)
from transfer.format.keys import SigningKey


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return new_signing_key()


@pytest.fixture(scope="session")
def public_keys(signing_key: SigningKey) -> dict[str, Any]:
    return {signing_key.key_id: signing_key.public_key}


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir()
    return path


WriteFn = Callable[..., WrittenBatch]


@pytest.fixture
def write(outbox: Path, signing_key: SigningKey) -> WriteFn:
    """``write(**overrides)`` writes a 3-record requests batch req → resp unless told otherwise."""

    def _write(**overrides: Any) -> WrittenBatch:
        arguments: dict[str, Any] = {
            "stream": "requests",
            "source": SOURCE,
            "destination": DESTINATION,
            "seq": 1,
            "prev_digest": None,
            "signing_key": signing_key,
            "records": request_records(3),
            "now": NOW,
        }
        arguments.update(overrides)
        directory = arguments.pop("directory", outbox)
        return write_batch(directory, **arguments)

    return _write


@pytest.fixture
def read(public_keys: dict[str, Any]) -> Callable[..., list[Record]]:
    """``read(path, **overrides)``: open, iterate to the end, return the records."""

    def _read(path: Path, **overrides: Any) -> list[Record]:
        arguments: dict[str, Any] = {
            "expected_destination": DESTINATION,
            "public_keys": public_keys,
            "now": NOW,
            "validate_record": validate_record,
        }
        arguments.update(overrides)
        with open_batch(path, **arguments) as batch:
            return list(batch.records())

    return _read


@pytest.fixture
def verify(public_keys: dict[str, Any]) -> Callable[..., VerifyReport]:
    def _verify(path: Path, **overrides: Any) -> VerifyReport:
        arguments: dict[str, Any] = {
            "expected_destination": DESTINATION,
            "public_keys": public_keys,
            "now": NOW,
            "validate_record": validate_record,
        }
        arguments.update(overrides)
        return verify_file(path, **arguments)

    return _verify


@pytest.fixture
def rejected(read: Callable[..., list[Record]]) -> Callable[..., list[str]]:
    """``rejected(path, **overrides)``: assert reading raises BatchRejected; return reasons."""

    def _rejected(path: Path, **overrides: Any) -> list[str]:
        with pytest.raises(BatchRejected) as caught:
            read(path, **overrides)
        assert caught.value.reasons
        return caught.value.reasons

    return _rejected
