"""A real SMTP server in the test process (aiosmtpd) whose inbox the tests read.

`SmtpServer(port)` listens on 127.0.0.1 once started (plain, STARTTLS or implicit TLS, with
or without a required login); `received` holds every message that arrived, parsed. An address
in `refuse` is refused at RCPT with a permanent 550; `hold` makes DATA wait until released
(to catch a run in the middle of sending).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Arrived:
    rcpt_tos: list[str]
    mail_from: str
    message: EmailMessage
    tls: bool
    login: str | None

    def part(self, subtype: str) -> str:
        found = self.message.get_body(preferencelist=(subtype,))
        assert found is not None and found.get_content_subtype() == subtype, subtype
        return found.get_content()


@dataclass
class Handler:
    refuse: set[str] = field(default_factory=set)
    received: list[Arrived] = field(default_factory=list)
    hold: threading.Event | None = None  # DATA waits for it when set
    in_data: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.in_data.set()
        if self.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 60)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated else None
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append(
            Arrived(
                list(envelope.rcpt_tos),
                envelope.mail_from,
                message,  # type: ignore[arg-type]
                tls,
                login,
            )
        )
        return "250 Message accepted"


class SmtpServer:
    """An aiosmtpd Controller on `port`; `start()` returns once it accepts connections."""

    def __init__(
        self,
        port: int,
        *,
        security: str = "none",
        tls: TlsFiles | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port, self.handler = port, Handler()
        kwargs: dict = {}
        if security in ("starttls", "tls"):
            assert tls is not None
            context = tls.server_context()
            if security == "starttls":
                kwargs |= {"tls_context": context, "require_starttls": True}
            else:  # implicit TLS (aiosmtpd only counts STARTTLS as TLS for AUTH)
                kwargs |= {"ssl_context": context, "auth_require_tls": False}
        if login is not None:
            kwargs |= {"authenticator": _authenticator(*login), "auth_required": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **kwargs)

    @property
    def received(self) -> list[Arrived]:
        return self.handler.received

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.handler.hold is not None:
            self.handler.hold.set()
        self.controller.stop()


def _authenticator(username: str, password: str):
    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        good = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=good, handled=False, auth_data=auth_data)

    return check


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost, its own CA (the client trusts the file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "smtp.crt", directory / "smtp.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
