"""Fixtures of the fault harness: one fork server per module, a fresh world per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_process import Zygote
from fault_world import World

#: Small batches, so exports and imports span several files (and kills land between them).
SETTINGS = {"BATCH_MAX_RECORDS": "120"}


@pytest.fixture(scope="module")
def fault_zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    zygote = Zygote(tmp_path_factory.mktemp("fault-zygote") / "zygote.log")
    yield zygote
    zygote.close()


@pytest.fixture
def world(tmp_path: Path, osmem_clone: Any, fault_zygote: Zygote) -> World:
    """Both networks set up (keys, databases, users, profile types, index) and identity
    carried to the request network; nothing submitted yet."""
    w = World(tmp_path / "world", osmem_clone.url, fault_zygote, settings=SETTINGS)
    w.set_up()
    return w
