"""Property-based fuzzing of both APIs from their OpenAPI schemas (schemathesis).

Each target is one API, one role (admin, user) and one security scheme: the request API is
fuzzed once with bearer tokens and once with API keys, so no case is spent on sending both;
the response API takes bearer tokens only. Every case carries fresh credentials of the
target's user (see `fuzz_support.Credentials`); operations that declare no security get
none.

`test_fuzz` runs schemathesis's examples, coverage and fuzzing phases on every operation,
`test_stateful` its state machine (chains of calls along the links it infers from the
schema and from what `POST /api/v1/requests` answers: `Location` and the body's links).
Every schemathesis check runs on every reply (`ignored_auth` has a bearer-aware stand-in,
see `fuzz_support.bearer_auth_enforced`). A run does not stop at the first failure: each
test fails once, listing every distinct finding with the shortest reproduction seen.

In-process through each ASGI app, on a fresh migrated PostgreSQL database per network for
this module (emptied between targets) and the test Redis DB. Seeded and derandomized, with
bounded example counts (`fuzz_support.SEED`, `MAX_EXAMPLES`, `STATEFUL_EXAMPLES`,
`STATEFUL_STEPS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
from fuzz_support import (
    STATEFUL_EXAMPLES,
    STATEFUL_STEPS,
    TARGETS,
    FuzzRun,
    clear_redis,
    drop_databases,
    empty_databases,
    fresh_databases,
    make_keys,
    start,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def fuzz_databases() -> Iterator[dict[str, str]]:
    urls = fresh_databases()
    yield urls
    drop_databases(urls)


@pytest.fixture(scope="module")
def fuzz_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_keys(tmp_path_factory.mktemp("fuzz-keys"))


@pytest.fixture(params=TARGETS, ids=[t.id for t in TARGETS])
def fuzz_run(request, fuzz_databases, fuzz_keys, tmp_path) -> Iterator[FuzzRun]:
    yield start(request.param, fuzz_databases, tmp_path, fuzz_keys)
    empty_databases(fuzz_databases)
    clear_redis()


def test_fuzz(fuzz_run: FuzzRun) -> None:
    for label, run_operation in fuzz_run.operation_tests():
        try:
            run_operation()
        except Exception as exc:  # a failure is kept by `validate`; this is anything else
            fuzz_run.findings.errored(label, exc)
    fuzz_run.findings.fail_if_any()


def test_stateful(fuzz_run: FuzzRun) -> None:
    fuzz_run.state_machine().run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
    )
    fuzz_run.findings.fail_if_any()
