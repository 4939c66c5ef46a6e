"""The conversation state machine: waiting ⇄ active → ended (back to waiting when the
chat's agent walks out and nobody else is left)."""

from __future__ import annotations

from enum import StrEnum

from bridge.core.models import Status


class Happening(StrEnum):
    AGENT_JOINED = "agent_joined"
    AGENT_REPLIED = "agent_replied"
    AGENT_GONE = "agent_gone"  # the chat's agent left and nobody else is with the visitor
    ENDED = "ended"


class InvalidTransition(ValueError):
    pass


_NEXT: dict[tuple[Status, Happening], Status] = {
    (Status.WAITING, Happening.AGENT_JOINED): Status.ACTIVE,
    (Status.WAITING, Happening.AGENT_REPLIED): Status.ACTIVE,
    (Status.ACTIVE, Happening.AGENT_JOINED): Status.ACTIVE,
    (Status.ACTIVE, Happening.AGENT_REPLIED): Status.ACTIVE,
    (Status.ACTIVE, Happening.AGENT_GONE): Status.WAITING,
    (Status.WAITING, Happening.ENDED): Status.ENDED,
    (Status.ACTIVE, Happening.ENDED): Status.ENDED,
}


def next_status(current: Status, happening: Happening) -> Status:
    """The status after `happening`; raises InvalidTransition when it cannot happen now."""
    try:
        return _NEXT[(current, happening)]
    except KeyError:
        raise InvalidTransition(f"{happening} is not possible in {current}") from None


def is_open(status: Status) -> bool:
    return status is not Status.ENDED


def is_abandoned(last_activity: float, now: float, timeout_s: float) -> bool:
    """An open chat nobody wrote in for `timeout_s` ends by itself (0 switches this off)."""
    return timeout_s > 0 and now - last_activity >= timeout_s


# The visitor is warned this long before an idle chat ends (WCAG 2.2.1: warned, and able
# to extend it with one action); a quarter of the timeout when that is shorter.
IDLE_WARNING_S = 120.0


def idle_warning_window(timeout_s: float) -> float:
    return min(IDLE_WARNING_S, timeout_s / 4)


def idle_ends_in(last_activity: float, now: float, timeout_s: float) -> float | None:
    """Seconds until an idle chat ends, once it is within the warning window; else None."""
    if timeout_s <= 0:
        return None
    left = last_activity + timeout_s - now
    return left if 0 < left <= idle_warning_window(timeout_s) else None
