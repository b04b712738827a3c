"""Users and profile types: the response network is the authority; they cross to the request side.

Service tests run on the rollback session (`rs_session`). The identity flow test carries real
batch files from the response network's outbox to the request network's inbox, imports them
into the PostgreSQL request database (real commits, emptied before and after) and logs in
through the request API.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from request_network.app import create_app
from request_network.models import ProfileType as ReplicaProfileType
from request_network.models import User as ReplicaUser
from request_network.services.exchange import import_batches
from response_network.models import AuditLog, ProfileType, User
from response_network.services.identity import (
    IdentityError,
    create_user,
    export_identity,
    load_profile_types,
)
from shared.db import transaction
from shared.security.passwords import hash_password, verify_password
from tests.conftest import network_settings
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.exchange import ExportedBatch

pytestmark = pytest.mark.postgres

ARTICLES: dict[str, Any] = {
    "name": "articles",
    "index": "articles",
    "fields": {"title": "text", "category": "keyword", "year": "integer"},
    "return_fields": ["title", "year"],
    "max_size": 50,
    "rate_limits": {"minute": 30, "hour": 500, "day": 2000},
}
PAYROLL: dict[str, Any] = {
    "name": "payroll",
    "index": "payroll",
    "fields": {"employee": "keyword", "salary": "integer"},
    "return_fields": ["employee"],
    "max_size": 10,
    "rate_limits": {"minute": 5, "hour": 50, "day": 100},
}
PASSWORD = "Plaintext-Never-Crosses-7"


def write_profiles(directory: Path, items: Any, name: str = "profile_types.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(items))
    return path


@pytest.fixture
def articles(rs_session: Session, tmp_path: Path) -> ProfileType:
    (loaded,) = load_profile_types(write_profiles(tmp_path, [ARTICLES]), session=rs_session)
    return loaded


def new_user(session: Session, username: str = "dana", password: str = PASSWORD, **kw) -> User:
    return create_user(
        session=session,
        username=username,
        password=password,
        profile_type="articles",
        rounds=4,
        **kw,
    )


def user_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(User)).scalar_one()


# create_user -------------------------------------------------------------------------------


def test_create_user_stores_a_bcrypt_hash_and_audits_without_the_password(rs_session, articles):
    user = new_user(rs_session)

    stored = rs_session.get(User, user.id)
    assert (stored.username, stored.profile_type, stored.role) == ("dana", "articles", "user")
    assert stored.active and stored.version == 1
    assert stored.password_hash.startswith("$2b$04$")
    assert PASSWORD not in stored.password_hash
    assert verify_password(PASSWORD, stored.password_hash)
    audit = rs_session.execute(
        select(AuditLog).where(AuditLog.action == "user.created", AuditLog.target == user.id)
    ).scalar_one()
    assert PASSWORD not in json.dumps(audit.detail)
    assert stored.password_hash not in json.dumps(audit.detail)


def test_create_user_refuses_an_unknown_profile_type(rs_session, articles):
    with pytest.raises(IdentityError, match="nosuchtype"):
        create_user(
            session=rs_session, username="eve", password=PASSWORD, profile_type="nosuchtype"
        )
    assert user_count(rs_session) == 0


def test_create_user_refuses_a_duplicate_username(rs_session, articles):
    first = new_user(rs_session, "dana")

    with pytest.raises(IdentityError, match="dana"):
        new_user(rs_session, "dana", password="another password")

    (only,) = rs_session.execute(select(User)).scalars().all()
    assert only.id == first.id
    assert verify_password(PASSWORD, only.password_hash)


@pytest.mark.parametrize("password", ["p" * 73, "é" * 37], ids=["73-ascii", "74-bytes"])
def test_create_user_refuses_a_password_over_72_bytes(rs_session, articles, password):
    with pytest.raises(ValueError, match="72 bytes"):
        new_user(rs_session, "longpass", password=password)
    assert user_count(rs_session) == 0


def test_create_user_accepts_a_password_of_exactly_72_bytes(rs_session, articles):
    user = new_user(rs_session, password="é" * 36)
    assert verify_password("é" * 36, user.password_hash)


@pytest.mark.parametrize(
    ("username", "role"),
    [("has space", "user"), ("x" * 65, "user"), ("fine", "superuser")],
    ids=["bad-username", "long-username", "unknown-role"],
)
def test_create_user_refuses_what_could_not_cross_the_gap(rs_session, articles, username, role):
    with pytest.raises(IdentityError):
        new_user(rs_session, username, role=role)
    assert user_count(rs_session) == 0


# load_profile_types ------------------------------------------------------------------------


def test_load_creates_profile_types_at_version_1(rs_session, tmp_path):
    loaded = load_profile_types(write_profiles(tmp_path, [ARTICLES, PAYROLL]), session=rs_session)

    assert sorted((p.name, p.version) for p in loaded) == [("articles", 1), ("payroll", 1)]
    stored = rs_session.get(ProfileType, "payroll")
    assert stored.fields == PAYROLL["fields"]
    assert stored.max_size == 10


def test_reloading_the_same_file_does_not_bump_the_version(rs_session, tmp_path):
    path = write_profiles(tmp_path, [ARTICLES])
    load_profile_types(path, session=rs_session)
    reordered = {**ARTICLES, "fields": dict(reversed(list(ARTICLES["fields"].items())))}

    load_profile_types(path, session=rs_session)
    load_profile_types(write_profiles(tmp_path, [reordered], "same.json"), session=rs_session)

    assert rs_session.get(ProfileType, "articles").version == 1


def test_a_real_change_bumps_the_version_once(rs_session, tmp_path):
    load_profile_types(write_profiles(tmp_path, [ARTICLES]), session=rs_session)
    changed = write_profiles(tmp_path, [{**ARTICLES, "max_size": 20}], "changed.json")

    load_profile_types(changed, session=rs_session)
    load_profile_types(changed, session=rs_session)  # the same again: no change

    stored = rs_session.get(ProfileType, "articles")
    assert (stored.version, stored.max_size) == (2, 20)


def test_unchanged_reload_has_nothing_to_export(rs_session, tmp_path, keys):
    path = write_profiles(tmp_path, [ARTICLES])
    load_profile_types(path, session=rs_session)
    out = outbound_from(network_settings("response", tmp_path, keys))
    assert [b.stream for b in export_identity(out, session=rs_session)] == ["profile_types"]

    load_profile_types(path, session=rs_session)

    assert export_identity(out, session=rs_session) == []


@pytest.mark.parametrize(
    "bad",
    [
        {**PAYROLL, "max_size": 0},
        {**PAYROLL, "return_fields": ["not_a_field"]},
        {**PAYROLL, "surprise": True},
        {"name": "payroll"},
        "payroll",
    ],
    ids=["max-size-0", "unknown-return-field", "unknown-key", "incomplete", "not-an-object"],
)
def test_a_bad_item_leaves_nothing_changed(rs_session, tmp_path, bad):
    """All or nothing: the entry point rolls back on the error, so no item is half-applied."""
    load_profile_types(write_profiles(tmp_path, [ARTICLES]), session=rs_session)
    rs_session.commit()
    before_audit = rs_session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    changed_articles = {**ARTICLES, "max_size": 5}
    new_type = {**PAYROLL, "name": "newtype", "index": "newtype"}
    path = write_profiles(tmp_path, [changed_articles, new_type, bad], "bad.json")

    with pytest.raises(IdentityError, match="item 2"), rs_session.begin_nested():
        load_profile_types(path, session=rs_session)

    rs_session.expire_all()
    stored = rs_session.get(ProfileType, "articles")
    assert (stored.version, stored.max_size) == (1, 50)
    assert rs_session.get(ProfileType, "newtype") is None
    assert rs_session.get(ProfileType, "payroll") is None
    after_audit = rs_session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    assert after_audit == before_audit


@pytest.mark.parametrize(
    "content",
    [b"{not json", json.dumps(ARTICLES).encode(), b""],
    ids=["malformed", "object-not-list", "empty"],
)
def test_an_unreadable_file_is_refused(rs_session, tmp_path, content):
    path = tmp_path / "profile_types.json"
    path.write_bytes(content)
    with pytest.raises(IdentityError):
        load_profile_types(path, session=rs_session)


def test_a_missing_file_is_refused(rs_session, tmp_path):
    with pytest.raises(IdentityError):
        load_profile_types(tmp_path / "nope.json", session=rs_session)


# The identity flow: response network → batch files → request network ----------------------


def _empty_request_db(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def request_db(pg_urls) -> Iterator[str]:
    _empty_request_db(pg_urls["request"])
    yield pg_urls["request"]
    _empty_request_db(pg_urls["request"])


class Gap:
    """Both ends of the gap: export on the response side, carry, import on the request side."""

    def __init__(self, base: Path, keys: dict[str, Path], pg_urls: dict[str, str], rs_session):
        self.rs_session = rs_session
        self.request_url = pg_urls["request"]
        self.response_settings = network_settings(
            "response", base, keys, database_url=pg_urls["response"]
        )
        self.request_settings = network_settings(
            "request", base, keys, database_url=pg_urls["request"]
        )
        self.outbound = outbound_from(self.response_settings)
        self.inbound = inbound_from(self.request_settings)

    def export(self) -> list[ExportedBatch]:
        batches = export_identity(self.outbound, session=self.rs_session)
        self.rs_session.commit()  # a batch reaches the outbox only once its row is committed
        return batches

    def carry(self, *batches: ExportedBatch) -> None:
        inbox = self.request_settings.inbox
        inbox.mkdir(parents=True, exist_ok=True)
        for batch in batches:
            for path in (batch.path, batch.path.with_name(batch.path.name + ".sha256")):
                shutil.copy2(path, inbox / path.name)

    def carry_again_from_processed(self) -> None:
        for path in self.request_settings.processed_dir.iterdir():
            shutil.copy2(path, self.request_settings.inbox / path.name)

    def import_(self) -> list[tuple[str, str]]:
        outcomes = import_batches(self.inbound, lambda: transaction(self.request_url))
        return [(o.stream, o.status) for o in outcomes]

    def login(self, client: TestClient, username: str, password: str):
        return client.post("/api/v1/auth/login", data={"username": username, "password": password})

    def replica(self, user_id: str) -> ReplicaUser | None:
        with transaction(self.request_url) as session:
            return session.get(ReplicaUser, user_id)


@pytest.fixture
def gap(tmp_path, keys, pg_urls, rs_session, request_db) -> Gap:
    return Gap(tmp_path, keys, pg_urls, rs_session)


def test_users_created_on_the_response_network_can_log_in_on_the_request_network(
    gap, rs_session, articles
):
    user = new_user(rs_session, "dana")
    batches = gap.export()
    assert [b.stream for b in batches] == ["profile_types", "users"]

    gap.carry(*batches)
    assert gap.import_() == [("profile_types", "imported"), ("users", "imported")]

    with TestClient(create_app(gap.request_settings)) as client:
        reply = gap.login(client, "dana", PASSWORD)
        assert reply.status_code == 200, reply.text
        headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        submitted = client.post(
            "/api/v1/requests",
            json={
                "profile_type": "articles",
                "query": {"query": {"match": {"field": "title", "value": "gap"}}},
            },
            headers=headers,
        )
        assert submitted.status_code == 202, submitted.text
        assert gap.login(client, "dana", PASSWORD + "!").status_code == 401
    replica = gap.replica(user.id)
    assert (replica.username, replica.profile_type, replica.version) == ("dana", "articles", 1)
    with transaction(gap.request_url) as session:
        assert session.get(ReplicaProfileType, "articles").fields == ARTICLES["fields"]


def test_the_users_batch_carries_a_bcrypt_hash_never_the_plaintext(gap, rs_session, articles):
    user = new_user(rs_session, "dana")
    batches = gap.export()

    for batch in batches:
        content = batch.path.read_bytes()
        assert PASSWORD.encode() not in content
    users_batch = next(b for b in batches if b.stream == "users")
    content = users_batch.path.read_text()
    assert user.password_hash in content
    assert "$2b$04$" in content


def test_reimporting_the_same_batch_is_a_reported_duplicate(gap, rs_session, articles):
    new_user(rs_session, "dana")
    gap.carry(*gap.export())
    assert {status for _, status in gap.import_()} == {"imported"}

    gap.carry_again_from_processed()
    assert gap.import_() == [("profile_types", "duplicate"), ("users", "duplicate")]

    with transaction(gap.request_url) as session:
        assert session.execute(select(func.count()).select_from(ReplicaUser)).scalar_one() == 1
    assert list(gap.request_settings.inbox.glob("*.jsonl")) == []


def test_an_older_version_of_a_user_never_overwrites_a_newer_one(gap, rs_session, articles):
    user = new_user(rs_session, "dana")
    first = gap.export()
    user.password_hash = hash_password("the new password", rounds=4)
    user.version += 1
    rs_session.flush()
    second = gap.export()
    assert [(b.stream, b.seq) for b in second] == [("users", 2)]
    old_users = next(b for b in first if b.stream == "users")
    profiles = next(b for b in first if b.stream == "profile_types")

    gap.carry(profiles, *second)  # the newer batch arrives first
    assert gap.import_() == [("profile_types", "imported"), ("users", "imported")]
    gap.carry(old_users)  # then the older one
    assert gap.import_() == [("users", "imported")]

    assert gap.replica(user.id).version == 2
    with TestClient(create_app(gap.request_settings)) as client:
        assert gap.login(client, "dana", "the new password").status_code == 200
        assert gap.login(client, "dana", PASSWORD).status_code == 401


def test_a_deactivated_user_can_no_longer_log_in_after_the_next_batch(gap, rs_session, articles):
    user = new_user(rs_session, "dana")
    gap.carry(*gap.export())
    gap.import_()
    user.active = False
    user.version += 1
    rs_session.flush()
    gap.carry(*gap.export())
    gap.import_()

    with TestClient(create_app(gap.request_settings)) as client:
        assert gap.login(client, "dana", PASSWORD).status_code == 401
