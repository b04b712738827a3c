"""The SMTP side of the email channel (`shared.email_channel`): one connection per run,
opened at its first message with the deployment's security (STARTTLS required, implicit TLS,
or plain) and login, every socket operation bounded by `smtp_timeout_s`; and errors described
for `last_error` and the logs with any form of the password masked.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import parseaddr

from shared.settings import FerrySettings

MAX_ERROR = 1000


class Unreachable(Exception):
    """The SMTP server could not be connected to, greeted or logged in to."""


class Relay:
    """One SMTP connection for a run, opened at its first message."""

    def __init__(self, settings: FerrySettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None
        self.envelope_from = parseaddr(settings.email_from)[1]

    def send(self, msg: EmailMessage, to: str) -> None:
        if self.smtp is None:
            try:
                self.smtp = _connect(self.settings)
            except Exception as exc:
                raise Unreachable(describe(exc, self.settings)) from exc
        try:
            self.smtp.send_message(msg, from_addr=self.envelope_from, to_addrs=[to])
        except smtplib.SMTPServerDisconnected:
            self.close()  # the next message connects again
            raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException):
            raise  # the server answered: the connection serves the next message
        except OSError:  # (SMTPException is one too) the connection is in doubt
            self.close()
            raise

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except Exception:
                smtp.close()


def _connect(settings: FerrySettings) -> smtplib.SMTP:
    host, port, timeout = settings.smtp_host or "", settings.smtp_port, settings.smtp_timeout_s
    cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    context = ssl.create_default_context(cafile=cafile)
    name = socket.gethostname()  # not getfqdn(): no DNS lookup before the timeout applies
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, local_hostname=name, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, local_hostname=name, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)  # refused or unsupported: an error, never plain
            smtp.ehlo()
        if settings.smtp_username and settings.smtp_password is not None:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
    except BaseException:
        smtp.close()
        raise
    return smtp


def refused_for_good(exc: Exception) -> bool:
    """The server refused the recipient with a permanent (5xx) reply."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code >= 500 for code, _ in exc.recipients.values())
    return False


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {said}"


def describe(exc: BaseException, settings: FerrySettings) -> str:
    """An error as kept in `last_error` and logged: its kind, the server's reply, where; any
    form of the SMTP password is masked."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "; ".join(_reply(code, text) for code, text in exc.recipients.values())
    elif isinstance(exc, smtplib.SMTPResponseException):
        detail = _reply(exc.smtp_code, exc.smtp_error)
    else:
        detail = str(exc) or repr(exc)
    text = f"{type(exc).__name__}: {detail} (SMTP {settings.smtp_host}:{settings.smtp_port})"
    return scrub(text, settings)[:MAX_ERROR]


def scrub(text: str, settings: FerrySettings) -> str:
    """`text` without the SMTP password, plain or as AUTH PLAIN / LOGIN send it (base64)."""
    if settings.smtp_password is None:
        return text
    password = settings.smtp_password.get_secret_value()
    if not password:
        return text
    user = settings.smtp_username or ""
    forms = {
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
        base64.b64encode(f"{user}\0{user}\0{password}".encode()).decode(),
    }
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


__all__ = ["MAX_ERROR", "Relay", "Unreachable", "describe", "refused_for_good", "scrub"]
