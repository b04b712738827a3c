"""Signing in and out of the panel: the session cookie's flags, a new session id at each
login, idle and absolute timeouts, logout that ends the session at once, the API's login
throttling and lockout, and who may sign in at all."""

from __future__ import annotations

import time

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from request_network.models import AuditLog
from shared.db import reading
from shared.panel.sessions import digest, key_prefix
from tests.panel.panel_support import (
    PASSWORD,
    REDIS_URL,
    csrf_of,
    make_settings,
    panel_app,
    sign_in,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
JAR = {"domain": "testserver.local", "path": "/admin"}  # where the client keeps the cookie
COOKIE = "ferry_panel_request"  # the request network's panel session


def cookie_header(reply, name: str = COOKIE) -> str:
    found = [h for h in reply.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, reply.headers
    return found[0]


def session_key(client: TestClient) -> str:
    return key_prefix("request") + digest(client.cookies.get(COOKIE))


def login_reply(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_a_page_without_a_session_sends_the_browser_to_sign_in(client, people):
    reply = client.get("/admin/users?sort=role", follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/admin/login?next=%2Fadmin%2Fusers%3Fsort%3Drole"
    # an htmx call is told where to go instead of being given the login page to swap in
    reply = client.get("/admin/dashboard/live", headers={"HX-Request": "true"})
    assert (reply.status_code, reply.headers["hx-redirect"]) == (401, "/admin/login")
    # and a state change without a session does nothing but redirect
    reply = client.post(f"/admin/users/{people['alice']}/unlock", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/admin/login")


def test_the_session_cookie_is_httponly_strict_and_secure(client, people):
    reply = login_reply(client, "root")
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/"
    flags = [part.strip().lower() for part in cookie_header(reply).split(";")]
    assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= set(flags)
    assert reply.headers["cache-control"] == "no-store"


def test_the_cookie_is_not_secure_in_the_demo(db, tmp_path, people):
    settings = make_settings(db, tmp_path / "t", mode="demo")
    with TestClient(panel_app(settings)) as client:  # plain http, as the demo serves it
        reply = login_reply(client, "root")
    flags = [part.strip().lower() for part in cookie_header(reply).split(";")]
    assert "secure" not in flags and {"httponly", "samesite=strict"} <= set(flags)


def test_redis_holds_only_a_digest_of_the_session_id(client, people):
    sign_in(client, "root")
    session_id = client.cookies.get(COOKIE)
    store = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in store.scan_iter(match="panel:*")]
    assert keys == [key_prefix("request") + digest(session_id)]
    assert session_id not in str(store.hgetall(keys[0]))
    assert 0 < store.ttl(keys[0]) <= 30 * 60  # the idle timeout


def test_each_login_starts_a_new_session_and_ends_the_one_before(client, people):
    # an id planted before login (session fixation) is not the one the login gives
    client.cookies.set(COOKIE, "planted-by-someone-else", **JAR)
    sign_in(client, "root")
    first = client.cookies.get(COOKIE)
    assert first != "planted-by-someone-else"
    # signing in again from the same browser: a new id, and the old session ends
    client.cookies.delete(COOKIE, **JAR)
    form = client.get("/admin/login")
    client.cookies.set(COOKIE, first, **JAR)
    reply = client.post(
        "/admin/login",
        data={
            "username": "root",
            "password": "correct horse battery",
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    assert reply.status_code == 303
    second = client.cookies.get(COOKIE)
    assert second not in (None, first)
    old = TestClient(client.app, base_url="https://testserver")
    old.cookies.set(COOKIE, first)
    assert old.get("/admin/users", follow_redirects=False).status_code == 303
    assert client.get("/admin/users").status_code == 200


def test_logout_ends_the_session_at_once(client, people):
    token = sign_in(client, "root")
    session_id = client.cookies.get(COOKIE)
    reply = client.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/login"
    assert f'{COOKIE}=""' in reply.headers["set-cookie"]
    replay = TestClient(client.app, base_url="https://testserver")
    replay.cookies.set(COOKIE, session_id)
    assert replay.get("/admin/users", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("field", "seconds"), [("seen", 31 * 60), ("created", 12 * 3600 + 60)], ids=["idle", "absolute"]
)
def test_a_session_ends_when_idle_or_too_old(client, people, field, seconds):
    sign_in(client, "root")
    assert client.get("/admin/users").status_code == 200
    store = redis.Redis.from_url(REDIS_URL)
    key = session_key(client)
    store.hset(key, field, repr(time.time() - seconds))
    if field == "created":  # an old session kept busy: only the absolute limit ends it
        store.hset(key, "seen", repr(time.time()))
    reply = client.get("/admin/users", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/admin/login")
    assert not store.exists(key)


def test_a_disabled_user_or_a_new_password_ends_the_session(client, people, seed):
    sign_in(client, "root")
    seed.set_active(people["root"], False)
    assert client.get("/admin/users", follow_redirects=False).status_code == 303


def test_a_plain_user_may_not_sign_in(client, people):
    reply = login_reply(client, "alice")
    assert reply.status_code == 403
    assert "for admins and operators" in reply.text
    assert f"{COOKIE}=" not in reply.headers.get("set-cookie", "")


def test_the_login_form_needs_its_own_token(client, people):
    client.get("/admin/login")
    reply = client.post(
        "/admin/login",
        data={"username": "root", "password": "correct horse battery", "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert reply.status_code == 403


def test_login_is_throttled_and_locks_out_like_the_api(db, tmp_path, people):
    settings = make_settings(db, tmp_path / "t", login_max_failures=3)
    with TestClient(panel_app(settings), base_url="https://testserver") as client:
        statuses = [login_reply(client, "root", "wrong").status_code for _ in range(4)]
        assert statuses == [401, 401, 429, 429]
        locked = login_reply(client, "root")  # the right password: still locked out
        assert locked.status_code == 429 and "retry-after" in locked.headers
        assert "too many failed logins" in locked.text
    with reading(db) as session:
        assert "account.locked" in session.scalars(select(AuditLog.action)).all()


def test_an_unknown_user_is_answered_like_a_wrong_password(client, people):
    assert login_reply(client, "nobody").status_code == 401
    assert "incorrect username or password" in login_reply(client, "nobody").text


def test_next_never_leaves_the_panel(client, people):
    page = client.get("/admin/login?next=https://elsewhere.example/")
    assert 'name="next" value="/admin/"' in page.text
    reply = client.post(
        "/admin/login",
        data={
            "username": "root",
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": "//elsewhere.example/admin",
        },
        follow_redirects=False,
    )
    assert reply.headers["location"] == "/admin/"


def test_the_timeouts_follow_the_settings_in_force(client, people, settings):
    sign_in(client, "root")
    # a SIGHUP reload replaces the API's settings: the panel reads them at each request
    client.app.state.settings = settings.model_copy(update={"panel_idle_minutes": 5})
    assert client.get("/admin/users").status_code == 200
    assert 0 < redis.Redis.from_url(REDIS_URL).ttl(session_key(client)) <= 5 * 60


def test_without_redis_sign_in_fails_closed(db, tmp_path, people):
    from tests.request_network.request_api_helpers import closed_port

    down = f"redis://127.0.0.1:{closed_port()}/0"
    settings = make_settings(db, tmp_path / "t", redis_url=down, broker_url=down)
    with TestClient(panel_app(settings), base_url="https://testserver") as client:
        assert login_reply(client, "root").status_code == 503
        client.cookies.set(COOKIE, "some-session-id")
        reply = client.get("/admin/users")
        assert reply.status_code == 503 and "session store" in reply.text


def test_a_pages_own_refresh_does_not_keep_the_session_alive(client, people):
    sign_in(client, "root")
    store = redis.Redis.from_url(REDIS_URL)
    key = session_key(client)
    store.hset(key, "seen", repr(time.time() - 600))
    poll = client.get("/admin/dashboard/live", headers={"HX-Request": "true", "X-Panel-Poll": "1"})
    assert poll.status_code == 200
    assert float(store.hget(key, "seen")) < time.time() - 500  # not activity
    assert client.get("/admin/users").status_code == 200
    assert float(store.hget(key, "seen")) > time.time() - 60  # a page the admin opened is
