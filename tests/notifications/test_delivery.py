"""The outbox fan-out in commit order, SMTP_URL, SMTP authentication, and test clocks."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from billing.events.outbox import record_event
from billing.notifications.smtp import SmtpConfig, parse_smtp_url
from billing.settings import Settings
from billing.worker.sweeps import for_test_clock
from tests.conftest import AppFactory, Sql, runtime_of
from tests.factories.accounts import create_account
from tests.notifications.conftest import (
    NOW,
    SmtpServer,
    payment_payload,
    record_receipt,
    smtp_runtime,
)


async def test_an_event_committed_late_with_a_lower_seq_is_not_skipped(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    account = await create_account(client, email="order@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server, email_from=None)
    worker = runtime.worker()
    await worker.run_due()  # past account.created
    async with runtime.sessions() as slow:
        record_event(
            slow,
            type="payment.succeeded",
            account_id=uuid.UUID(account["id"]),
            data=payment_payload(account_id=account["id"], amount=100, currency="USD"),
            at=NOW,
        )
        await slow.flush()  # takes the lower seq, not yet committed
        await record_receipt(runtime, account, amount=200)
        for _ in range(3):
            await worker.run_due()
        assert smtp_server.received == []  # the later event waits behind the open one
        await slow.commit()

    await worker.run_due()

    assert [m.subject for m in smtp_server.received] == [
        "Receipt: payment of $1.00 received",
        "Receipt: payment of $2.00 received",
    ]


async def test_a_rolled_back_seq_is_passed_once_its_transaction_has_ended(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="gap@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server, email_from=None)
    worker = runtime.worker()
    await worker.run_due()
    async with runtime.sessions() as doomed:
        record_event(
            doomed,
            type="payment.succeeded",
            account_id=uuid.UUID(account["id"]),
            data=payment_payload(account_id=account["id"], amount=100, currency="USD"),
            at=NOW,
        )
        await doomed.flush()
        await record_receipt(runtime, account, amount=200)
        await worker.run_due()
        await doomed.rollback()

    # Seen once before the rollback; then once more to note the running transactions; then
    # passed once all of those have ended. Other tests share the PostgreSQL cluster (xdist),
    # and their transactions count too, so allow them a few seconds to end.
    deadline = time.monotonic() + 20
    while not smtp_server.received and time.monotonic() < deadline:
        await worker.run_due()
        await asyncio.sleep(0.1)

    assert [m.subject for m in smtp_server.received] == ["Receipt: payment of $2.00 received"]
    assert await sql("SELECT gap_seq, gap_xmax FROM notification_cursors") == [(None, None)]


# Plain-text AUTH is fine on a loopback test server.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_login_uses_the_decoded_credentials_of_the_url(
    client: httpx.AsyncClient, make_app: AppFactory, stopped_smtp_server: SmtpServer
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"p@ss:word")

    stopped_smtp_server.start(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
    account = await create_account(client, email="auth@example.com", currency="USD")
    url = f"smtp://mailer:p%40ss%3Aword@127.0.0.1:{stopped_smtp_server.port}?starttls=false"
    runtime = runtime_of(make_app(smtp_url=url))
    await record_receipt(runtime, account)

    await runtime.worker().run_due()

    assert logins == [(b"mailer", b"p@ss:word")]
    assert [m.recipients for m in stopped_smtp_server.received] == [["auth@example.com"]]


async def test_advancing_a_test_clock_leaves_emails_to_the_regular_tick(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="clock@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server, email_from=None)
    worker = runtime.worker()
    await record_receipt(runtime, account)

    clock_ctx = for_test_clock(worker.context, test_clock_id=uuid.uuid4(), as_of=NOW)
    counts = await worker.run_due(clock_ctx)

    assert counts["emails_fan_out"] == counts["emails_send"] == 0
    assert await sql("SELECT count(*) FROM email_messages") == [(0,)]
    await worker.run_due()
    assert len(smtp_server.received) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://localhost", SmtpConfig("localhost", 25, use_tls=False, start_tls=None)),
        (
            "smtp://user:pass@mail.example.com:587?starttls=true",
            SmtpConfig("mail.example.com", 587, False, True, "user", "pass"),
        ),
        ("smtp://h:2525?starttls=false", SmtpConfig("h", 2525, use_tls=False, start_tls=False)),
        (
            "smtps://a%40b.c:p%2Fw@h",
            SmtpConfig("h", 465, use_tls=True, start_tls=False, username="a@b.c", password="p/w"),
        ),
    ],
)
def test_smtp_url_format(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:hunter2@host", "smtp:// or smtps://"),
        ("smtp://user:hunter2@", "needs a host"),
        ("smtp://user:hunter2@host?starttls=maybe", "starttls must be true or false"),
        ("smtp://user:hunter2@host?tls=1", "unknown options: tls"),
        ("smtps://user:hunter2@host?starttls=true", "TLS already"),
        ("smtp://user:hunter2@host:99999", "invalid port"),
    ],
)
def test_a_bad_smtp_url_is_rejected_at_start_up_without_echoing_the_password(
    url: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        Settings(_env_file=None, smtp_url=url)
    assert "hunter2" not in str(error.value).replace(f"input_value='{url}'", "")


def test_the_smtp_password_is_not_in_the_config_repr() -> None:
    assert "hunter2" not in repr(parse_smtp_url("smtp://u:hunter2@h"))
