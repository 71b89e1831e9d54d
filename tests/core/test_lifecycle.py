"""Tests for billing.core.lifecycle: every (state, action) pair."""

from __future__ import annotations

import itertools
import pickle

import pytest

from billing.core.lifecycle import (
    IllegalTransition,
    SubscriptionAction,
    SubscriptionStatus,
    allowed_actions,
    transition,
)

S = SubscriptionStatus
A = SubscriptionAction
ILLEGAL = None

# (state, action) → (result without a trial, result with has_trial=True); None = illegal.
TABLE: dict[tuple[S, A], tuple[S | None, S | None]] = {
    (S.PENDING, A.START): (S.ACTIVE, S.TRIALING),
    (S.PENDING, A.END_TRIAL): (ILLEGAL, ILLEGAL),
    (S.PENDING, A.PAUSE): (ILLEGAL, ILLEGAL),
    (S.PENDING, A.RESUME): (ILLEGAL, ILLEGAL),
    (S.PENDING, A.CANCEL): (S.CANCELED, S.CANCELED),
    (S.PENDING, A.RENEW): (ILLEGAL, ILLEGAL),
    (S.PENDING, A.CHANGE_PLAN): (ILLEGAL, ILLEGAL),
    (S.TRIALING, A.START): (ILLEGAL, ILLEGAL),
    (S.TRIALING, A.END_TRIAL): (S.ACTIVE, S.ACTIVE),
    (S.TRIALING, A.PAUSE): (ILLEGAL, ILLEGAL),
    (S.TRIALING, A.RESUME): (ILLEGAL, ILLEGAL),
    (S.TRIALING, A.CANCEL): (S.CANCELED, S.CANCELED),
    (S.TRIALING, A.RENEW): (ILLEGAL, ILLEGAL),
    (S.TRIALING, A.CHANGE_PLAN): (S.TRIALING, S.TRIALING),
    (S.ACTIVE, A.START): (ILLEGAL, ILLEGAL),
    (S.ACTIVE, A.END_TRIAL): (ILLEGAL, ILLEGAL),
    (S.ACTIVE, A.PAUSE): (S.PAUSED, S.PAUSED),
    (S.ACTIVE, A.RESUME): (ILLEGAL, ILLEGAL),
    (S.ACTIVE, A.CANCEL): (S.CANCELED, S.CANCELED),
    (S.ACTIVE, A.RENEW): (S.ACTIVE, S.ACTIVE),
    (S.ACTIVE, A.CHANGE_PLAN): (S.ACTIVE, S.ACTIVE),
    (S.PAUSED, A.START): (ILLEGAL, ILLEGAL),
    (S.PAUSED, A.END_TRIAL): (ILLEGAL, ILLEGAL),
    (S.PAUSED, A.PAUSE): (ILLEGAL, ILLEGAL),
    (S.PAUSED, A.RESUME): (S.ACTIVE, S.ACTIVE),
    (S.PAUSED, A.CANCEL): (S.CANCELED, S.CANCELED),
    (S.PAUSED, A.RENEW): (ILLEGAL, ILLEGAL),
    (S.PAUSED, A.CHANGE_PLAN): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.START): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.END_TRIAL): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.PAUSE): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.RESUME): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.CANCEL): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.RENEW): (ILLEGAL, ILLEGAL),
    (S.CANCELED, A.CHANGE_PLAN): (ILLEGAL, ILLEGAL),
}

CASES = [
    (state, action, has_trial, results[has_trial])
    for (state, action), results in TABLE.items()
    for has_trial in (False, True)
]


def test_table_covers_every_pair() -> None:
    assert set(TABLE) == set(itertools.product(S, A))


@pytest.mark.parametrize(("state", "action", "has_trial", "expected"), CASES)
def test_transition(state: S, action: A, has_trial: bool, expected: S | None) -> None:
    if expected is None:
        with pytest.raises(IllegalTransition) as info:
            transition(state, action, has_trial=has_trial)
        assert (info.value.current, info.value.action) == (state, action)
    else:
        assert transition(state, action, has_trial=has_trial) == expected


@pytest.mark.parametrize("state", list(S))
def test_allowed_actions_match_the_table(state: S) -> None:
    expected = {action for (s, action), results in TABLE.items() if s == state and results[0]}
    assert allowed_actions(state) == frozenset(expected)


def test_canceled_is_terminal() -> None:
    assert allowed_actions(S.CANCELED) == frozenset()


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (S.CANCELED, A.PAUSE, "cannot pause a canceled subscription"),
        (S.TRIALING, A.PAUSE, "cannot pause a trialing subscription"),
        (S.ACTIVE, A.START, "cannot start an active subscription"),
        (S.PENDING, A.END_TRIAL, "cannot end the trial of a pending subscription"),
        (S.PAUSED, A.CHANGE_PLAN, "cannot change the plan of a paused subscription"),
        (S.ACTIVE, A.RESUME, "cannot resume an active subscription"),
        (S.CANCELED, A.CANCEL, "cannot cancel a canceled subscription"),
        (S.PAUSED, A.RENEW, "cannot renew a paused subscription"),
    ],
)
def test_illegal_transition_message(state: S, action: A, message: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        transition(state, action)
    assert str(info.value) == message
    assert info.value.code == "illegal_transition"


def test_illegal_transition_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(IllegalTransition(S.CANCELED, A.RESUME)))  # noqa: S301 - our own bytes
    assert (error.current, error.action) == (S.CANCELED, A.RESUME)
    assert str(error) == "cannot resume a canceled subscription"


def test_plain_strings_are_accepted() -> None:
    assert transition("active", "pause") == S.PAUSED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'explode' is not a valid SubscriptionAction"):
        transition(S.ACTIVE, "explode")  # type: ignore[arg-type]
