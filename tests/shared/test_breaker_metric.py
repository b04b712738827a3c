"""`ferry_circuit_breaker_state`: 0 closed, 1 half-open, 2 open per dependency; declared
breakers show closed until they move; with several processes a scrape shows the most open
state any of them holds (prometheus-client's multiprocess mode, `livemax`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shared.metrics import declare_breakers, exposition, set_breaker_state
from tests.ops_support import samples

ROOT = Path(__file__).resolve().parents[2]
STATE = "ferry_circuit_breaker_state"

#: Sets its breakers as argv says ("search=open"), declares "redis", and exits.
SETTER = """
import sys
from shared.metrics import declare_breakers, set_breaker_state
declare_breakers("redis")
for pair in sys.argv[1:]:
    dependency, state = pair.split("=")
    set_breaker_state(dependency, state)
"""


def _state(dependency: str) -> float | None:
    return REGISTRY.get_sample_value(STATE, {"dependency": dependency})


def test_a_declared_breaker_is_closed_until_it_moves():
    declare_breakers("test-breaker-declared")
    assert _state("test-breaker-declared") == 0
    set_breaker_state("test-breaker-declared", "open")
    declare_breakers("test-breaker-declared")  # declaring again changes nothing
    assert _state("test-breaker-declared") == 2
    set_breaker_state("test-breaker-declared", "half_open")
    assert _state("test-breaker-declared") == 1
    set_breaker_state("test-breaker-declared", "closed")
    assert _state("test-breaker-declared") == 0


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="unknown breaker state 'ajar'"):
        set_breaker_state("test-breaker-refused", "ajar")
    assert _state("test-breaker-refused") is None


def test_one_scrape_shows_the_most_open_state_of_every_process(tmp_path, monkeypatch):
    shared_dir = tmp_path / "prometheus"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared_dir)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", SETTER, *states], env=env, cwd=ROOT, timeout=60, check=False
        )
        for states in (["search=open"], ["search=half_open"], [])
    ]
    assert [run.returncode for run in runs] == [0, 0, 0]

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared_dir))
    assert samples(exposition().decode(), STATE) == {
        (("dependency", "redis"),): 0.0,
        (("dependency", "search"),): 2.0,
    }
