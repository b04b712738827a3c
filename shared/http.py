"""ASGI guards: refuse request bodies over a size limit before they are parsed, and admit
no more requests at once than the database pool can serve (the rest queue, then get 503).
Also: who the client is behind trusted proxies, and the headers of replies with secrets."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from shared.problems import problem_response

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: On every reply that carries a token or a secret (RFC 6749 §5.1): never stored by a cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _ip(text: str) -> IPAddress | None:
    """An address as a proxy writes it: bare, `[v6]`, `[v6]:port` or `v4:port`; an
    IPv4-mapped IPv6 address is its IPv4 address. None when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _is_trusted(address: IPAddress, trusted: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def client_address(request_or_scope: Any, trusted: Iterable[IPNetwork]) -> str:
    """The client's address for per-address limits: the TCP peer's, unless the peer is a
    trusted proxy. Then `X-Forwarded-For` is walked from the right (the hop nearest to us),
    skipping trusted proxies, and the first untrusted address is the client. A malformed
    entry ends the walk: the last good hop (a trusted proxy, or the peer) stands for the
    client, since nothing left of it can be believed. Never raises.

    `request_or_scope` is a Starlette request or an ASGI scope.
    """
    scope = getattr(request_or_scope, "scope", request_or_scope)
    peer = scope.get("client") or ("unknown", 0)
    address = _ip(str(peer[0]))
    trusted = tuple(trusted)
    if address is None:
        return str(peer[0])  # not an IP (a test client's name, a Unix socket): as it is
    if not trusted or not _is_trusted(address, trusted):
        return str(address)
    values = [v for k, v in scope.get("headers") or () if k.lower() == b"x-forwarded-for"]
    hops = b",".join(values).decode("latin-1").split(",") if values else []
    last_good = address
    for hop in reversed(hops):
        found = _ip(hop)
        if found is None:
            break
        if not _is_trusted(found, trusted):
            return str(found)
        last_good = found
    return str(last_good)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTP exceptions through unchanged."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the limit is {max_bytes} bytes")


class BodySizeLimit:
    """413 problem+json for a body larger than `max_bytes` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        """Paths under `exempt_prefixes` stream large bodies and enforce their own limit."""
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "Request body too large",
            f"the limit is {self.max_bytes} bytes",
            instance=scope.get("path", ""),
        )
        await response(scope, receive, send)


class Admission:
    """At most `limit` requests of this process inside the app at once; up to `queue` more
    wait, in arrival order, for at most `wait_s` seconds; past either bound a fast 503
    problem+json with `Retry-After`. Overload becomes a queue and then a clear refusal,
    never a stall.

    `limit` is sized with the database pool and the thread pool (DESIGN.md §7.12): every
    admitted request does its database work one unit at a time, so with `limit` no larger
    than the pool's connections and the threads, nothing admitted waits for either. Paths
    in `exempt` (a liveness probe) skip the queue.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        queue: int,
        wait_s: float,
        retry_after_s: int,
        exempt: tuple[str, ...] = ("/health",),
    ) -> None:
        self.app, self.limit, self.queue, self.wait_s = app, limit, queue, wait_s
        self.retry_after, self.exempt = str(retry_after_s), exempt
        self._slots: asyncio.Semaphore | None = None  # made on the server's event loop
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        if slots.locked() and self.waiting >= self.queue:
            await self._refuse(scope, receive, send, f"{self.waiting} requests are waiting")
            return
        self.waiting += 1
        try:
            await asyncio.wait_for(slots.acquire(), self.wait_s)
        except TimeoutError:
            await self._refuse(scope, receive, send, f"no capacity within {self.wait_s:g} s")
            return
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        response = problem_response(
            503,
            "Server busy",
            f"the server is at capacity ({why}); retry after {self.retry_after} s",
            instance=scope.get("path", ""),
            headers={"Retry-After": self.retry_after},
        )
        await response(scope, receive, send)


class NoDelayHTTP(AutoHTTPProtocol):
    """uvicorn's HTTP protocol with TCP_NODELAY on every connection.

    With `--workers` above 1, uvicorn hands its workers a listening socket whose accepted
    connections asyncio does not mark TCP_NODELAY (it only does so for sockets it made
    itself), so on a kept-alive connection each reply's second write waits for the
    client's delayed ACK: about 40 ms a request (docs/PERFORMANCE.md). `ferry <net> serve`
    names this class as uvicorn's `http` protocol.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
