"""Account use cases. Each commits its own transaction, with the event it causes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.accounts.models import Account
from billing.accounts.queries import lock_account
from billing.accounts.schemas import AccountCreate, AccountRead, AccountStatus, AccountUpdate
from billing.clock import Clock, FrozenClock
from billing.clock.models import TestClock
from billing.db.engine import DirectStatement, fetch_rows
from billing.events.outbox import record_event
from billing.http.errors import Conflict, NotFound, ValidationFailed
from billing.http.pagination import PageParams, paginate
from billing.invoicing.models import Invoice
from billing.payments.gateways import PaymentGateway
from billing.payments.methods import default_method_of, new_payment_method, verify_with_gateway
from billing.payments.models import PaymentMethod
from billing.payments.schemas import PaymentMethodRead
from billing.subscriptions.models import Subscription

_ACCOUNT_FIELDS = (
    "id",
    "email",
    "name",
    "currency",
    "timezone",
    "locale",
    "status",
    "tax_exempt",
    "tax_ids",
    "address",
    "metadata",
    "test_clock_id",
    "created_at",
    "updated_at",
)


def _account_read_of(values: Mapping[str, Any], method: PaymentMethodRead | None) -> AccountRead:
    fields = {name: values[name] for name in _ACCOUNT_FIELDS}
    fields["status"] = AccountStatus(fields["status"])
    return AccountRead(**fields, default_payment_method=method)


def account_read(account: Account, default_method: PaymentMethod | None) -> AccountRead:
    values = {
        name: getattr(account, "metadata_" if name == "metadata" else name)
        for name in _ACCOUNT_FIELDS
    }
    method = PaymentMethodRead.model_validate(default_method) if default_method else None
    return _account_read_of(values, method)


_METHOD_FIELDS = (
    "id",
    "account_id",
    "gateway",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "is_default",
    "created_at",
)


def _get_account_statement() -> Any:
    # A Core statement (no ORM identity map, no unit of work), run on the direct pool: the
    # hottest read of the API.
    accounts = Account.__table__
    methods = PaymentMethod.__table__
    return (
        select(
            *(accounts.c[name] for name in _ACCOUNT_FIELDS),
            *(methods.c[name].label(f"pm_{name}") for name in _METHOD_FIELDS),
        )
        .outerjoin(
            methods,
            and_(
                methods.c.account_id == accounts.c.id,
                methods.c.is_default,
                methods.c.detached_at.is_(None),
            ),
        )
        .where(accounts.c.id == bindparam("account_id"), accounts.c.deleted_at.is_(None))
    )


_GET_ACCOUNT = DirectStatement.of(_get_account_statement())


def _account_read_from_row(row: Mapping[str, Any]) -> AccountRead:
    """The same AccountRead as `account_read`, from a row of `_GET_ACCOUNT`."""
    method = (
        None
        if row["pm_id"] is None
        else PaymentMethodRead(**{name: row[f"pm_{name}"] for name in _METHOD_FIELDS})
    )
    return _account_read_of(row, method)


def _record(session: AsyncSession, type: str, read: AccountRead, at: datetime) -> None:
    record_event(session, type=type, account_id=read.id, data=read.model_dump(mode="json"), at=at)


async def create_account(
    session: AsyncSession, *, data: AccountCreate, clock: Clock, gateway: PaymentGateway
) -> AccountRead:
    if data.test_clock_id is not None:
        test_clock = await session.get(TestClock, data.test_clock_id)
        if test_clock is None:
            raise ValidationFailed(f"No test clock {data.test_clock_id}.", param="test_clock_id")
        clock = FrozenClock(test_clock.frozen_time)
    now = clock.now()
    account = Account(
        id=uuid.uuid4(),
        email=str(data.email),
        name=data.name,
        currency=data.currency,
        timezone=data.timezone,
        locale=data.locale,
        status=AccountStatus.ACTIVE.value,
        tax_exempt=data.tax_exempt.value,
        tax_ids=[t.model_dump() for t in data.tax_ids],
        address=data.address.model_dump() if data.address else None,
        metadata_=data.metadata,
        gateway_customer_id=None,
        test_clock_id=data.test_clock_id,
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    method = None
    if data.payment_method is not None:
        # Verified before anything is written: a declined card creates no account.
        customer_id, card = await verify_with_gateway(
            gateway, account=account, token=data.payment_method, param="payment_method"
        )
        account.gateway_customer_id = customer_id
        method = new_payment_method(
            account_id=account.id, gateway=gateway.name, card=card, is_default=True, clock=clock
        )
    session.add(account)
    await session.flush()
    if method is not None:
        session.add(method)
    read = account_read(account, method)
    _record(session, "account.created", read, now)
    await session.commit()
    return read


async def get_account(session: AsyncSession, *, account_id: uuid.UUID) -> AccountRead:
    rows = await fetch_rows(session, _GET_ACCOUNT, {"account_id": account_id})
    if not rows:
        raise NotFound(f"No account {account_id}.", param="account_id")
    return _account_read_from_row(rows[0])


async def list_accounts(
    session: AsyncSession,
    *,
    page: PageParams,
    email: str | None,
    status: AccountStatus | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
) -> tuple[list[AccountRead], bool]:
    stmt = select(Account).where(Account.deleted_at.is_(None))
    if email is not None:
        stmt = stmt.where(func.lower(Account.email) == email.lower())
    if status is not None:
        stmt = stmt.where(Account.status == status.value)
    if created_gte is not None:
        stmt = stmt.where(Account.created_at >= created_gte)
    if created_lt is not None:
        stmt = stmt.where(Account.created_at < created_lt)
    accounts, has_more = await paginate(session, stmt, Account, page)
    defaults = {}
    if accounts:
        methods = await session.scalars(
            select(PaymentMethod).where(
                PaymentMethod.account_id.in_([a.id for a in accounts]),
                PaymentMethod.is_default,
                PaymentMethod.detached_at.is_(None),
            )
        )
        defaults = {m.account_id: m for m in methods}
    return [account_read(a, defaults.get(a.id)) for a in accounts], has_more


async def _require_no_billing_history(session: AsyncSession, account: Account) -> None:
    """The currency is part of every amount billed: fixed once anything was billed."""
    billed = await session.scalar(
        select(
            exists().where(Subscription.account_id == account.id)
            | exists().where(Invoice.account_id == account.id)
        )
    )
    if billed:
        raise Conflict(
            f"The account's currency is {account.currency} and it already has subscriptions or "
            "invoices; create a new account to bill in another currency.",
            param="currency",
        )


async def update_account(
    session: AsyncSession, *, account_id: uuid.UUID, data: AccountUpdate, clock: Clock
) -> AccountRead:
    account = await lock_account(session, account_id)
    changes = data.model_dump(exclude_unset=True)
    if "currency" in changes and changes["currency"] != account.currency:
        await _require_no_billing_history(session, account)
    for field, value in changes.items():
        if field == "email":
            account.email = str(value)
        elif field == "metadata":
            account.metadata_ = value
        elif field in ("tax_exempt",):
            account.tax_exempt = str(value)
        else:
            setattr(account, field, value)
    now = clock.now()
    account.updated_at = now
    await session.flush()
    read = account_read(account, await default_method_of(session, account_id))
    _record(session, "account.updated", read, now)
    await session.commit()
    return read


async def delete_account(session: AsyncSession, *, account_id: uuid.UUID, clock: Clock) -> None:
    account = await lock_account(session, account_id)
    now = clock.now()
    account.deleted_at = now
    account.updated_at = now
    read = account_read(account, None)
    record_event(
        session,
        type="account.deleted",
        account_id=account.id,
        data=read.model_dump(mode="json") | {"deleted": True},
        at=now,
    )
    await session.commit()
