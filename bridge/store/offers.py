"""Transfer offers waiting for their answer (SQLite)."""

from __future__ import annotations

from typing import Any

from bridge.core.models import ConversationId, Status
from bridge.core.offers import Offer
from bridge.store.db import SqliteDatabase

_COLUMNS = "o.conversation_id, o.from_agent, o.to_agent, o.queue_id, o.note, o.stay, o.made_at"


class SqliteOffers:
    """`OfferRepository` on SQLite: at most one offer per chat."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._transaction = database.transaction

    def put_offer(self, offer: Offer) -> None:
        """Keep `offer`, replacing the chat's earlier one."""
        with self._transaction(durable=True):
            self._db.execute(
                "INSERT OR REPLACE INTO transfer_offers (conversation_id, from_agent, to_agent,"
                " queue_id, note, stay, made_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (offer.conversation_id, offer.from_agent, offer.to_agent, offer.queue_id,
                 offer.note, int(offer.stay), offer.made_at))

    def drop_offer(self, conversation_id: str) -> None:
        with self._transaction(durable=True):
            self._db.execute("DELETE FROM transfer_offers WHERE conversation_id = ?",
                             (conversation_id,))

    def offer(self, conversation_id: str) -> Offer | None:
        """The chat's offer, whether the chat is open or has just ended."""
        rows = self._select("o.conversation_id = ?", (conversation_id,))
        return rows[0] if rows else None

    def open_offers(self) -> list[Offer]:
        """The offers of chats that have not ended, oldest first."""
        return self._select("c.status != ?", (Status.ENDED.value,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Offer]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM transfer_offers o JOIN conversations c"
            f" ON c.id = o.conversation_id WHERE {where} ORDER BY o.made_at", args)
        return [Offer(ConversationId(row[0]), str(row[1]), str(row[2]), row[3], str(row[4]),
                      bool(row[5]), float(row[6])) for row in rows]
