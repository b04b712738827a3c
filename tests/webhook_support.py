"""A real webhook receiver for the webhook tests: an HTTP server on a local port, in a thread,
that keeps every POST it gets (headers and the raw body) and answers a chosen status; and
the verifying receiver example of docs/NOTIFICATIONS.md, loaded from the page itself."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOCS = Path(__file__).resolve().parents[1] / "docs" / "NOTIFICATIONS.md"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """`start()` listens on `port` (0: any free one); each POST is kept in `received` and
    answered `status` (after `on_request`, if set, has run)."""

    port: int = 0
    status: int = 204
    on_request: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self, tls: ssl.SSLContext | None = None) -> Receiver:
        """Listen (with `tls`: HTTPS) and serve in a thread."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if outer.on_request is not None:
                    outer.on_request(got)
                outer.received.append(got)
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def docs_receiver_example() -> dict[str, Any]:
    """The Python receiver of docs/NOTIFICATIONS.md ("Verifying a delivery"), executed: its
    names (`verify`, `Receiver`, `SECRET`, `handle`, …), not run as `__main__`."""
    text = DOCS.read_text()
    start = text.index("<!-- receiver example: tested by tests/webhook_support.py -->")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert code is not None, "the receiver example is gone from docs/NOTIFICATIONS.md"
    names: dict[str, Any] = {"__name__": "docs_receiver_example"}
    exec(compile(code.group(1), str(DOCS), "exec"), names)  # noqa: S102 (our own docs)
    return names


def tls_server_context(directory: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    """A TLS server context whose certificate names `name` (and 127.0.0.1), issued by a CA
    made here; (the context, the CA's certificate file for the client to trust)."""

    def certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, sans=()):
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ferry test CA")])
    ca = certificate("Ferry test CA", ca_key, ca_name, ca_key, ca=True)
    sans = [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = certificate(name, leaf_key, ca_name, ca_key, ca=False, sans=sans)
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = (directory / f"{name}-{n}.pem" for n in ("ca", "cert", "key"))
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file
