"""Offers: a chat handed to a colleague who has not taken it yet, and the short answers
agents give in their messenger ("yes", "no", a ✅ reaction). Pure: callers pass `now`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.core.models import ConversationId

# Short answers in the languages the widget speaks, plus the usual chat shorthands.
_YES = frozenset({"yes", "y", "ok", "okay", "sure", "✅", "👍", "ja", "igen", "tak", "jā",
                  "evet", "oui", "sí", "si"})
_NO = frozenset({"no", "n", "nope", "❌", "👎", "nein", "nem", "nie", "nē", "hayır", "hayir",
                 "non"})
_CLAIM_REACTIONS = frozenset({"✅", "✔", "☑", "👍"})
# Emoji variation selectors and a closing punctuation mark do not change an answer.
_NOISE = re.compile("[\ufe0e\ufe0f]|[.!]+$")


@dataclass(frozen=True)
class Offer:
    """`from_agent` offers the chat to `to_agent`, who was invited at `made_at`."""

    conversation_id: ConversationId
    from_agent: str
    to_agent: str
    queue_id: str | None  # the chat moves to this queue when taken (`!transfer QUEUE`)
    note: str
    stay: bool  # the offering agent stays in the room after the hand-over
    made_at: float

    def expired(self, now: float, timeout_s: float) -> bool:
        return now - self.made_at >= timeout_s

    def left_s(self, now: float, timeout_s: float) -> float:
        return max(0.0, self.made_at + timeout_s - now)


def answer(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else. A reply's quoted fallback
    lines ("> …", from older Matrix clients) are not part of the answer."""
    own = [line for line in text.splitlines() if not line.startswith(">")]
    word = _NOISE.sub("", " ".join(own).strip().lower()).strip()
    if word in _YES:
        return True
    if word in _NO:
        return False
    return None


def claims(reaction_key: str) -> bool:
    """Whether a reaction on a waiting chat's lobby line takes that chat."""
    return _NOISE.sub("", reaction_key.strip()) in _CLAIM_REACTIONS


def expired(offers: list[Offer], now: float, timeout_s: float) -> list[Offer]:
    return [offer for offer in offers if offer.expired(now, timeout_s)]
