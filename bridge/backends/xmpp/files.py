"""Files both ways on XMPP: a visitor's file uploaded through the server's HTTP upload
service (XEP-0363), and an agent's file fetched from it.

Out: the upload service is found once a session (disco#items of the bot's domain, the item
offering `urn:xmpp:http:upload:0`), a slot is asked for, the file is PUT from disk in
chunks, and the slot's GET URL is what the backend posts (with an OOB element, oob.py). A
server without an upload service, a file over its limit or a slot refused for good gets
the bridge's own link to the file instead. The URL is remembered per outbox key, so a
retry posts the same URL without uploading again.

In: an agent's URL is fetched only when it lies under the upload service's download
prefix: `[xmpp] upload_url` when set, else the prefix the bot's own slots showed, else
`https://<upload service>/`. Redirects are not followed; the size cap is checked on the
announced length and again on every chunk.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from bridge.backends.base import (
    BackendError,
    BackendState,
    BackendUnavailable,
    FileRefused,
    OutgoingFile,
    RateLimited,
)
from bridge.backends.xmpp.connection import Connection
from bridge.backends.xmpp.oob import (
    Slot,
    download_prefix,
    http_address,
    max_file_size,
    offers_upload,
    parse_slot,
    service_prefix,
    slot_request,
    under_prefix,
)
from bridge.blobs import read_chunks
from bridge.config import XmppConfig
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

DISCO_TIMEOUT_S = 10.0
SLOT_TIMEOUT_S = 15.0
CHUNK_BYTES = 64 * 1024
# A stalled upload or download ends after this long without a byte.
HTTP_CONNECT_TIMEOUT_S = 10.0
HTTP_READ_TIMEOUT_S = 30.0
# A download that keeps trickling ends after this long in all (an upload has no total:
# a large file on a slow line may take long, but it never stalls).
FETCH_TOTAL_S = 300.0
RATE_LIMIT_PAUSE_S = 5.0
# BackendState keys: what the bot learned of its upload service (a restart knows it at
# once, before any archive is read), and the URL posted for each outbox key.
PREFIX_KEY = "upload-service:prefix"
SERVICE_KEY = "upload-service:jid"
GONE = {403, 404, 410}


def upload_key(key: str) -> str:
    return f"upload:{key}"


@dataclass(frozen=True)
class UploadService:
    jid: str
    max_size: int | None  # bytes; None when the service names no limit


class MemoryState:
    """A BackendState that forgets on restart (for a backend built without a store)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str, *, durable: bool = True) -> None:
        self._values[key] = value


class Files:
    """The bot's uploads and the downloads of agents' files."""

    def __init__(self, link: Connection, state: BackendState, config: XmppConfig,
                 tasks: TaskGroup) -> None:
        self._link = link
        self._state = state
        self._config = config
        self._tasks = tasks
        self._domain = JID(config.jid).domain
        self._service: UploadService | None = None
        self._found_in_session = 0  # the session the service was last looked for in
        self._discovering = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the upload service --------------------------------------------------------------

    def session_started(self) -> None:
        """Look for the upload service early, so agents' files are known as such."""
        self._tasks.spawn(self._discover_quietly(), name="xmpp-upload-service")

    async def _discover_quietly(self) -> None:
        try:
            await self.service()
        except BackendError as exc:
            log.warning("xmpp: looking for the upload service failed (%s)", exc)

    async def service(self) -> UploadService | None:
        """The server's upload service, looked for once a session; None without one."""
        async with self._discovering:
            session = self._link.session_number
            if self._found_in_session != session:
                self._service = await self._discover()
                self._found_in_session = session
                if self._service is not None and \
                        self._state.get(SERVICE_KEY) != self._service.jid:
                    self._state.set(SERVICE_KEY, self._service.jid)
            return self._service

    async def _discover(self) -> UploadService | None:
        disco = self._link.client.plugin["xep_0030"]
        try:
            items = await disco.get_items(jid=JID(self._domain), timeout=DISCO_TIMEOUT_S)
        except IqTimeout:
            raise BackendUnavailable(f"xmpp: {self._domain} did not answer disco") from None
        except IqError as exc:
            log.info("xmpp: %s lists no services (%s)", self._domain, exc.condition)
            return None
        for item_jid, _node, _name in items["disco_items"]["items"]:
            try:
                info = await disco.get_info(jid=JID(item_jid), timeout=DISCO_TIMEOUT_S)
            except (IqError, IqTimeout) as exc:  # one silent component hides no other
                log.info("xmpp: %s did not describe itself (%s)", item_jid, exc.condition)
                continue
            if offers_upload(info.xml):
                service = UploadService(str(item_jid), max_file_size(info.xml))
                log.info("xmpp: upload service %s (files up to %s bytes)",
                         service.jid, service.max_size)
                return service
        log.info("xmpp: %s has no upload service: files go as the bridge's links",
                 self._domain)
        return None

    # -- which addresses are the upload service's --------------------------------------

    def download_prefix(self) -> str | None:
        """Where the upload service's files are downloaded from, as far as known."""
        if self._config.upload_url:
            return self._config.upload_url
        learned = self._state.get(PREFIX_KEY)
        if learned:
            return learned
        service = self._service.jid if self._service is not None else \
            self._state.get(SERVICE_KEY)
        return service_prefix(service) if service else None

    def is_upload_url(self, url: str) -> bool:
        """Whether an agent's URL is a file of the upload service (fetched and passed on
        to the visitor) rather than any other link (passed on as text)."""
        prefix = self.download_prefix()
        return prefix is not None and under_prefix(url, prefix)

    # -- out: a visitor's file -----------------------------------------------------------

    async def url_for(self, room: str, file: OutgoingFile, key: str) -> str:
        """The URL to post for a visitor's file: uploaded (once per key), or the bridge's
        link when the server takes no upload of it."""
        remembered = self._state.get(upload_key(key))
        if remembered:
            return remembered
        url = await self._upload(room, file) or file.link
        self._state.set(upload_key(key), url, durable=False)
        return url

    async def _upload(self, room: str, file: OutgoingFile) -> str | None:
        """The GET URL of the uploaded file; None when the server takes no upload of it."""
        service = await self.service()
        if service is None:
            return None
        if service.max_size is not None and file.size > service.max_size:
            log.info("xmpp: %s: %d bytes is over the upload limit of %s (%d); sending a link",
                     room, file.size, service.jid, service.max_size)
            return None
        slot = await self._request_slot(room, service, file)
        if slot is None or not await self._put(room, slot, file):
            return None
        prefix = download_prefix(slot.get_url)
        if prefix is not None and self._state.get(PREFIX_KEY) != prefix:
            self._state.set(PREFIX_KEY, prefix)
        log.info("xmpp: %s: uploaded %d bytes to %s", room, file.size, service.jid)
        return slot.get_url

    async def _request_slot(self, room: str, service: UploadService,
                            file: OutgoingFile) -> Slot | None:
        iq = self._link.client.make_iq_get(ito=JID(service.jid))
        iq.append(slot_request(file.name, file.size, file.mimetype))
        try:
            answer = await iq.send(timeout=SLOT_TIMEOUT_S)
        except IqTimeout:
            raise BackendUnavailable(f"xmpp: {service.jid} gave no upload slot") from None
        except IqError as exc:
            if exc.etype == "wait":  # a quota or a busy server: later may work
                raise BackendUnavailable(f"xmpp: {service.jid}: {exc.condition}") from None
            log.warning("xmpp: %s: %s refused an upload slot (%s); sending a link",
                        room, service.jid, exc.condition)
            return None
        slot = parse_slot(answer.xml)
        if slot is None:
            log.warning("xmpp: %s: %s gave an unusable slot; sending a link", room,
                        service.jid)
        return slot

    async def _put(self, room: str, slot: Slot, file: OutgoingFile) -> bool:
        """PUT the file from disk in chunks; False when the service refuses it for good."""
        try:
            stored = await asyncio.to_thread(file.path.stat)
        except OSError as exc:
            raise BackendError(f"xmpp: cannot read {file.path}: {exc}") from None
        if stored.st_size < file.size:
            raise BackendError(f"xmpp: {file.path} is shorter than {file.size} bytes")
        headers = dict(slot.headers)
        headers.update({"Content-Type": file.mimetype, "Content-Length": str(file.size)})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=HTTP_CONNECT_TIMEOUT_S,
                                        sock_read=HTTP_READ_TIMEOUT_S)
        try:
            async with self._session().put(slot.put_url, data=read_chunks(file.path, file.size),
                                           headers=headers, allow_redirects=False,
                                           timeout=timeout) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"xmpp: uploading failed: {exc!r}") from None
        if status in (200, 201):
            return True
        if status == 429:
            raise RateLimited(_retry_after(retry_after))
        if status >= 500:
            raise BackendUnavailable(f"xmpp: the upload service answered {status}")
        log.warning("xmpp: %s: the upload service refused the file (%d); sending a link",
                    room, status)
        return False

    # -- in: an agent's file -------------------------------------------------------------

    async def fetch(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The file's bytes in chunks (see `Backend.fetch_file`)."""
        if http_address(url) is None or not self.is_upload_url(url):
            raise FileRefused(f"xmpp: {url!r} is not an address of the upload service")
        async for chunk in fetch_capped(self._session(), url, max_bytes):
            yield chunk

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl()),
                trust_env=False,  # no proxy from the environment: only the hosts checked
            )
        return self._http

    def _ssl(self) -> ssl.SSLContext:
        """The XMPP connection's trust for the upload service's https too."""
        context = ssl.create_default_context(
            cafile=str(self._config.ca_file) if self._config.ca_file else None)
        if not self._config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


async def fetch_capped(session: aiohttp.ClientSession, url: str,
                       max_bytes: int) -> AsyncIterator[bytes]:
    """GET `url` without following redirects, in chunks, refusing it as soon as it is
    more than `max_bytes`: by its Content-Length before reading, else once read."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TOTAL_S, sock_connect=HTTP_CONNECT_TIMEOUT_S,
                                    sock_read=HTTP_READ_TIMEOUT_S)
    try:
        async with session.get(url, allow_redirects=False, timeout=timeout) as response:
            _check_answer(url, response, max_bytes)
            received = 0
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise FileRefused(f"xmpp: {url} is larger than {max_bytes} bytes")
                yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BackendUnavailable(f"xmpp: fetching {url} failed: {exc!r}") from None


def _check_answer(url: str, response: aiohttp.ClientResponse, max_bytes: int) -> None:
    status = response.status
    if status in GONE:
        raise FileRefused(f"xmpp: {url} is gone ({status})")
    if status == 429:
        raise RateLimited(_retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        raise BackendUnavailable(f"xmpp: {url} answered {status}")
    if status != 200:  # a redirect (never followed), or a refusal
        raise FileRefused(f"xmpp: {url} answered {status}")
    if response.content_length is not None and response.content_length > max_bytes:
        raise FileRefused(f"xmpp: {url} is {response.content_length} bytes, "
                          f"more than {max_bytes}")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else RATE_LIMIT_PAUSE_S
    except ValueError:
        return RATE_LIMIT_PAUSE_S

