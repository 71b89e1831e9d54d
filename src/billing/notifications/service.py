"""The two email sweeps: fan-out (outbox events -> queued emails) and send (queued -> sent).

Fan-out reads the outbox in seq order after a watermark, renders an email for each event that
has a template and advances the watermark in the same transaction, so an event is turned into
mail exactly once; the unique (event_id, template) makes even a replay harmless.

Sending claims due messages with a short transaction (attempts + 1, next attempt pushed past a
lease), talks to SMTP with no transaction open, and records the outcomes in a second short
transaction. A worker that dies mid-send leaves its claim to expire; the message is then sent
again (at least once). Failures back off 1m, 5m, 30m, 2h, 6h and then the message is `failed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.db.bulk import bulk_update
from billing.http.errors import NotFound
from billing.http.pagination import PageParams, paginate
from billing.notifications.models import EmailMessage
from billing.notifications.rendering import (
    OPERATOR_TEMPLATES,
    Recipient,
    RenderError,
    render,
    template_for,
)
from billing.notifications.smtp import Outgoing, SendResult, SmtpConfig, send_batch
from billing.observability.logging import get_logger

log = get_logger("billing.notifications")

CURSOR = "email"
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
# Longer than one batch can take (EMAIL_BATCH_SIZE sends, each bounded by the SMTP timeout).
CLAIM_LEASE = timedelta(minutes=15)

_SNAPSHOT = text(
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, "
    "pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax"
)
_CURSOR = text(
    "SELECT last_seq, gap_seq, gap_xmax FROM notification_cursors "
    "WHERE name = :name FOR UPDATE SKIP LOCKED"
)
_ENSURE_CURSOR = text(
    "INSERT INTO notification_cursors (name, last_seq) "
    "SELECT :name, COALESCE(MAX(seq), 0) FROM events ON CONFLICT (name) DO NOTHING"
)
_EVENTS = text(
    "SELECT id, seq, type, account_id, data FROM events "
    "WHERE seq > :after ORDER BY seq LIMIT :limit"
)
_SAVE_CURSOR = text(
    "UPDATE notification_cursors SET last_seq = :last_seq, gap_seq = :gap_seq, "
    "gap_xmax = :gap_xmax WHERE name = :name"
)
# Claimed in the order their events were recorded (UPDATE … RETURNING has no order of its
# own): a customer's receipts arrive in the order of the payments.
_CLAIM = text(
    "WITH claimed AS ("
    " UPDATE email_messages AS m SET attempts = m.attempts + 1, next_attempt_at = :lease_until"
    " FROM (SELECT id, next_attempt_at FROM email_messages"
    "       WHERE status = 'queued' AND next_attempt_at <= :now"
    "       ORDER BY next_attempt_at, event_seq, id LIMIT :limit FOR UPDATE SKIP LOCKED) AS due"
    " WHERE m.id = due.id"
    " RETURNING m.id, m.recipient, m.subject, m.text_body, m.html_body, m.attempts,"
    "           due.next_attempt_at AS due_at, m.event_seq)"
    " SELECT * FROM claimed ORDER BY due_at, event_seq, id"
)


async def fan_out_events(
    session: AsyncSession, *, now: datetime, limit: int, operator_email: str | None = None
) -> int:
    """Turn the next batch of outbox events into queued emails. Returns events consumed."""
    # The snapshot is taken before the events are read: a transaction that had ended by then
    # is visible to the read, so a seq missing from the read was really rolled back.
    snapshot = (await session.execute(_SNAPSHOT)).one()
    cursor = (await session.execute(_CURSOR, {"name": CURSOR})).one_or_none()
    if cursor is None:
        await session.execute(_ENSURE_CURSOR, {"name": CURSOR})
        await session.commit()
        return 0  # created now (or another worker holds it): next call reads
    rows = (await session.execute(_EVENTS, {"after": cursor.last_seq, "limit": limit})).all()
    taken: list[Any] = []
    expected = cursor.last_seq + 1
    gap_seq, gap_xmax = cursor.gap_seq, cursor.gap_xmax
    for row in rows:
        if row.seq != expected:
            if gap_seq == expected and gap_xmax is not None and snapshot.xmin >= gap_xmax:
                gap_seq = gap_xmax = None  # every writer that could hold it has finished
            elif gap_seq == expected:
                # Seen twice: now any writer holding the seq surely has its transaction id.
                gap_xmax = gap_xmax if gap_xmax is not None else snapshot.xmax
                break
            else:
                gap_seq, gap_xmax = expected, None
                break
        taken.append(row)
        expected = row.seq + 1
    if taken:
        await _queue_emails(session, taken, now=now, operator_email=operator_email)
    last_seq = taken[-1].seq if taken else cursor.last_seq
    await session.execute(
        _SAVE_CURSOR,
        {"name": CURSOR, "last_seq": last_seq, "gap_seq": gap_seq, "gap_xmax": gap_xmax},
    )
    await session.commit()
    return len(taken)


async def _queue_emails(
    session: AsyncSession, events: Sequence[Any], *, now: datetime, operator_email: str | None
) -> None:
    wanted = [(e, t) for e in events if (t := template_for(e.type, e.data)) is not None]
    if not wanted:
        return
    account_ids = {e.account_id for e, _ in wanted if e.account_id is not None}
    accounts = {
        a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(account_ids)))
    }
    rows: list[dict[str, Any]] = []
    for event, template in wanted:
        account_id: uuid.UUID | None = None
        if template in OPERATOR_TEMPLATES:
            if operator_email is None:
                continue  # logged by the domain that emitted it; nobody to mail
            recipient = Recipient(operator_email, None, "en_US", "UTC")
        else:
            account = accounts.get(event.account_id)
            if account is None or account.deleted_at is not None:
                continue  # nobody to mail: an event without an account, or a deleted account
            recipient = Recipient(account.email, account.name, account.locale, account.timezone)
            account_id = account.id
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "event_id": event.id,
            "event_seq": event.seq,
            "event_type": event.type,
            "account_id": account_id,
            "template": template,
            "recipient": recipient.email,
            "attempts": 0,
            "created_at": now,
        }
        try:
            rendered = render(template, data=event.data, recipient=recipient)
        except RenderError as exc:
            # Kept (and visible) rather than blocking the outbox behind one bad event.
            log.error(
                "email_render_failed", event_id=str(event.id), template=template, error=str(exc)
            )
            row |= {"subject": "", "text_body": "", "html_body": "", "status": "failed"}
            row |= {"next_attempt_at": None, "last_error": str(exc)[:1000]}
        else:
            row |= {
                "subject": rendered.subject,
                "text_body": rendered.text,
                "html_body": rendered.html,
                "status": "queued",
                "next_attempt_at": now,
                "last_error": None,
            }
        rows.append(row)
    if rows:
        statement = insert(EmailMessage).on_conflict_do_nothing(
            index_elements=["event_id", "template"]
        )
        await session.execute(statement, rows)


async def send_due_emails(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    smtp: SmtpConfig | None,
    sender: str,
    smtp_timeout: float,
) -> int:
    """Claim due emails, send them (or log them when no SMTP server is configured), record
    the outcome. Returns how many were claimed."""
    claimed = (
        await session.execute(
            _CLAIM, {"now": now, "lease_until": now + CLAIM_LEASE, "limit": limit}
        )
    ).all()
    await session.commit()
    if not claimed:
        return 0
    outgoing = [
        Outgoing(str(r.id), r.recipient, r.subject, r.text_body, r.html_body) for r in claimed
    ]
    if smtp is None:
        for message in outgoing:
            log.info(
                "email_logged",
                email_id=message.message_id,
                to=message.recipient,
                subject=message.subject,
                text=message.text_body,
            )
        results = [SendResult(ok=True) for _ in outgoing]
    else:
        results = await send_batch(
            smtp, outgoing, sender=sender, smtp_timeout=smtp_timeout, now=now
        )
    updates = [
        _outcome(row.id, row.attempts, result, now=now, logged=smtp is None)
        for row, result in zip(claimed, results, strict=True)
    ]
    await bulk_update(session, EmailMessage, updates)
    await session.commit()
    return len(claimed)


def _outcome(
    message_id: uuid.UUID, attempts: int, result: SendResult, *, now: datetime, logged: bool
) -> dict[str, Any]:
    if result.ok:
        status = "logged" if logged else "sent"
        return {
            "id": message_id,
            "status": status,
            "next_attempt_at": None,
            "last_error": None,
            "sent_at": now,
        }
    give_up = result.permanent or attempts > len(RETRY_DELAYS)
    log.warning(
        "email_send_failed",
        email_id=str(message_id),
        attempts=attempts,
        error=result.error,
        final=give_up,
    )
    return {
        "id": message_id,
        "status": "failed" if give_up else "queued",
        "next_attempt_at": None if give_up else now + RETRY_DELAYS[attempts - 1],
        "last_error": result.error,
        "sent_at": None,
    }


async def list_account_emails(
    session: AsyncSession, *, account_id: uuid.UUID, page: PageParams
) -> tuple[list[EmailMessage], bool]:
    """The emails made for an account (what was sent, logged, queued or given up), newest first."""
    if await session.get(Account, account_id) is None:
        raise NotFound(f"No account {account_id}.", param="account_id")
    stmt = select(EmailMessage).where(EmailMessage.account_id == account_id)
    return await paginate(session, stmt, EmailMessage, page)
