"""Users and profile types stay right when their commands race (real PostgreSQL, real commits).

N threads start together (a barrier, no sleeps), each in its own transaction, as N
`ferry response users create` or `profile-types load` runs at once would:

- one username, one user: the unique constraint decides, and every loser gets the
  command's own "already exists" error, never a database crash;
- profile-type loads apply one after another: N loads of N different versions of one type
  leave it at version N with the last content, so no change is lost (a lost one would share
  its version with the next and never be exported).

The rows made here are committed; the fixture deletes them (and the audit rows after the
ones that were there) so the rollback-session tests of this database see nothing of them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from response_network.models import AuditLog, ProfileType, User
from response_network.services.identity import IdentityError, create_user, load_profile_types
from shared.db import transaction

pytestmark = pytest.mark.postgres

N = 24
PROFILE: dict[str, Any] = {
    "name": "racing",
    "index": "racing",
    "fields": {"title": "text", "year": "integer"},
    "return_fields": ["title"],
    "max_size": 10,
    "rate_limits": {"minute": 30, "hour": 500, "day": 2000},
}


@pytest.fixture
def rs_url(pg_urls) -> Iterator[str]:
    url = pg_urls["response"]
    with transaction(url) as session:
        last_audit = session.execute(select(func.max(AuditLog.id))).scalar() or 0
    yield url
    with transaction(url) as session:
        session.execute(delete(User).where(User.username.like("racer%")))
        session.execute(delete(ProfileType).where(ProfileType.name == PROFILE["name"]))
        session.execute(delete(AuditLog).where(AuditLog.id > last_audit))


def _all_at_once(work: list[Callable[[], Any]]) -> list[Any]:
    """Run every callable in its own thread, released together; their results or errors."""
    start = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work[i]()
        except Exception as exc:  # the test inspects every outcome
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _write(tmp_path: Path, i: int, **changes: Any) -> Path:
    """profiles-<i>.json holding PROFILE with `changes`; the load audits the file name."""
    path = tmp_path / f"profiles-{i}.json"
    path.write_text(json.dumps([{**PROFILE, **changes}]))
    return path


def test_racing_creates_of_one_username_make_one_user(rs_url, tmp_path):
    with transaction(rs_url) as session:
        load_profile_types(_write(tmp_path, 0), session=session)

    def create(password: str) -> Callable[[], str]:
        def work() -> str:
            with transaction(rs_url) as session:
                return create_user(
                    session=session,
                    username="racer",
                    password=password,
                    profile_type=PROFILE["name"],
                    rounds=4,
                ).id

        return work

    outcomes = _all_at_once([create(f"Password-number-{i}") for i in range(N)])

    made = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if not isinstance(o, str)]
    assert len(made) == 1, outcomes
    assert len(refused) == N - 1
    assert all(isinstance(e, IdentityError) and "already exists" in str(e) for e in refused)
    with transaction(rs_url) as session:
        users = session.execute(select(User.id).where(User.username == "racer")).scalars().all()
        created = session.execute(
            select(func.count()).where(
                AuditLog.action == "user.created", AuditLog.target == made[0]
            )
        ).scalar()
    assert users == made and created == 1


@pytest.mark.parametrize("exists", [False, True], ids=["new", "existing"])
def test_racing_loads_of_one_profile_type_apply_one_after_another(rs_url, tmp_path, exists):
    if exists:  # at version 1 with max_size 10; the racing loads all change it
        with transaction(rs_url) as session:
            load_profile_types(_write(tmp_path, 0), session=session)
    paths = [_write(tmp_path, i, max_size=10 + i) for i in range(1, N + 1)]  # N versions
    size_in = {p.name: 10 + i for i, p in enumerate(paths, start=1)}

    def load(path: Path) -> Callable[[], int]:
        def work() -> int:
            with transaction(rs_url) as session:
                return len(load_profile_types(path, session=session))

        return work

    outcomes = _all_at_once([load(p) for p in paths])

    assert outcomes == [1] * N  # every load went through
    with transaction(rs_url) as session:
        profile = session.get(ProfileType, PROFILE["name"])
        files = (
            session.execute(
                select(AuditLog.target)
                .where(AuditLog.action == "profile_types.loaded")
                .order_by(AuditLog.id)
            )
            .scalars()
            .all()
        )
    racing = files[1:] if exists else files
    assert sorted(racing) == sorted(p.name for p in paths)  # each load audited once
    # created at 1, then every other load a change that raised the version by one
    assert profile.version == (N + 1 if exists else N)
    assert profile.max_size == size_in[files[-1]]  # what the last load to commit wrote
