"""A user's own changes cross the gap, on PostgreSQL and SQLite: a password changed on the
request network travels as a bcrypt hash, the authority applies it once and sends the user
back (`password_sync`); an admin's reset on the authority wins over an older change made on
the request network (versions decide); replays change nothing; a disabled user's queued
requests wait; a user record sent by the request network is quarantined."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from request_network import models as rq
from request_network.jobs import IDENTITY_STREAMS
from request_network.services import account
from request_network.services.exchange import export_user_changes, import_batches
from response_network import models as rs
from response_network.services import users as rs_users
from response_network.services.identity import export_users
from response_network.services.user_changes import apply_user_changes
from shared.security.passwords import hash_password, verify_password
from tests.conftest import network_settings
from tests.transfer.protocol.test_bulk_exchange import (
    BACKENDS,
    HASH,
    carry,
    count,
    make_gap,
    tx_factory,
)
from transfer.format import Record, write_batch
from transfer.format.keys import load_signing_key
from transfer.protocol.config import inbound_from, outbound_from

OLD, NEW, RESET = "the first long password", "the second long password", "an admin's reset pass"


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


@pytest.fixture
def alice(gap) -> str:
    """Alice on both networks at version 1, her password OLD."""
    gap.seed(0)
    old = hash_password(OLD, rounds=4)
    gap.rq.get_one(rq.User, "u-alice").password_hash = old
    gap.rq.commit()
    gap.rs.add(
        rs.User(
            id="u-alice",
            username="alice",
            role="user",
            profile_type="articles",
            password_hash=old,
            active=True,
            version=1,
            exported_version=1,
        )
    )
    gap.rs.commit()
    return "u-alice"


def settings_for_bcrypt(gap):
    return gap.settings["request"].model_copy(update={"bcrypt_rounds": 4})


def change_password(gap, new: str, current: str = OLD) -> None:
    account.change_password(
        settings_for_bcrypt(gap), "u-alice", current=current, new=new, session=gap.rq
    )
    gap.rq.commit()


def to_authority(gap) -> list[str]:
    export_user_changes(outbound_from(gap.settings["request"]), session=gap.rq)
    gap.rq.commit()
    return [o.status for o in gap.import_requests()]


def back_to_request(gap) -> None:
    export_users(outbound_from(gap.settings["response"]), session=gap.rs, passwords_only=True)
    gap.rs.commit()
    carry(gap.settings["response"].outbox, gap.settings["request"].inbox)
    inbound = inbound_from(gap.settings["request"])
    import_batches(inbound, tx_factory(gap.rq), streams=IDENTITY_STREAMS)


def state(session, model) -> tuple[int, str]:
    session.expire_all()
    user = session.get_one(model, "u-alice")
    return user.version, user.password_hash


def test_a_password_changed_on_the_request_network_reaches_the_authority_and_back(gap, alice):
    change_password(gap, NEW)
    assert to_authority(gap)[-1] == "imported"
    version, stored = state(gap.rs, rs.User)
    assert version == 2 and verify_password(NEW, stored, rounds=4)
    authority = gap.rs.get_one(rs.User, "u-alice")
    assert authority.sessions_valid_after is not None and not authority.password_synced
    audit = gap.rs.scalars(select(rs.AuditLog.action).where(rs.AuditLog.target == alice)).all()
    assert audit == ["user.own_change_applied"]

    back_to_request(gap)
    assert state(gap.rq, rq.User) == (2, stored), "both networks agree"
    assert gap.rs.get_one(rs.User, "u-alice").password_synced
    assert count(gap.rq, rq.UserChange) == 0


def test_an_admin_reset_wins_over_an_older_change_made_on_the_request_network(gap, alice):
    change_password(gap, NEW)  # made on version 1
    rs_users.reset_password("u-alice", RESET, session=gap.rs, rounds=4, actor="u-root")
    gap.rs.commit()  # the authority resets it meanwhile: version 2
    to_authority(gap)
    version, stored = state(gap.rs, rs.User)
    assert version == 2 and verify_password(RESET, stored, rounds=4)
    actions = gap.rs.scalars(select(rs.AuditLog.action).where(rs.AuditLog.target == alice)).all()
    assert "user.password_change_superseded" in actions

    back_to_request(gap)
    version, stored = state(gap.rq, rq.User)
    assert version == 2 and verify_password(RESET, stored, rounds=4)

    # A change made after the reset arrived (on version 2) is applied.
    change_password(gap, NEW, current=RESET)
    to_authority(gap)
    version, stored = state(gap.rs, rs.User)
    assert version == 3 and verify_password(NEW, stored, rounds=4)


def test_a_replayed_or_older_change_changes_nothing(gap, alice):
    change_password(gap, NEW)
    change_password(gap, "the third long password", current=NEW)
    to_authority(gap)  # both changes, in order: the last one stands
    version, stored = state(gap.rs, rs.User)
    assert version == 3 and verify_password("the third long password", stored, rounds=4)

    first = {
        "base_version": 1,
        "changed_at": "2026-01-01T00:00:00+00:00",
        "password_hash": hash_password(NEW, rounds=4),
    }
    apply_user_changes(gap.rs, [Record("user_change", "u-alice", 1, first)], "b-replay")
    gap.rs.commit()
    assert state(gap.rs, rs.User) == (version, stored)


def test_a_profile_change_travels_with_its_fields_only(gap, alice):
    account.update(
        "u-alice", {"email": "alice@example.org", "display_name": "Alice"}, session=gap.rq
    )
    gap.rq.commit()
    to_authority(gap)
    gap.rs.expire_all()
    user = gap.rs.get_one(rs.User, "u-alice")
    assert (user.email, user.display_name, user.version) == ("alice@example.org", "Alice", 2)
    assert user.password_synced, "no password changed: password_sync has nothing to send"


def test_a_disabled_users_queued_requests_wait(gap):
    waiting, *_ = gap.seed(1)
    gap.rq.get_one(rq.User, "u-alice").active = False
    gap.rq.commit()
    assert gap.export_requests().requests == 0
    gap.rq.get_one(rq.User, "u-alice").active = True
    gap.rq.commit()
    report = gap.export_requests()
    assert [b.record_ids for b in report.batches] == [(waiting,)]


def test_a_user_record_from_the_request_network_is_quarantined(gap, alice, tmp_path, keys):
    user = {
        "username": "mallory",
        "password_hash": HASH,
        "role": "admin",
        "profile_type": "articles",
        "active": True,
    }
    request_side = network_settings("request", tmp_path, keys)
    inbox = gap.settings["response"].inbox
    inbox.mkdir(parents=True, exist_ok=True)
    write_batch(
        inbox,
        stream="users",
        source="request",
        destination="response",
        seq=1,
        prev_digest=None,
        signing_key=load_signing_key(request_side.signing_key),
        records=[Record("user", "u-mallory", 9, user)],
        capabilities=("acks",),
    )
    (outcome,) = [o for o in gap.import_requests() if o.stream == "users"]
    assert outcome.status == "quarantined", outcome
    assert any("governed by this network" in r for r in outcome.reasons), outcome.reasons
    assert gap.rs.get(rs.User, "u-mallory") is None
