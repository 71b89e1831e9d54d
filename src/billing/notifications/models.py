"""Email messages (one per event and template) and the fan-out's position in the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class EmailMessage(Base):
    """A rendered email. `queued` until the send sweep delivers it (`sent`), logs it because no
    SMTP server is configured (`logged`), or gives up on it (`failed`)."""

    __tablename__ = "email_messages"
    __table_args__ = (
        # A replayed or re-read event never mails twice.
        UniqueConstraint("event_id", "template", name="uq_email_messages_event_id_template"),
        Index(
            "ix_email_messages_due",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_email_messages_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # No foreign key: events may be purged by retention while the mail record stays.
    event_id: Mapped[uuid.UUID]
    # The event's place in the outbox: mails go out in the order of their events.
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    # None for operational alerts, which are not about one account.
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class NotificationCursor(Base):
    """How far the email fan-out has read the outbox (events.seq), and the gap it waits on.

    Commit order is not seq order: an event with a lower seq can become visible after a higher
    one. The fan-out therefore reads contiguously and stops at a missing seq until every
    transaction that was running when the gap was seen has ended (then the seq was rolled back).
    """

    __tablename__ = "notification_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    gap_seq: Mapped[int | None] = mapped_column(BigInteger)
    # pg_snapshot_xmax when the gap was seen (a second time): once the oldest running
    # transaction is at or past it, whoever took the missing seq has committed or rolled back.
    gap_xmax: Mapped[int | None] = mapped_column(BigInteger)
