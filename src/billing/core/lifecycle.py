"""The subscription state machine: every allowed transition lives in one table."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "IllegalTransition",
    "SubscriptionAction",
    "SubscriptionStatus",
    "allowed_actions",
    "transition",
]


class SubscriptionStatus(StrEnum):
    """Lifecycle state of a subscription."""

    PENDING = "pending"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELED = "canceled"


class SubscriptionAction(StrEnum):
    """Something that happens to a subscription."""

    START = "start"
    END_TRIAL = "end_trial"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RENEW = "renew"
    CHANGE_PLAN = "change_plan"


_S = SubscriptionStatus
_A = SubscriptionAction

# Target state per (state, action). START is the one action whose target
# depends on the plan (trial or not); it is resolved in transition().
_TRANSITIONS: Mapping[SubscriptionStatus, Mapping[SubscriptionAction, SubscriptionStatus]] = (
    MappingProxyType(
        {
            _S.PENDING: {_A.START: _S.ACTIVE, _A.CANCEL: _S.CANCELED},
            _S.TRIALING: {
                _A.END_TRIAL: _S.ACTIVE,
                _A.CANCEL: _S.CANCELED,
                _A.CHANGE_PLAN: _S.TRIALING,
            },
            _S.ACTIVE: {
                _A.PAUSE: _S.PAUSED,
                _A.CANCEL: _S.CANCELED,
                _A.RENEW: _S.ACTIVE,
                _A.CHANGE_PLAN: _S.ACTIVE,
            },
            _S.PAUSED: {_A.RESUME: _S.ACTIVE, _A.CANCEL: _S.CANCELED},
            # Canceled is terminal: a returning customer gets a new subscription.
            _S.CANCELED: {},
        }
    )
)

_VERBS: Mapping[SubscriptionAction, str] = MappingProxyType(
    {
        _A.START: "start",
        _A.END_TRIAL: "end the trial of",
        _A.PAUSE: "pause",
        _A.RESUME: "resume",
        _A.CANCEL: "cancel",
        _A.RENEW: "renew",
        _A.CHANGE_PLAN: "change the plan of",
    }
)


class IllegalTransition(Exception):
    """An action that the subscription's current state does not allow."""

    code = "illegal_transition"

    def __init__(self, current: SubscriptionStatus, action: SubscriptionAction) -> None:
        super().__init__(current, action)
        self.current = current
        self.action = action

    def __str__(self) -> str:
        article = "an" if self.current.value[0] in "aeiou" else "a"
        return f"cannot {_VERBS[self.action]} {article} {self.current.value} subscription"


def transition(
    current: SubscriptionStatus,
    action: SubscriptionAction,
    *,
    has_trial: bool = False,
) -> SubscriptionStatus:
    """Return the state after ``action``, or raise ``IllegalTransition``.

    ``has_trial`` only matters for ``start``: a pending subscription with a
    trial starts as trialing, otherwise as active.
    """
    current = SubscriptionStatus(current)
    action = SubscriptionAction(action)
    target = _TRANSITIONS[current].get(action)
    if target is None:
        raise IllegalTransition(current, action)
    if action is _A.START and has_trial:
        return _S.TRIALING
    return target


def allowed_actions(status: SubscriptionStatus) -> frozenset[SubscriptionAction]:
    """Return the actions ``transition`` accepts in ``status``."""
    return frozenset(_TRANSITIONS[SubscriptionStatus(status)])
