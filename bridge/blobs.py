"""Files' bytes on disk, content-addressed: `files/ab/abcdef…` named by their SHA-256.

A file arrives in `files/tmp/` while it is hashed and counted, is synced, and only then
renamed to its name, so a name always holds the whole content. The database row that refers
to it is written after the rename; a crash in between leaves a file no row refers to, which
`sweep` deletes once it is older than `GRACE_S`, like an upload that never finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bridge.core.files import HEAD_BYTES

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# Older than this, a file no row refers to is an upload that failed or a crash's leftover.
GRACE_S = 3600.0
_HEX = frozenset("0123456789abcdef")


class TooLarge(Exception):
    """More bytes arrived than allowed; reading stopped there."""


@dataclass
class Received:
    """A file written to the waiting area, not yet under its name."""

    temp: Path
    sha256: str
    size: int
    head: bytes  # the first HEAD_BYTES, for finding the type


class Blobs:
    """The content-addressed files of one bridge."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._temp = root / "tmp"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def receive(self, chunks: AsyncIterator[bytes], max_bytes: int,
                      check_head: Callable[[bytes], None] | None = None) -> Received:
        """Write `chunks` to the waiting area; TooLarge once more than `max_bytes` came.
        `check_head` sees the first HEAD_BYTES (or the whole of a smaller file) as soon as
        they are in and may raise to stop at once. On any error nothing is left behind."""
        self._temp.mkdir(parents=True, exist_ok=True)
        temp = self._temp / f"{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        head = bytearray()
        size = 0
        check = check_head or _accept
        head_checked = False
        try:
            with temp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"more than {max_bytes} bytes")
                    if len(head) < HEAD_BYTES:
                        head += chunk[:HEAD_BYTES - len(head)]
                    if not head_checked and len(head) >= HEAD_BYTES:
                        check(bytes(head))
                        head_checked = True
                    digest.update(chunk)
                    out.write(chunk)
                if not head_checked:
                    check(bytes(head))
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return Received(temp, digest.hexdigest(), size, bytes(head))

    async def keep(self, received: Received) -> Path:
        """Move a received file under its name (atomically; an existing copy of the same
        content is kept and the new one dropped) and make the rename durable."""
        target = self.path(received.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.utime(target)  # already there: a sweep or purge now must not take it
        except FileNotFoundError:
            os.replace(received.temp, target)  # new, or deleted just now: ours takes its place
        else:
            received.temp.unlink(missing_ok=True)
            return target
        await asyncio.to_thread(_sync_dir, target.parent)
        return target

    def discard(self, received: Received) -> None:
        received.temp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def sweep(self, in_use: Callable[[Iterable[str]], set[str]],
              now: float | None = None) -> int:
        """Delete files no row refers to (`in_use` answers which of some names are referred
        to) and unfinished uploads, both once older than GRACE_S. Returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff = (time.time() if now is None else now) - GRACE_S
        removed = sum(_remove_if_older(path, cutoff) for path in self._temp.glob("*.part"))
        old = {path.name: path for path in self.root.glob("??/*")
               if _is_name(path.name) and _older(path, cutoff)}
        if old:
            used = in_use(old)
            removed += sum(_remove_if_older(path, cutoff) for name, path in old.items()
                           if name not in used)
        if removed:
            log.info("files: %d unreferenced or unfinished files removed", removed)
        return removed


def _accept(head: bytes) -> None:
    pass


def _is_name(name: str) -> bool:
    return len(name) == 64 and set(name) <= _HEX


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove_if_older(path: Path, cutoff: float) -> bool:
    if not _older(path, cutoff):
        return False
    path.unlink(missing_ok=True)
    return True


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def read_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    """The first `size` bytes of a stored file in CHUNK-sized pieces, read off the event
    loop (what a backend uploads; `size` is what it declared as Content-Length)."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        left = size
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} is shorter than {size} bytes")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()
