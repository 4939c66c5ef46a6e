"""A full disk under the store: nothing acknowledged, nothing lost, recovery on its own.

The bridge's database lives on a small tmpfs that the test fills. While it is full, a
visitor line gets `try_again` (never an ack, never `internal`) and agents' lines wait in
the backend; once space returns, both reach the other side exactly once, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import Bridge
from tests.integration.conftest import Messenger, TestAgent, bridge_config, room_of

TMPFS_SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test ({done.stderr.strip()}); "
                    "run the suite as root, as CI does")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; returns the file to delete to free it again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 512, 1):  # the last partial blocks too
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_refuses_lines_then_recovers_by_itself(
        messenger: Messenger, agent: TestAgent, visitors, small_disk: Path) -> None:
    bridge = Bridge(bridge_config(messenger, small_disk / "livechat.sqlite3"))
    await bridge.start()
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await agent.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined")
        await visitor.say("before")
        await agent.wait_text(room, "before")

        # Every later write has to grow the WAL file, which the full disk refuses.
        bridge.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(small_disk)
        for n in range(3):
            await agent.say(room, f"while full {n}")
        await visitor.send({"type": "message", "client_id": "full-1", "text": "on a full disk"})
        refused = await visitor.wait("error", lambda f: f.get("client_id") == "full-1")
        assert refused["code"] == "try_again"
        await asyncio.sleep(1.5)  # the agent's lines are held back, not dropped
        assert [f for f in visitor.of("message") if "while full" in f["text"]] == []
        assert visitor.of("ack")[-1]["client_id"] != "full-1"
        assert [f for f in visitor.of("error") if f["code"] == "internal"] == []

        filler.unlink()
        for n in range(3):
            await visitor.wait("message", lambda f, n=n: f["text"] == f"while full {n}",
                               timeout=20)
        ack = await visitor.say("on a full disk", client_id="full-1")  # the widget's resend
        await agent.wait_text(room, "on a full disk")
        await asyncio.sleep(1)  # time for any double to show
        texts = [f["text"] for f in visitor.of("message") if f["from"] == "agent"]
        assert texts == [f"while full {n}" for n in range(3)]
        assert agent.texts(room).count("on a full disk") == 1
        line = bridge.store.item_by_client_id(started["conversation"], "full-1")
        assert line is not None and line.seq == ack["seq"]
    finally:
        await bridge.stop()


def test_fill_really_fills(small_disk: Path) -> None:
    filler = fill(small_disk)
    with pytest.raises(OSError) as refused:
        (small_disk / "more").write_bytes(b"x" * 4096)
    assert refused.value.errno == errno.ENOSPC
    filler.unlink()
