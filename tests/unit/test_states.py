"""The conversation state machine: waiting ⇄ active → ended, nothing after ended."""

from __future__ import annotations

import itertools

import pytest

from bridge.core.models import Status
from bridge.core.states import Happening, InvalidTransition, is_open, next_status

ALLOWED = {
    (Status.WAITING, Happening.AGENT_JOINED): Status.ACTIVE,
    (Status.WAITING, Happening.AGENT_REPLIED): Status.ACTIVE,
    (Status.WAITING, Happening.ENDED): Status.ENDED,
    (Status.ACTIVE, Happening.AGENT_JOINED): Status.ACTIVE,
    (Status.ACTIVE, Happening.AGENT_REPLIED): Status.ACTIVE,
    (Status.ACTIVE, Happening.ENDED): Status.ENDED,
    # The chat's agent walked out with nobody else left: back in the waiting line.
    (Status.ACTIVE, Happening.AGENT_GONE): Status.WAITING,
}


@pytest.mark.parametrize(("current", "happening"), list(ALLOWED))
def test_allowed_transitions(current: Status, happening: Happening) -> None:
    assert next_status(current, happening) is ALLOWED[(current, happening)]


@pytest.mark.parametrize("happening", list(Happening))
def test_nothing_happens_after_ended(happening: Happening) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_status(Status.ENDED, happening)
    assert str(info.value) == f"{happening.value} is not possible in ended"


def test_every_pair_is_either_allowed_or_refused() -> None:
    for current, happening in itertools.product(Status, Happening):
        if (current, happening) in ALLOWED:
            assert next_status(current, happening) is ALLOWED[(current, happening)]
        else:
            with pytest.raises(InvalidTransition):
                next_status(current, happening)


def test_ended_is_terminal_and_reachable_from_every_open_status() -> None:
    for status in Status:
        if is_open(status):
            assert next_status(status, Happening.ENDED) is Status.ENDED


def test_happy_path() -> None:
    status = Status.WAITING
    for happening in (Happening.AGENT_JOINED, Happening.AGENT_REPLIED, Happening.ENDED):
        status = next_status(status, happening)
    assert status is Status.ENDED


def test_is_open() -> None:
    assert is_open(Status.WAITING)
    assert is_open(Status.ACTIVE)
    assert not is_open(Status.ENDED)


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


def test_happening_values_are_stable() -> None:
    assert {h.value for h in Happening} == {"agent_joined", "agent_replied", "agent_gone",
                                             "ended"}
