"""The one write path of a conversation's timeline: store an item, push it to the visitor's
live connections, hand it to the outbox. Every part that records something goes through
here, so an item is never shown before it is stored nor stored without being shown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from bridge.core import frames
from bridge.core.models import ConversationId, FileInfo, Item, ItemKind, Sender
from bridge.core.protocol import ProtocolError
from bridge.sinks import Sinks, VisitorSink
from bridge.store import StoreUnavailable

log = logging.getLogger(__name__)

REPLAY_BATCH = 100
STORE_FULL_MESSAGE = "the line could not be stored right now; send it again in a few seconds"


class TimelineStore(Protocol):
    """What the timeline needs of the store."""

    def append_item(self, conversation_id: ConversationId, kind: ItemKind, sender: Sender,
                    name: str, text: str, now: float, *, client_id: str | None = None,
                    sender_id: str | None = None, event_id: str | None = None,
                    delivered: bool = False, wait_for_disk: bool = True,
                    file: FileInfo | None = None) -> tuple[Item, bool]: ...

    def items_after(self, conversation_id: str, after: int) -> list[Item]: ...

    async def flush(self) -> None: ...

    def change_item(self, item: Item, kind: str, text: str, by: str | None, now: float,
                    *, to_room: bool = False) -> Item: ...


# Deliver the conversation's undelivered items (the outbox's kick); `item` is the one just
# stored when the caller has it.
Kick = Callable[[ConversationId, Item | None], None]


class Timeline:
    """Records items and shows them: to the visitor at once, to the room through the outbox."""

    def __init__(self, store: TimelineStore, sinks: Sinks, kick: Kick,
                 survey_question: str) -> None:
        self._store = store
        self._sinks = sinks
        self._kick = kick
        self._survey_question = survey_question

    def frame(self, item: Item) -> frames.Frame:
        return frames.item_frame(item, self._survey_question)

    async def record(self, conversation_id: ConversationId, kind: ItemKind, sender: Sender,
                     name: str, text: str, now: float, *, sender_id: str | None = None,
                     event_id: str | None = None, delivered: bool = False,
                     client_id: str | None = None, file: FileInfo | None = None
                     ) -> tuple[Item, bool]:
        """Store an item (once per event id or client id), durably, push it to the visitor,
        and unless the room has it already (`delivered`), queue it for the room. Returns
        (item, created)."""
        item, created = self._store.append_item(
            conversation_id, kind, sender, name, text, now, sender_id=sender_id,
            event_id=event_id, delivered=delivered, client_id=client_id, file=file)
        if created:
            if not delivered:
                self._kick(conversation_id, item)
            await self._sinks.push(conversation_id, self.frame(item))
        return item, created

    def store_only(self, conversation_id: ConversationId, kind: ItemKind, sender: Sender,
                   name: str, now: float, *, delivered: bool) -> tuple[Item, bool]:
        """The first half of `record`, for an item whose showing must wait for effects it
        causes (the end: a ticket made from the chat is shown before it); `show` follows."""
        return self._store.append_item(conversation_id, kind, sender, name, "", now,
                                       delivered=delivered)

    async def show(self, item: Item) -> None:
        """The second half of `record`: to the visitor, and to the room unless it has it."""
        await self._sinks.push(item.conversation_id, self.frame(item))
        if not item.delivered:
            self._kick(item.conversation_id, None)

    async def visitor_line(self, conversation_id: ConversationId, name: str, text: str,
                           client_id: str, now: float, origin: VisitorSink) -> int:
        """A visitor's line: to the room as soon as it is committed, acknowledged (its seq
        returned) only once on disk; a repeated client_id gets its first seq. `try_again`
        when the store refuses."""
        try:
            item, created = self._store.append_item(
                conversation_id, ItemKind.TEXT, Sender.VISITOR, name, text, now,
                client_id=client_id, wait_for_disk=False)
        except StoreUnavailable as exc:
            log.warning("conversation %s: visitor line not stored: %s", conversation_id, exc)
            raise ProtocolError("try_again", STORE_FULL_MESSAGE) from exc
        if created:
            log.debug("conversation %s: visitor line seq %d", conversation_id, item.seq)
            # The room may see the line while the disk catches up: a crash cannot lose a
            # committed line, and the visitor resends any line not acknowledged.
            self._kick(conversation_id, item)
            await asyncio.sleep(0)  # the courier posts the line before the fsync is set going
        try:
            await self._store.flush()  # a retry, too, is acknowledged only once on disk
        except StoreUnavailable as exc:
            # Committed but maybe not on disk: no ack; the resend finds it by client_id.
            log.warning("conversation %s: visitor line seq %d not synced: %s",
                        conversation_id, item.seq, exc)
            raise ProtocolError("try_again", STORE_FULL_MESSAGE) from exc
        if created:
            await self._sinks.push(conversation_id, self.frame(item), skip=origin)
        return item.seq

    async def change(self, item: Item, kind: str, text: str, by: str | None, now: float, *,
                     to_room: bool = False) -> None:
        """A line corrected ("edit") or taken back ("delete"): stored with what it was, then
        shown in place on the visitor's connections. `to_room`: the visitor's own line,
        whose change the outbox then makes in the room (an agent's came from there)."""
        changed = self._store.change_item(item, kind, text, by, now, to_room=to_room)
        frame = frames.edit_frame(changed, now) if kind == "edit" else \
            frames.delete_frame(changed.seq)
        if to_room:
            self._kick(item.conversation_id, None)
        await self._sinks.push(item.conversation_id, frame)

    async def replay(self, conversation_id: ConversationId, after: int, sink: VisitorSink
                     ) -> None:
        """Send everything after `after`, then go live with no gap and nothing out of order:
        the sink is attached right after a query that found nothing new, with no await
        in between, so every later item reaches it as a live push."""
        while items := self._store.items_after(conversation_id, after):
            for count, item in enumerate(items, 1):
                await sink.send(self.frame(item))
                after = item.seq
                if count % REPLAY_BATCH == 0:
                    await sink.drain()  # a long chat goes out in batches, not all queued
        self._sinks.attach(conversation_id, sink)
