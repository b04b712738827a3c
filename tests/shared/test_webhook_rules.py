"""The webhook channel's pure rules: the allow-list and URLs, who may subscribe to what, the
Standard Webhooks signature (checked with the `standardwebhooks` reference library, an
implementation independent of ours), secrets sealed at rest, and the retry schedule."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from shared.notification_kinds import KINDS
from shared.webhook_rules import (
    AllowList,
    Sealer,
    address_refusal,
    allowed_host,
    backoff,
    destination,
    kinds_for_role,
    may_receive,
    new_secret,
    payload,
    refusal,
    retry_after,
    sign,
)

ALLOW = AllowList.of(["hooks.example.org", "*.corp.example", "10.20.0.0/16", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("entry", "normal"),
    [
        ("Hooks.Example.ORG.", "hooks.example.org"),
        ("*.Corp.Example", "*.corp.example"),
        ("10.20.3.4/16", "10.20.0.0/16"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("2001:DB8::/32", "2001:db8::/32"),
    ],
)
def test_allow_list_entries_are_normalised(entry, normal):
    assert allowed_host(entry) == normal


@pytest.mark.parametrize(
    "entry", ["http://x.org", "*", "*.", "a..b", "-a.org", "x" * 300, "10.0.0.0/33", "a b", ""]
)
def test_allow_list_entries_that_are_not_hosts_are_refused(entry):
    with pytest.raises(ValueError):
        allowed_host(entry)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/ferry",
        "http://hooks.example.org:8080/x?y=1",
        "https://a.b.corp.example/",
        "http://10.20.1.2:9000/",
        "http://[2001:db8::1]/in",
        "http://[::ffff:10.20.0.9]/",
    ],
)
def test_allowed_destinations(url):
    assert refusal(destination(url), ALLOW) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example.org/", "not a host that webhook_allowed_hosts lists"),
        ("https://corp.example/", "not a host"),  # *.domain: subdomains only
        ("http://10.21.0.1/", "not in a network"),
        ("http://127.0.0.1/", "not in a network"),
        ("http://169.254.169.254/latest/meta-data", "not in a network"),
    ],
)
def test_refused_destinations(url, why):
    assert why in refusal(destination(url), ALLOW)


def test_nothing_is_allowed_until_an_admin_lists_hosts():
    assert "webhook_allowed_hosts" in refusal(destination("https://x.org/"), AllowList.of([]))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.org/", "only http:// and https://"),
        ("javascript:alert(1)", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("https://user:pw@hooks.example.org/", "no user name or password"),
        ("https://hooks.example.org/#x", "no #fragment"),
        ("https://hooks.example.org:99999/", "port"),
        ("https:///path", "names no host"),
        ("http://127.1/", "not a valid host name"),  # a resolver reads it as 127.0.0.1
        ("http://h%6fsts.example.org/", "not a valid host name"),
        ("http://hooks.example.org /", "white space"),
        ("https://hooks.example.org/" + "a" * 2048, "at most 2048"),
    ],
)
def test_malformed_urls_say_why(url, why):
    with pytest.raises(ValueError, match=why):
        destination(url)


def test_at_send_time_every_resolved_address_must_be_allowed():
    named, literal = destination("https://hooks.example.org/"), destination("http://10.20.0.5/")
    public, inside = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.20.9.9")
    loopback, metadata = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("169.254.169.254")
    assert address_refusal(named, [public, inside], ALLOW) is None
    # a name rebound to an internal address that no network entry lists is refused
    for bad in (loopback, metadata, ipaddress.ip_address("10.99.0.1")):
        assert f"resolves to {bad}" in address_refusal(named, [public, bad], ALLOW)
    assert address_refusal(literal, [ipaddress.ip_address("10.20.0.5")], ALLOW) is None


def test_who_may_subscribe_to_what():
    user, operator, admin = (set(kinds_for_role(r)) for r in ("user", "operator", "admin"))
    assert "request.failed" in user and "batch.quarantined" not in user
    assert "batch.quarantined" in operator and "component.down" not in operator
    assert admin == set(KINDS)
    assert kinds_for_role("nobody") == ()
    mine = SimpleNamespace(audience="user", user_id="u1")
    ops = SimpleNamespace(audience="operators", user_id=None)
    assert may_receive(mine, "u1", "user") and not may_receive(mine, "u2", "admin")
    assert may_receive(ops, "o", "operator") and not may_receive(ops, "u1", "user")


def test_the_signature_verifies_with_the_reference_library():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44  # 32 bytes
    body = b'{"type":"request.failed","data":{"id":"e1"}}'
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "e1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "e1", now, body),
    }
    assert Webhook(secret).verify(body, headers) == orjson.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"e1", b"e2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_signature_matches_the_reference_library_byte_for_byte():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    body = b'{"a":1}'
    ours = sign(secret, "msg_1", int(at.timestamp()), body)
    assert ours == Webhook(secret).sign("msg_1", at, body)


def test_secrets_are_sealed_at_rest_and_bound_to_their_endpoint():
    sealer = Sealer.of(None, SecretStr("a" * 40))
    secret = new_secret()
    sealed = sealer.seal(secret, "endpoint-1")
    assert secret not in sealed and sealed.startswith("v1.")
    assert sealer.seal(secret, "endpoint-1") != sealed  # a fresh nonce each time
    assert sealer.open(sealed, "endpoint-1") == secret
    with pytest.raises(ValueError):
        sealer.open(sealed, "endpoint-2")  # copied to another row: does not open
    with pytest.raises(ValueError):
        Sealer.of(SecretStr("b" * 40), SecretStr("a" * 40)).open(sealed, "endpoint-1")


def test_backoff_grows_to_its_cap_with_jitter_and_respects_retry_after():
    plain = [backoff(n, base=30, cap=3600, jitter=0, rng=lambda: 1) for n in range(1, 10)]
    assert plain == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(3, base=30, cap=3600, jitter=0.5, rng=lambda: 1) == 60
    assert backoff(3, base=30, cap=3600, jitter=0.5, rng=lambda: 0) == 120
    assert backoff(1, base=30, cap=3600, jitter=0, retry_after=600) == 600
    assert backoff(1, base=30, cap=3600, jitter=0, retry_after=10**9) == 3600
    assert backoff(10_000, base=30, cap=3600, jitter=0) == 3600
    assert retry_after({"retry-after": "120"}) == 120
    assert retry_after({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None


def test_the_payload_is_standard_webhooks_shaped():
    event = SimpleNamespace(
        id="e1",
        at=datetime(2026, 12, 5, 14, 31, 2, tzinfo=UTC),
        kind="request.failed",
        severity="warning",
        resolved=False,
        title="Request 5b1e0c2d failed",
        body="timeout",
        data={"request_id": "5b1e0c2d"},
    )
    assert orjson.loads(payload(event, network="request")) == {
        "type": "request.failed",
        "timestamp": "2026-12-05T14:31:02Z",
        "data": {
            "id": "e1",
            "network": "request",
            "severity": "warning",
            "resolved": False,
            "title": "Request 5b1e0c2d failed",
            "body": "timeout",
            "data": {"request_id": "5b1e0c2d"},
        },
    }
