"""SMTP_URL parsing and sending a batch of messages over one SMTP connection.

SMTP_URL: ``smtp://[user[:password]@]host[:port][?starttls=true|false]`` (port 25 by default)
or ``smtps://…`` (TLS from the first byte, port 465 by default). User and password are
percent-decoded. Without ``starttls`` the connection is upgraded when the server offers
STARTTLS; ``true`` requires it, ``false`` never uses it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage as MimeMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    use_tls: bool
    start_tls: bool | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse SMTP_URL; a ValueError says what is wrong (never echoing the password)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL needs a host, e.g. smtp://mail.example.com:587")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("SMTP_URL has an invalid port") from exc
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"SMTP_URL has unknown options: {', '.join(sorted(unknown))}")
    start_tls: bool | None = None
    if "starttls" in query:
        raw = query["starttls"][-1].lower()
        if raw not in _BOOLEANS:
            raise ValueError("SMTP_URL option starttls must be true or false")
        start_tls = _BOOLEANS[raw]
    use_tls = parts.scheme == "smtps"
    if use_tls and start_tls:
        raise ValueError("smtps:// is TLS already; starttls=true only goes with smtp://")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if use_tls else 25),
        use_tls=use_tls,
        start_tls=False if use_tls else start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(frozen=True)
class Outgoing:
    """What the sender needs of a stored message."""

    message_id: str
    recipient: str
    subject: str
    text_body: str
    html_body: str


@dataclass(frozen=True)
class SendResult:
    ok: bool
    # A permanent failure (the server refused the recipient or the message with a 5xx) is not
    # retried; anything else (connection, timeout, 4xx) is.
    permanent: bool = False
    error: str | None = None


def build_mime(outgoing: Outgoing, *, sender: str, domain: str, now: datetime) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = outgoing.recipient
    mime["Subject"] = outgoing.subject
    mime["Message-ID"] = f"<{outgoing.message_id}@{domain}>"
    mime["Date"] = email.utils.format_datetime(now)
    # RFC 3834: a machine sent this; auto-responders should not answer.
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(outgoing.text_body)
    mime.add_alternative(outgoing.html_body, subtype="html")
    return mime


def sender_domain(sender: str) -> str:
    address = email.utils.parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


async def send_batch(
    config: SmtpConfig,
    messages: Sequence[Outgoing],
    *,
    sender: str,
    smtp_timeout: float,
    now: datetime,
) -> list[SendResult]:
    """Send every message over one connection. A connection-level failure fails the rest of
    the batch without trying them (they are retried later); one message's refusal does not."""
    domain = sender_domain(sender)
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        use_tls=config.use_tls,
        start_tls=config.start_tls,
        username=config.username,
        password=config.password,
        timeout=smtp_timeout,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Authentication failures too: a fixed password should not lose the queued mail.
        return [SendResult(ok=False, error=_describe(exc)) for _ in messages]
    results: list[SendResult] = []
    try:
        for outgoing in messages:
            try:
                await client.send_message(
                    build_mime(outgoing, sender=sender, domain=domain, now=now)
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                permanent = bool(codes) and all(c >= 500 for c in codes)
                results.append(SendResult(ok=False, permanent=permanent, error=_describe(exc)))
            except aiosmtplib.SMTPResponseException as exc:
                results.append(
                    SendResult(ok=False, permanent=exc.code >= 500, error=_describe(exc))
                )
                if exc.code == 421:  # the server is closing the connection
                    break
            except (aiosmtplib.SMTPException, OSError) as exc:
                results.append(SendResult(ok=False, error=_describe(exc)))
                break
            else:
                results.append(SendResult(ok=True))
        left = len(messages) - len(results)
        if left:
            results.extend(
                SendResult(ok=False, error="not attempted: the SMTP connection failed")
                for _ in range(left)
            )
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    return results


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
