"""The SQLite connection every repository shares: WAL, the migrations, transactions, flush.

A write returns once its commit is on disk (an fdatasync of the WAL file right after the
commit, which is what synchronous=FULL does inside it), so the outbox (undelivered items)
survives a kill -9 and a power cut. Visitor lines are the exception: they commit without
waiting, go to the room, and their acknowledgement waits for an fsync shared with the lines
around them, in another thread (`flush`, `bridge.wal_sync`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bridge.store.schema import StoreUnavailable, migrate
from bridge.wal_sync import WalSync


class SqliteDatabase:
    """One connection, in WAL mode, migrated to this version's schema."""

    def __init__(self, path: Path | str) -> None:
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(str(path))
        self._wal_sync = None if memory else WalSync(Path(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        migrate(self.db)
        if self._wal_sync is not None:
            # Commits no longer fsync inside SQLite: `transaction` syncs the WAL file itself
            # (at once, or for many commits together in `flush`).
            self.db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        if self._wal_sync is not None:
            self._wal_sync.close()
        self.db.conn.close()

    async def flush(self) -> None:
        """Return once every commit so far is on disk, those made without waiting included.

        Raises StoreUnavailable when the disk refused the fsync."""
        if self._wal_sync is not None:
            try:
                await self._wal_sync.wait()
            except OSError as exc:
                raise StoreUnavailable(f"the disk refused a sync: {exc}") from exc

    @contextmanager
    def transaction(self, *, durable: bool) -> Iterator[None]:
        """A transaction, on disk when it returns; `durable=False` commits without waiting
        for the disk (WAL keeps commits in order, so a power cut may lose the newest ones but
        never reorders them; a crash of the process loses nothing) and `flush()` waits."""
        nested = self.db.conn.in_transaction
        try:
            with self.db.atomic():
                yield
            if nested or self._wal_sync is None:
                return  # the outer transaction's commit is the one that counts
            if durable:
                self._wal_sync.sync_now()
            else:
                self._wal_sync.committed()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the database refused a write: {exc}") from exc
        except OSError as exc:  # the fsync after the commit
            raise StoreUnavailable(f"the disk refused a sync: {exc}") from exc

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """A SELECT's rows as dicts, straight from the connection. On the hot path (every
        visitor line reads its conversation and checks its client_id; every delivery reads
        the outbox): sqlite-utils' query() wraps each SELECT in a savepoint and scans the
        SQL first, which costs more than the read itself."""
        cursor = self.db.conn.execute(sql, params)
        keys = [column[0] for column in cursor.description]
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
