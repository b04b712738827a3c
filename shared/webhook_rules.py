"""The webhook channel's rules, pure (no database, no network I/O): where an endpoint may
point (the admin's allow-list), which event kinds a role may subscribe to, endpoint secrets
(made, sealed at rest, opened), the Standard Webhooks signature, the payload, and the retry
schedule (docs/NOTIFICATIONS.md, "Webhooks").

Allow-list entries (`webhook_allowed_hosts`): a host name (`hooks.example.org`), every
subdomain of a domain (`*.example.org`, not the domain itself), or an address or network
(`192.0.2.7`, `10.20.0.0/16`, `2001:db8::/32`). A URL naming a host must match a name
entry, a URL naming an address a network entry. At send time the host is resolved again and
each address must lie in a network entry; a host allowed by name may also resolve to public
(globally routable) addresses. So a name can never be rebound to loopback, link-local,
private or metadata addresses that no network entry lists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AfterValidator, SecretStr

from shared.notification_kinds import KINDS

MAX_URL = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes
SEALED_PREFIX = "v1."
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# -- destinations ----------------------------------------------------------------------------

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def _host_name(text: str) -> str | None:
    """`text` as a lower-case DNS name without a trailing dot, or None if it is not one (an
    all-digit last label is refused: resolvers read "127.1" or "2130706433" as addresses)."""
    name = text.lower().removesuffix(".")
    if len(name) > 253 or not _HOSTNAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
        return None
    return name


def allowed_host(entry: str) -> str:
    """An allow-list entry, checked and normalised (a network in its canonical form)."""
    text = entry.strip().lower()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    wildcard = text.startswith("*.")
    name = _host_name(text[2:] if wildcard else text)
    if name is None:
        raise ValueError(f"not a host name, *.domain, address or network: {entry[:100]!r}")
    return f"*.{name}" if wildcard else name


AllowedHost = Annotated[str, AfterValidator(allowed_host)]


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str]
    domains: tuple[str, ...]  # ".example.org" for "*.example.org"
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> AllowList:
        names, domains, networks = set(), [], []
        for entry in map(allowed_host, entries):
            if entry.startswith("*."):
                domains.append(entry[1:])
            elif entry[0].isdigit() or ":" in entry:
                networks.append(ipaddress.ip_network(entry))
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(domains), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.domains or self.networks)

    def names_host(self, host: str) -> bool:
        return host in self.names or any(host.endswith(d) for d in self.domains)

    def holds(self, address: Address) -> bool:
        address = _unmapped(address)
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class Destination:
    """Where a webhook URL points: scheme, host (a name, or an address as text), port."""

    scheme: str
    host: str
    port: int
    address: Address | None  # the host, when the URL names an address

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


def destination(url: str) -> Destination:
    """The URL's destination; ValueError saying what is wrong with it."""
    if len(url) > MAX_URL:
        raise ValueError(f"at most {MAX_URL} characters")
    if any(c.isspace() for c in url):
        raise ValueError("no white space in a URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs")
    if "@" in parts.netloc:
        raise ValueError("no user name or password in the URL")
    if parts.fragment or url.endswith("#"):
        raise ValueError("no #fragment in the URL")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not host or port == 0:
        raise ValueError("the URL names no host" if not host else "port 0")
    try:
        address: Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None and _host_name(host) is None:
        raise ValueError(f"not a valid host name: {host[:100]!r}")
    return Destination(scheme, str(address) if address else _host_name(host) or host, port, address)


def webhook_url(url: str) -> str:
    destination(url)
    return url


def refusal(dest: Destination, allow: AllowList) -> str | None:
    """Why the allow-list refuses this destination, or None."""
    if not allow:
        return "no webhook destination is allowed yet: an admin lists them in webhook_allowed_hosts"
    if dest.address is not None:
        if allow.holds(dest.address):
            return None
        return f"{dest.address} is not in a network that webhook_allowed_hosts lists"
    if allow.names_host(dest.host):
        return None
    return f"{dest.host} is not a host that webhook_allowed_hosts lists"


def address_refusal(
    dest: Destination, addresses: Iterable[Address], allow: AllowList
) -> str | None:
    """At send time: why the destination, resolved to `addresses`, is refused, or None."""
    why = refusal(dest, allow)
    if why is not None:
        return why
    for address in map(_unmapped, addresses):
        if allow.holds(address) or (dest.address is None and address.is_global):
            continue
        return f"{dest.host} resolves to {address}, outside the allowed networks"
    return None


# -- who may subscribe to what ---------------------------------------------------------------

AUDIENCES = {
    "user": ("user",),
    "operator": ("user", "operators"),
    "admin": ("user", "operators", "admins"),
}


def kinds_for_role(role: str) -> tuple[str, ...]:
    """The kinds a user of `role` may subscribe an endpoint to: their own events, and the
    operational ones their role hears of."""
    audiences = AUDIENCES.get(role, ())
    return tuple(kind for kind, spec in KINDS.items() if spec.audience in audiences)


def may_receive(event: Any, owner_id: str, role: str) -> bool:
    """Whether the owner of an endpoint hears of `event` (as its in-app recipients do)."""
    if event.audience == "user":
        return event.user_id == owner_id
    return event.audience in AUDIENCES.get(role, ())


# -- secrets and signatures ------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: "v1," + base64(HMAC-SHA256(key, id.timestamp.body))."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Sealer:
    """Endpoint secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from
    `webhook_secret_key`, or from `jwt_secret` when that is not set, each bound to its
    endpoint's id (a sealed secret copied to another row does not open)."""

    def __init__(self, key_material: bytes) -> None:
        info = b"ferry webhook endpoint secrets v1"
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key_material)
        self._aead = AESGCM(key)

    @classmethod
    def of(cls, webhook_secret_key: SecretStr | None, jwt_secret: SecretStr) -> Sealer:
        chosen = webhook_secret_key or jwt_secret
        return cls(chosen.get_secret_value().encode())

    def seal(self, secret: str, bound_to: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), bound_to.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, bound_to: str) -> str:
        """The secret; ValueError if it was sealed under another key or for another row."""
        if not sealed.startswith(SEALED_PREFIX):
            raise ValueError("not a sealed secret")
        raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except InvalidTag:
            raise ValueError("the secret does not open with this key") from None


def sealing_key(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < 32:
        raise ValueError("webhook_secret_key must be at least 32 characters")
    return value


SealingKey = Annotated[SecretStr | None, AfterValidator(sealing_key)]

# -- payloads and retries --------------------------------------------------------------------


def payload(event: Any, *, network: str) -> bytes:
    """The body sent for `event` (minified JSON; the signature covers these exact bytes)."""
    at: datetime = event.at
    return orjson.dumps(
        {
            "type": event.kind,
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "data": {
                "id": event.id,
                "network": network,
                "severity": event.severity,
                "resolved": bool(event.resolved),
                "title": event.title,
                "body": event.body,
                "data": dict(event.data or {}),
            },
        }
    )


def backoff(
    attempts: int,
    *,
    base: float,
    cap: float,
    jitter: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base·2^(n−1), at most
    `cap`, less up to `jitter` of itself at random; never sooner than the receiver's
    `Retry-After` (itself at most `cap`)."""
    delay = min(cap, base * 2 ** min(attempts - 1, 62)) * (1 - jitter * rng())
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return delay


def retry_after(headers: Mapping[str, str]) -> float | None:
    """A `Retry-After` in seconds (the delay form; a date is ignored)."""
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


__all__ = [
    "AllowList",
    "AllowedHost",
    "Destination",
    "Sealer",
    "SealingKey",
    "address_refusal",
    "allowed_host",
    "backoff",
    "destination",
    "kinds_for_role",
    "may_receive",
    "new_secret",
    "payload",
    "refusal",
    "retry_after",
    "sign",
    "webhook_url",
]
