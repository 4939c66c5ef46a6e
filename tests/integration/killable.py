"""A bridge in its own process, so a test can kill it (SIGKILL) and start it again on the
same database, and what such tests read from that database with a connection of their own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bridge.devserver.bridge_process import BridgeProcess
from tests.integration.conftest import Messenger, bridge_settings
from tests.integration.helpers import toml_text


def killable_bridge(messenger: Messenger, tmp_path: Path,
                    smtp: dict[str, Any] | None = None) -> tuple[BridgeProcess, Path]:
    """A bridge process (not started) with the flood limit lifted, and its database."""
    db = tmp_path / "livechat.sqlite3"
    settings: dict[str, Any] = bridge_settings(messenger, db, smtp, frames_per_10s=1000)
    config = tmp_path / "bridge.toml"
    config.write_text(toml_text(settings))
    port = int(settings["server"]["listen"].rsplit(":", 1)[1])
    return BridgeProcess(config, port, tmp_path / "bridge.log"), db


def room_in(db: Path, conversation_id: str) -> str | None:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT room FROM conversations WHERE id = ?",
                           (conversation_id,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


async def room_on_disk(db: Path, conversation_id: str, timeout: float = 30.0) -> str:
    """The conversation's room, once the bridge has stored it."""
    async with asyncio.timeout(timeout):
        while (room := room_in(db, conversation_id)) is None:
            await asyncio.sleep(0.05)
    return room
