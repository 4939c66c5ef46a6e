"""An agent's client dropping out of a group chat is not yet an agent leaving the chat.

On XMPP a group chat occupant whose connection ends is taken out of the room with the same
presence as one who chose to leave. A phone in a tunnel would hand the visitor to someone
else and tell them "Alice left", then "Alice joined" a minute later. So a departure waits a
moment for the agent's own presence: if the client that left the room is still online, the
agent left on purpose and the hub hears it at once; if the client went offline too, the
connection was lost, and the hub hears of the departure only when the agent is not back in
the room within the grace (`[xmpp] rejoin_grace_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

# Time for the agent's own unavailable presence, which the server sends in the same breath
# as the group chat's, to arrive (it may come second).
SETTLE_S = 2.0


class Departures:
    """Agents gone from group chats, held back while they may come back."""

    def __init__(self, online: Callable[[str], bool], tasks: TaskGroup, grace_s: float) -> None:
        self._online = online  # is this full JID connected (the bot's roster knows)
        self._tasks = tasks
        self._grace_s = grace_s
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}  # (room, bare jid)

    def left(self, room: str, full_jid: str, report: Callable[[], None]) -> None:
        """`full_jid` left `room`; `report` tells the hub, now or after the grace."""
        key = (room, full_jid.split("/", 1)[0])
        self._cancel(key)
        if self._grace_s <= 0:
            report()
            return
        self._pending[key] = self._tasks.spawn(self._decide(key, full_jid, report),
                                               name=f"departure-{room}")

    def came_back(self, room: str, address: str) -> bool:
        """The agent is in the room again; True when a departure was still held back."""
        return self._cancel((room, address))

    def _cancel(self, key: tuple[str, str]) -> bool:
        task = self._pending.pop(key, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def _decide(self, key: tuple[str, str], full_jid: str,
                      report: Callable[[], None]) -> None:
        await asyncio.sleep(min(SETTLE_S, self._grace_s))
        if not self._online(full_jid):
            log.info("xmpp: %s dropped out of %s; %.0f s to come back", full_jid, key[0],
                     self._grace_s)
            await asyncio.sleep(max(self._grace_s - SETTLE_S, 0.0))
        self._pending.pop(key, None)
        report()
