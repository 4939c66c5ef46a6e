"""Direct chats between the Matrix bot and one agent, where tickets reach that agent.

A part of `MatrixBackend` (a mixin, so that its module stays small): it uses the backend's
request helpers and its `BackendState`, where each agent's direct room is remembered under
`direct:{address}`. The room is the one the agent opened with the bot (an invitation
marked `is_direct`), else one the bot makes and invites the agent to. Invitations from anyone
who is not a configured agent are declined here too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nio import InviteMemberEvent, RoomPreset, RoomVisibility

from bridge.backends.base import BackendError, BackendState, BackendUnavailable, RoomGone
from bridge.core.models import RoomRef

if TYPE_CHECKING:
    from nio import AsyncClient

log = logging.getLogger(__name__)


class DirectChats:
    """Invitations answered, `post_direct`, and the memory of agents' direct rooms, for
    MatrixBackend."""

    state: BackendState
    user_id: str
    agents: set[str]  # only these may pull the bot into a room
    _direct_lock: asyncio.Lock | None = None

    if TYPE_CHECKING:  # provided by MatrixBackend
        async def _call(self, request: Any) -> Any: ...
        def _require_client(self) -> AsyncClient: ...
        async def _still_joined(self, room: RoomRef) -> bool: ...
        async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str: ...
        async def invite(self, room: RoomRef, address: str) -> None: ...

    async def answer_invite(self, room: RoomRef, invite_state: list[Any]) -> None:
        """Join a direct chat an agent opened with the bot; decline everyone else's."""
        inviter = next((e.sender for e in invite_state if isinstance(e, InviteMemberEvent)
                        and e.state_key == self.user_id), None)
        client = self._require_client()
        try:
            if inviter in self.agents:
                await self._call(client.join(room))
                self._joined_for_agent(room, inviter, invite_state)
            else:
                await self._call(client.room_leave(room))
                log.info("matrix: declined an invitation to %s from %s", room, inviter)
        except BackendError as exc:
            log.warning("matrix: could not answer the invitation to %s (%s)", room, exc)

    def _joined_for_agent(self, room: RoomRef, agent: str, invite_state: list[Any]) -> None:
        """The bot joined a room an agent invited it to: remembered as their direct chat
        when the invitation says it is one."""
        log.info("matrix: joined %s, a direct chat from agent %s", room, agent)
        if any(isinstance(e, InviteMemberEvent) and e.state_key == self.user_id
               and (e.content or {}).get("is_direct") for e in invite_state):
            self.state.set(f"direct:{agent}", room)

    async def post_direct(self, address: str, text: str, *, key: str) -> str:
        # The key is the transaction id: a retry in the same room never shows twice.
        room = await self._direct_room(address)
        try:
            return await self.post_notice(room, text, key=key)
        except RoomGone:  # the bot was put out of it since: a new room, and say it there
            self.state.set(f"direct:{address}", "")
            return await self.post_notice(await self._direct_room(address), text, key=key)

    async def _direct_room(self, address: str) -> RoomRef:
        if self._direct_lock is None:
            self._direct_lock = asyncio.Lock()
        async with self._direct_lock:  # two tickets at once open one room, not two
            known = self.state.get(f"direct:{address}")
            if known and await self._still_joined(RoomRef(known)):
                if await self._membership(RoomRef(known), address) not in ("join", "invite"):
                    await self.invite(RoomRef(known), address)  # they left it: asked back
                return RoomRef(known)
            created = await self._call(self._require_client().room_create(
                visibility=RoomVisibility.private, preset=RoomPreset.private_chat,
                invite=[address], is_direct=True))
            room = RoomRef(created.room_id)
            self.state.set(f"direct:{address}", room)
            log.info("matrix: opened direct chat %s with %s", room, address)
            return room

    async def _membership(self, room: RoomRef, address: str) -> str | None:
        try:
            member = await self._call(self._require_client().room_get_state_event(
                room, "m.room.member", address))
        except BackendUnavailable:
            raise
        except BackendError:
            return None  # never a member of it
        return (member.content or {}).get("membership")
