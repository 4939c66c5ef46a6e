"""Files in conversations: a visitor's upload checked and recorded as a timeline line, an
agent's file fetched from the messenger's own server, files served to whoever may have them.

Every file becomes an item of the timeline (`ItemKind.FILE`) through `Timeline.record`, so
it takes a `seq`, is deduplicated by `client_id` or event id, reaches the visitor's sockets
and (a visitor's) the room like any line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridge.backends.base import AgentFile, FileRefused, OutgoingFile
from bridge.blobs import Blobs, Received, TooLarge
from bridge.config_files import FilesConfig
from bridge.core.files import Kind, check_allowed, clean_name, sniff
from bridge.core.models import (
    Conversation,
    ConversationId,
    FileInfo,
    Item,
    ItemKind,
    Sender,
    Status,
)
from bridge.core.protocol import hash_token
from bridge.core.untrusted import ProtocolError
from bridge.timeline import Timeline

log = logging.getLogger(__name__)

HOUR_S = 3600.0
SECRET_KEY = "files.link_secret"
SWEEP_S = 3600.0


class FilesStore(Protocol):
    def conversation_by_token(self, token_hash: str) -> Conversation | None: ...

    def item_by_client_id(self, conversation_id: str, client_id: str) -> Item | None: ...

    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None: ...

    def file(self, file_id: str) -> tuple[ConversationId, FileInfo] | None: ...

    def visitor_files_since(self, conversation_id: str, since: float) -> int: ...

    def in_use(self, hashes: Iterable[str]) -> set[str]: ...


class Secrets(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, *, durable: bool = True) -> None: ...


Fetch = Callable[[str, int], AsyncIterator[bytes]]


@dataclass(frozen=True)
class Served:
    """A file to send back: its record and where its bytes are."""

    file: FileInfo
    path: Path


class Files:
    """Receives, records and serves the files of conversations."""

    def __init__(self, config: FilesConfig, public_url: str, blobs: Blobs, store: FilesStore,
                 secrets_kv: Secrets, timeline: Timeline, fetch: Fetch,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self._public_url = public_url
        self._blobs = blobs
        self._store = store
        self._kv = secrets_kv
        self._timeline = timeline
        self._fetch = fetch  # the backend's: agents' files from the messenger's own server
        self._clock = clock
        self._secret: bytes | None = None

    # -- a visitor's upload ----------------------------------------------------------------

    def conversation(self, token: str) -> Conversation | None:
        if not 0 < len(token) <= 128:
            return None
        return self._store.conversation_by_token(hash_token(token))

    def earlier_upload(self, conversation: Conversation, client_id: str) -> Item | None:
        """The item a retried upload made the first time, if it did."""
        return self._store.item_by_client_id(conversation.id, client_id)

    def refusal(self, conversation: Conversation, declared_size: int | None
                ) -> ProtocolError | None:
        """Why an upload is refused before its body is read, or None."""
        if conversation.status is Status.ENDED:
            return ProtocolError("ended", "this chat has ended")
        if declared_size is not None and declared_size > self.config.max_bytes:
            return self._too_large()
        if declared_size == 0:
            return ProtocolError("empty", "the file is empty")
        per_hour = self.config.per_hour
        if per_hour and self._store.visitor_files_since(
                conversation.id, self._clock() - HOUR_S) >= per_hour:
            return ProtocolError("rate_limited", f"at most {per_hour} files an hour in one chat")
        return None

    async def visitor_file(self, conversation: Conversation, client_id: str, raw_name: str,
                           chunks: AsyncIterator[bytes]) -> Item:
        """Store a visitor's file and record it as their line (durable when it returns).
        ProtocolError for a file too large, empty or of a kind not allowed."""
        kinds: list[Kind] = []

        def check(head: bytes) -> None:
            if not head:
                raise ProtocolError("empty", "the file is empty")
            kind = sniff(head)
            check_allowed(kind, self.config.types)
            kinds.append(kind)

        try:
            received = await self._blobs.receive(chunks, self.config.max_bytes, check)
        except TooLarge:
            raise self._too_large() from None
        file = await self._keep(received, kinds[0], raw_name)
        item, created = await self._timeline.record(
            conversation.id, ItemKind.FILE, Sender.VISITOR, conversation.visitor.name,
            file.name, self._clock(), client_id=client_id, file=file)
        log.info("conversation %s: visitor file seq %d, %s, %d bytes%s", conversation.id,
                 item.seq, file.mimetype, file.size, "" if created else " (a retry)")
        return item

    def _too_large(self) -> ProtocolError:
        return ProtocolError("too_large", f"files may be at most {self.config.max_bytes} bytes")

    async def _keep(self, received: Received, kind: Kind, raw_name: str) -> FileInfo:
        await self._blobs.keep(received)
        return FileInfo(id=secrets.token_hex(16), name=clean_name(raw_name, kind.mimetype),
                        mimetype=kind.mimetype, size=received.size, sha256=received.sha256,
                        width=kind.width, height=kind.height)

    # -- an agent's file -------------------------------------------------------------------

    async def agent_file(self, conversation: Conversation, event: AgentFile) -> FileInfo | None:
        """Fetch and store an agent's file; None when its event was stored before. Raises
        the backend's FileRefused (too large, gone) and BackendUnavailable."""
        if not self.config.enabled:
            raise FileRefused("files are switched off on this bridge")
        if self._store.item_by_event_id(conversation.id, event.event_id) is not None:
            return None
        try:
            received = await self._blobs.receive(
                self._fetch(event.url, self.config.max_bytes), self.config.max_bytes)
        except TooLarge:
            raise FileRefused(f"larger than {self.config.max_bytes} bytes") from None
        return await self._keep(received, sniff(received.head), event.name)

    # -- serving ---------------------------------------------------------------------------

    def served(self, file_id: str, *, token: str = "", key: str = "") -> Served | None:
        """The file, if the token is its conversation's or the key its link's."""
        found = self._store.file(file_id) if len(file_id) == 32 else None
        if found is None:
            return None
        conversation_id, file = found
        if key:
            allowed = hmac.compare_digest(key.encode("ascii", "replace"),
                                          self._link_key(file_id).encode())
        else:
            conversation = self.conversation(token)
            allowed = conversation is not None and conversation.id == conversation_id
        path = self._blobs.path(file.sha256)
        return Served(file, path) if allowed and path.is_file() else None

    def link(self, file_id: str) -> str:
        """A URL that serves the file without the conversation's token: for mailed
        transcripts and for messengers without an upload service."""
        return f"{self._public_url}/v1/files/{file_id}?key={self._link_key(file_id)}"

    def outgoing(self, item: Item) -> OutgoingFile | None:
        """What the backend posts for a visitor's file; None if its bytes are gone."""
        file = item.file
        if file is None:
            return None
        path = self._blobs.path(file.sha256)
        if not path.is_file():
            return None
        return OutgoingFile(name=file.name, mimetype=file.mimetype, size=file.size,
                            width=file.width, height=file.height, path=path,
                            link=self.link(file.id))

    def _link_key(self, file_id: str) -> str:
        digest = hmac.new(self._link_secret(), file_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def _link_secret(self) -> bytes:
        if self._secret is None:
            stored = self._kv.get(SECRET_KEY)
            if stored is None:
                stored = secrets.token_hex(32)
                self._kv.set(SECRET_KEY, stored)
            self._secret = bytes.fromhex(stored)
        return self._secret

    def sweep(self) -> int:
        """Remove stored contents nothing refers to any more, and unfinished uploads."""
        return self._blobs.sweep(self._store.in_use, self._clock())

    async def sweep_now_and_then(self) -> None:
        """At start (a crash's leftovers) and then every SWEEP_S."""
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("files: sweep failed; next one in %.0fs", SWEEP_S)
            await asyncio.sleep(SWEEP_S)
