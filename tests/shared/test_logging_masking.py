"""Secrets masked in every log line (shared/log_masking.py, docs/OPERATIONS.md "Logs"): each
kind of secret is logged through every path (the message, its arguments, a keyword or
`extra` field, a nested dict, a bound context, an exception's message and traceback), by a
standard logger and by a structlog one, in both formats; the real output never holds the
secret and does hold its masked form."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jose import jwt
from structlog.contextvars import bound_contextvars

from shared import log_masking
from shared.log_masking import mask_text, masked
from shared.logs import formatter, get_logger
from shared.security.api_keys import generate_key
from shared.webhook_rules import new_secret
from tests.shared.logging_support import captured_logs

std = logging.getLogger("ferry.test.masking")
slog = get_logger("ferry.test.masking")


@dataclass(frozen=True)
class Secret:
    kind: str
    raw: str  # what must never appear
    field: str  # the name it goes by as a field or header
    value: str  # the field's value (the raw secret, or a header holding it)
    prose: str  # how it shows in a message
    masked: str  # what must appear instead


def _secrets() -> list[Secret]:
    key = generate_key("live").key
    token = jwt.encode({"sub": "alice", "jti": secrets.token_hex(8)}, "k" * 32, "HS256")
    password = f"pw-{secrets.token_urlsafe(18)}"
    bearer = f"opaque{secrets.token_hex(20)}"
    session = f"sess{secrets.token_hex(20)}"
    webhook = new_secret()
    smtp = f"smtp-{secrets.token_urlsafe(18)}"
    return [
        Secret("api key", key, "X-API-Key", key, f"X-API-Key: {key}", f"ferry_live_…{key[-4:]}"),
        Secret("jwt", token, "access_token", token, f"token {token} issued", f"eyJ…{token[-4:]}"),
        Secret("password", password, "password", password, f"password={password}", "…"),
        Secret(
            "authorization header",
            bearer,
            "Authorization",
            f"Bearer {bearer}",
            f"Authorization: Bearer {bearer}",
            f"Bearer …{bearer[-4:]}",
        ),
        Secret(
            "cookie header",
            session,
            "Cookie",
            f"session={session}",
            f"Cookie: session={session}",
            f"…{session[-4:]}",
        ),
        Secret(
            "webhook secret",
            webhook,
            "secret",
            webhook,
            f"signing with {webhook}",
            f"whsec_…{webhook[-4:]}",
        ),  # fmt: skip
        Secret("smtp password", smtp, "smtp_password", smtp, f"SMTP smtp_password={smtp}", "…"),
    ]


SECRETS = _secrets()


def _raise_and_log(logger: Callable[[str], None], prose: str) -> None:
    try:
        try:
            raise ValueError(prose)
        except ValueError as inner:
            raise RuntimeError(f"while connecting: {inner}") from inner
    except RuntimeError:
        logger("the step failed")


PATHS: dict[str, Callable[[Secret], None]] = {
    "stdlib message": lambda s: std.warning(s.prose),
    "stdlib argument": lambda s: std.info("seen: %s", s.prose),
    "stdlib extra field": lambda s: std.info("field", extra={s.field: s.value}),
    "stdlib nested extra": lambda s: std.info("nested", extra={"ctx": {"h": {s.field: s.value}}}),
    "stdlib exception": lambda s: _raise_and_log(std.exception, s.prose),
    "structlog message": lambda s: slog.warning(s.prose),
    "structlog argument": lambda s: slog.info("seen: %s", s.prose),
    "structlog keyword": lambda s: slog.info("field", **{s.field: s.value}),
    "structlog nested": lambda s: slog.info("nested", request={"headers": {s.field: s.value}}),
    "structlog header pairs": lambda s: slog.info("pairs", headers=[(s.field.encode(), s.value)]),
    "structlog exception": lambda s: _raise_and_log(slog.exception, s.prose),
}


def _in_bound_context(secret: Secret) -> None:
    with bound_contextvars(**{secret.field: secret.value}):
        std.info("inside a bound context")


PATHS["bound context"] = _in_bound_context


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s.kind)
def test_every_secret_is_masked_on_every_path(secret: Secret, log_format: str) -> None:
    with captured_logs(log_format) as logs:
        for path, write in PATHS.items():
            logs.clear()
            write(secret)
            out = logs.text
            assert out, path
            assert secret.raw not in out, (path, out)
            assert secret.masked in out, (path, out)
            if log_format == "json":
                logs.lines()  # every line one JSON object, the traceback inside it
            if path.endswith("exception"):
                assert "Traceback (most recent call last)" in out
                assert "while connecting" in out  # the chained cause is there, masked


def test_a_secret_in_a_url_keeps_the_rest_of_the_url() -> None:
    line = mask_text("broker amqp://ferry:s3cr3t-Pa55@rabbit:5672/ferry unreachable")
    assert line == "broker amqp://ferry:…@rabbit:5672/ferry unreachable"


def test_what_merely_names_a_secret_is_kept() -> None:
    key = generate_key("test")
    kept = [
        f"key {key.prefix} revoked",  # the public key id listings show
        "settings reload: jwt_secret, smtp_password changed",
        "http://search:9200/articles",
        "error 1f2e on GET /api/v1/requests/{request_id}: ValueError",
    ]
    for line in kept:
        assert mask_text(line) == line
    fields = {"key_id": key.key_id, "token_type": "bearer", "secret_rotated_at": "2024-05-01"}
    assert masked(fields) == fields


def test_a_short_secret_keeps_no_tail() -> None:
    assert masked({"api_key": "abc123"}) == {"api_key": "…"}
    assert mask_text("Authorization: Basic dXNlcjpwYXNzd29yZA==") == "Authorization: Basic …"


def test_a_password_is_masked_whole_whatever_it_holds() -> None:
    assert mask_text("smtp_password=Tr0ub4dor&3,x;y z") == "smtp_password=… z"
    assert (
        mask_text('{"password": "ab\\"cd ef", "user": "bob"}') == '{"password": "…", "user": "bob"}'
    )
    assert mask_text("{'password': \"it's long\"}") == "{'password': \"…\"}"


def test_a_log_call_with_wrong_arguments_still_gives_one_masked_line() -> None:
    """(Formatted directly: pytest's own log handler fails the test on such a call.)"""
    record = std.makeRecord(
        std.name, logging.INFO, __file__, 1, "two %s %s", ("password=hunter2-no",), None
    )
    line = json.loads(formatter("json").format(record))
    assert line["event"].startswith("unformattable log record")
    assert "hunter2" not in str(line) and "password=…" in line["event"]


FRAGMENTS = (
    "Bearer ", "bAsIc ", "PassWord=", "pwd: ", "x-Api_Key=", "ApiKey:", "Private_Key='",
    "authorisation: ", "Cookie: ", "set-cookie=", "ferry_live_", "FERRY_TEST_", "eyJ", "EYJ",
    "whsec_", "https://", "u:p@h", "secret", "Token", "pepper", "credential", ".", "_", "=",
    ":", " ", '"', "'", "a1B2c3D4e5F6g7H8", "0123456789abcdef0123456789abcdef",
)  # fmt: skip


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join))
def test_the_quick_check_passes_every_text_the_substitutions_would_change(text):
    """`mask_text` skips text its substring check finds nothing in: the check must find
    something in every text a substitution changes."""
    if log_masking._substitute(text) != text:
        assert log_masking._maybe(text), text
