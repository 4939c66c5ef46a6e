"""The `[chats]` table: how long a transfer offer waits for its answer, and how long a
visitor may still change a line they sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config_reader import Reader


@dataclass(frozen=True)
class ChatsConfig:
    # An offered chat (`!transfer bob`) stays with the offering agent this long at most
    # while Bob neither joins nor declines.
    transfer_offer_seconds: float = 120.0
    # A visitor may edit or delete their last line this long after sending it; 0: never.
    visitor_edit_seconds: float = 120.0


def _positive(value: float) -> str | None:
    return None if value > 0 else f"{value} is not positive (expected seconds > 0)"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else f"{value} is negative (expected seconds >= 0; 0: never)"


def parse_chats(r: Reader, t: dict[str, Any]) -> ChatsConfig:
    p = "chats"
    r.unknown_keys(t, {"transfer_offer_seconds", "visitor_edit_seconds"}, p)
    defaults = ChatsConfig()
    offer = r.get(t, "transfer_offer_seconds", p, (int, float),
                  defaults.transfer_offer_seconds, check=_positive)
    edit = r.get(t, "visitor_edit_seconds", p, (int, float), defaults.visitor_edit_seconds,
                 check=_not_negative)
    return ChatsConfig(transfer_offer_seconds=float(offer), visitor_edit_seconds=float(edit))
