"""Group commit for the store: commits made without an fsync reach the disk together.

SQLite in WAL mode with `synchronous=NORMAL` writes a commit into the WAL file without waiting
for the disk: a crash of the process loses nothing (the kernel has the pages), a power cut may
lose the newest commits but never reorders them. `WalSync` makes such commits durable with one
`fdatasync` of the WAL file, in its own thread, for every commit made before the call started.
So a visitor's line can go to the room while the disk catches up, many lines share one fsync,
and the event loop never waits for the disk. Only the acknowledgement waits (`wait`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

# When the disk is idle, the first line to wait for it waits this much longer before its fsync
# starts: the line itself goes out in the meantime, and on a two-core machine the fsync
# thread waking up at once takes a CPU from the messenger server and the agent's client just
# as they handle it (XMPP, visitor -> agent: about 0.1 ms more at the median; see
# bench/README.md). Lines arriving meanwhile share the fsync; the ack comes that much later.
GATHER_S = 0.002


class WalSync:
    """Counts commits that skipped the fsync and makes them durable on demand."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._wal = Path(f"{database}-wal")
        self._fd: int | None = None  # touched only under _lock
        self._lock = threading.Lock()
        self._committed = 0  # commits made without waiting for the disk
        self._synced = 0  # how many of them are known to be on disk
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-sync")

    def committed(self) -> None:
        """Count one commit made with `synchronous=NORMAL`."""
        self._committed += 1

    def sync_now(self) -> None:
        """Make every commit so far durable before returning, on the caller's thread: what
        `synchronous=FULL` does inside a commit. Lines waiting in `wait` are released too."""
        target = self._committed
        self._sync()
        self._synced = max(self._synced, target)
        self._settle(target, None)

    async def wait(self) -> None:
        """Return once every commit counted so far is on disk; raises OSError if the disk
        refused (the commits may then be lost by a power cut, not by a crash)."""
        target = self._committed
        if self._synced >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wal-sync")
        await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(GATHER_S)  # only when the disk was idle: later rounds run at once
        while self._waiters:
            target = self._committed  # every commit counted now is in the WAL file already
            try:
                await loop.run_in_executor(self._thread, self._sync)
            except OSError as exc:
                log.error("store: fsync of %s failed: %s", self._wal, exc)
                self._settle(target, exc)
                continue
            self._synced = max(self._synced, target)
            self._settle(target, None)

    def _settle(self, target: int, error: OSError | None) -> None:
        while self._waiters and self._waiters[0][0] <= target:
            _, future = self._waiters.popleft()
            if future.done():  # its caller went away
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _sync(self) -> None:
        with self._lock:
            os.fdatasync(self._open())

    def _open(self) -> int:
        """The WAL file's descriptor, opened again if SQLite replaced the file."""
        try:
            current = os.stat(self._wal)
        except FileNotFoundError:
            # Checkpointed and removed: the commits are in the database file itself.
            self._close_fd()
            self._fd = os.open(self._database, os.O_RDONLY | os.O_CLOEXEC)
            return self._fd
        if self._fd is not None:
            opened = os.fstat(self._fd)
            if (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino):
                return self._fd
            self._close_fd()
        self._fd = os.open(self._wal, os.O_RDONLY | os.O_CLOEXEC)
        # A new file's name must survive a power cut too.
        directory = os.open(self._wal.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Stop the thread; waiters still pending get an error (their commits were not
        confirmed on disk)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._thread.shutdown(wait=True)
        with self._lock:
            self._close_fd()
        self._settle(self._committed, OSError("the store was closed before the fsync"))
