"""Durable key-value pairs: the backends' state (sync tokens, lobby rooms, ...) (SQLite)."""

from __future__ import annotations

from typing import Protocol

from bridge.store.contracts import KeyValueRepository
from bridge.store.db import SqliteDatabase


class SqliteKeyValue:
    """`KeyValueRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._transaction = database.transaction

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str, *, durable: bool = True) -> None:
        with self._transaction(durable=durable):
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class HoldsKeyValue(Protocol):
    """Anything with a key-value repository: the `Store`, or a test's stand-in."""

    @property
    def kv(self) -> KeyValueRepository: ...


class StoreBackendState:
    """The durable key-value slice a backend may use, namespaced per backend."""

    def __init__(self, store: HoldsKeyValue, namespace: str) -> None:
        self._kv = store.kv
        self._prefix = namespace + ":"

    def get(self, key: str) -> str | None:
        return self._kv.get(self._prefix + key)

    def set(self, key: str, value: str, *, durable: bool = True) -> None:
        self._kv.set(self._prefix + key, value, durable=durable)
