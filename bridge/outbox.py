"""The outbox: each conversation's undelivered lines, posted to its room in order.

One courier task per conversation with something to deliver; a post that fails is retried
with the same key (so the room never shows it twice), a room that disappeared is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from bridge.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    FileRefused,
    OutgoingFile,
    PostedLine,
    RateLimited,
    RoomGone,
    RoomSpec,
)
from bridge.config import Config
from bridge.core.files import human_size
from bridge.core.models import (
    Conversation,
    ConversationId,
    Item,
    ItemChange,
    ItemKind,
    RoomRef,
    Sender,
)
from bridge.opening_rooms import OpeningRooms
from bridge.store import Store
from bridge.tasks import TaskGroup, backoff_delays

log = logging.getLogger(__name__)

T = TypeVar("T")
COURIER_RESTART_S = 5.0
# How many drained conversations are remembered (forgetting one only costs a read).
DRAINED_MEMORY = 10_000
# What goes out for a visitor line deleted before the room had it (then taken back at once).
DELETED_LINE = "(deleted by the visitor)"


def visitor_nick(conversation: Conversation) -> str:
    """How the visitor appears in the agents' room."""
    return f"{conversation.visitor.name} (visitor)"


class Outbox:
    """Delivers stored visitor and system lines to the conversations' rooms."""

    def __init__(self, config: Config, store: Store, backend: Backend, tasks: TaskGroup,
                 invitees: Callable[[Conversation, bool], tuple[str, ...]],
                 room_opened: Callable[[], Awaitable[None]], opening: OpeningRooms,
                 room_stored: Callable[[], Awaitable[None]],
                 outgoing: Callable[[Item], OutgoingFile | None]) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self._tasks = tasks
        self._invitees = invitees  # routing decides who is invited to a new room
        # Someone may have become able to take the chat while the room was being made.
        self._room_opened = room_opened
        self._opening = opening
        self._room_stored = room_stored
        self._outgoing = outgoing  # a visitor's file as the backend posts it
        self._couriers: dict[ConversationId, asyncio.Task[None]] = {}
        # Conversations whose courier last found nothing undelivered, with no kick since.
        self._drained: set[ConversationId] = set()
        self._retry_now = asyncio.Event()

    def kick(self, conversation_id: ConversationId, item: Item | None = None) -> None:
        """Deliver the conversation's undelivered items; call it after storing any.

        `item` is the line just stored, if the caller has it: when the conversation had
        nothing else undelivered, the courier posts it at once instead of reading it back.
        That rests on every stored undelivered line being followed by a kick.
        """
        drained = conversation_id in self._drained
        self._drained.discard(conversation_id)
        task = self._couriers.get(conversation_id)
        if task is None or task.done():
            first = item if drained and item is not None and not item.delivered else None
            self._couriers[conversation_id] = self._tasks.spawn(
                self._deliver(conversation_id, first), name=f"courier-{conversation_id}"
            )

    async def _deliver(self, conversation_id: ConversationId, first: Item | None = None
                       ) -> None:
        """Post the conversation's undelivered items in seq order, one at a time, until none
        are left. Failed posts are retried with the same key, so nothing is lost or doubled."""
        try:
            conversation = self.store.conversation(conversation_id)  # from memory, mostly
            if conversation is None:
                return
            room = conversation.room
            if room is None:
                first = None  # read the lines as they are once the room is there
                room = await self._retrying(conversation_id, "open room", self._open_room,
                                            conversation)
            while True:
                if first is not None:
                    pending, first = [first], None
                else:
                    pending = self.store.undelivered(conversation_id)
                if not pending:
                    changes = self.store.changes_to_send(conversation_id)
                    if changes:  # after the lines they change, which are all in the room
                        await self._send_changes(conversation_id, room, changes)
                        continue
                    # No await since the queries: no item or change can slip in unseen.
                    if len(self._drained) >= DRAINED_MEMORY:
                        self._drained.clear()
                    self._drained.add(conversation_id)
                    return
                for item in pending:
                    try:
                        event_id = await self._retrying(
                            conversation_id, f"post seq {item.seq}", self._post_as_now(item),
                            room)
                    except RoomGone as exc:
                        log.warning("conversation %s: room %s is gone (%s); opening a new one",
                                    conversation_id, room, exc)
                        conversation = self.store.conversation(conversation_id)
                        if conversation is None:
                            return
                        room = await self._retrying(
                            conversation_id, "reopen room", self._open_room, conversation, True
                        )
                        break  # the same items again, in the new room
                    self.store.mark_delivered(conversation_id, item.seq, event_id)
        except Exception:
            # A bug (or a locked database) must not leave this outbox stuck: try later.
            log.exception("conversation %s: delivery failed; retrying in %.0fs",
                          conversation_id, COURIER_RESTART_S)
            self._tasks.spawn(self._kick_later(conversation_id), name=f"rekick-{conversation_id}")
        finally:
            if self._couriers.get(conversation_id) is asyncio.current_task():
                del self._couriers[conversation_id]

    async def _kick_later(self, conversation_id: ConversationId) -> None:
        await asyncio.sleep(COURIER_RESTART_S)
        self.kick(conversation_id)

    async def _open_room(self, conversation: Conversation, again: bool = False) -> RoomRef:
        spec = self.room_spec(conversation)
        if again:  # a room that disappeared may leave its address taken (XMPP tombstones)
            spec = replace(spec, key=f"{conversation.id}-{secrets.token_hex(3)}")
        with self._opening.opening(spec.invite):
            room = await self.backend.open_room(spec)
            self.store.set_room(conversation.id, room)
        log.info("conversation %s: room %s opened, invited %d agents", conversation.id, room,
                 len(spec.invite))
        await self._room_stored()  # what its agents did meanwhile is handled now, in order
        await self._room_opened()
        return room

    def room_spec(self, conversation: Conversation, *, new_room: bool = True) -> RoomSpec:
        """How the conversation's room looks and who routing invites to it (to a room that
        exists already, `new_room=False`: those routing invited before)."""
        queue = self.config.queue(conversation.queue_id)
        invite = self._invitees(conversation, new_room)
        topic = " · ".join(
            part for part in (conversation.visitor.email, conversation.page.title,
                              conversation.page.url) if part
        )
        queue_name = queue.name if queue else conversation.queue_id  # a queue since removed
        return RoomSpec(
            name=f"💬 {conversation.visitor.name} · {queue_name}",
            topic=topic,
            visitor_nick=visitor_nick(conversation),
            invite=invite,
            key=conversation.id,
        )

    def _post_as_now(self, item: Item) -> Callable[[RoomRef], Awaitable[str]]:
        """`_post` of the item, and of the item as the store has it now on a retry: the
        visitor may have changed it meanwhile (the change itself follows the line)."""
        retry = False

        async def post(room: RoomRef) -> str:
            nonlocal retry
            line = (self.store.item_at(item.conversation_id, item.seq) or item) if retry \
                else item
            retry = True
            return await self._post(room, line)
        return post

    async def _post(self, room: RoomRef, item: Item) -> str:
        key = item.txn_id or f"lcb.{item.conversation_id}.{item.seq}"
        if item.deleted_at is not None:
            # Taken back before the room confirmed it: the room may have it all the same
            # (a retry with its key gets that line back), so something goes out with the
            # key and the retraction that follows takes it away; the text never goes again.
            return await self.backend.post_text(room, DELETED_LINE, key=key)
        if item.kind is ItemKind.ENDED:
            text = (f"{item.name} ended the chat." if item.name
                    else "The chat ended: nobody wrote for a while.")
            return await self.backend.post_notice(room, text, key=key)
        if item.sender is Sender.SYSTEM:
            return await self.backend.post_notice(room, item.text, key=key)
        if item.kind is ItemKind.FILE:
            return await self._post_file(room, item, key)
        return await self.backend.post_text(room, item.text, key=key)

    async def _post_file(self, room: RoomRef, item: Item, key: str) -> str:
        """A visitor's file; when the messenger will never take it (too large for its
        server), the agents get a notice with the bridge's link instead, so that nothing
        after it waits for good."""
        file = self._outgoing(item)
        if file is None:  # erased before it reached the room
            return await self.backend.post_notice(
                room, f"The visitor sent a file ({item.text}) that is no longer stored.",
                key=key)
        try:
            return await self.backend.post_file(room, file, key=key)
        except FileRefused as exc:
            log.warning("conversation %s: file seq %d refused by the messenger (%s); "
                        "posting its link", item.conversation_id, item.seq, exc)
            return await self.backend.post_notice(
                room, f"The visitor sent {file.name} ({human_size(file.size)}), which the "
                f"server did not take ({exc}). It is here: {file.link}", key=key)

    async def _send_changes(self, conversation_id: ConversationId, room: RoomRef,
                            changes: list[ItemChange]) -> None:
        """The visitor's edits and deletions, each line's last one only: it carries the
        line's final state (an edit, its text now), so the ones before it are settled with
        it. A room that disappeared took the line with it: nothing left to change."""
        last = {change.seq: change for change in changes}
        for change in changes:
            assert change.key is not None
            line = self.store.item_at(conversation_id, change.seq)
            # (An edit overtaken by a deletion meanwhile: the deletion, stored since, follows.)
            if last[change.seq] is change and line is not None and line.event_id \
                    and not (change.kind == "edit" and line.deleted_at is not None):
                posted = PostedLine(line.event_id,
                                    line.txn_id or f"lcb.{conversation_id}.{line.seq}")
                try:
                    await self._retrying(conversation_id, f"{change.kind} of seq {line.seq}",
                                         self._change, room, posted, change, line.text,
                                         conversation_id)
                except RoomGone as exc:
                    log.warning("conversation %s: %s of seq %d not made, the room is gone "
                                "(%s)", conversation_id, change.kind, line.seq, exc)
            self.store.change_sent(conversation_id, change.key)

    async def _change(self, room: RoomRef, line: PostedLine, change: ItemChange, text: str,
                      conversation_id: ConversationId) -> None:
        assert change.key is not None
        try:
            if change.kind == "delete":
                await self.backend.retract_line(room, line, key=change.key)
            else:
                await self.backend.edit_line(room, line, text, key=change.key)
        except (RoomGone, BackendUnavailable):
            raise
        except BackendError as exc:  # refused for good: it would block every line after it
            log.error("conversation %s: %s %s refused (%s); not retried", conversation_id,
                      change.kind, change.key, exc)

    async def _retrying(
        self, conversation_id: ConversationId, what: str, attempt: Callable[..., Awaitable[T]],
        *args: Any,
    ) -> T:
        delays = backoff_delays()
        while True:
            try:
                return await attempt(*args)
            except RoomGone:
                raise  # retrying cannot help: the caller opens a new room
            except RateLimited as exc:
                delay = exc.retry_after
            except BackendUnavailable as exc:
                delay = next(delays)
                log.warning("conversation %s: %s failed (%s), retry in %.1fs", conversation_id,
                            what, exc, delay)
            except BackendError as exc:
                delay = max(next(delays), 5.0)
                log.error("conversation %s: %s refused (%s), retry in %.1fs", conversation_id,
                          what, exc, delay)
            except Exception:
                # A bug must not stop this conversation's outbox for good.
                delay = max(next(delays), 5.0)
                log.exception("conversation %s: %s failed unexpectedly, retry in %.1fs",
                              conversation_id, what, delay)
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Sleep before a retry, cut short when the backend reports it is connected again."""
        try:
            await asyncio.wait_for(self._retry_now.wait(), delay)
        except TimeoutError:
            pass

    def wake(self) -> None:
        self._retry_now.set()
        self._retry_now = asyncio.Event()
        for conversation_id in self.store.conversations_with_outbox():
            self.kick(conversation_id)
