"""Files on XMPP without a server: which URLs are the upload service's, file names from
URLs, upload slots and service descriptions read from stanzas, OOB lines in and out, and
a download that stops at its cap whatever the HTTP server announces."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    BackendUnavailable,
    FileRefused,
    RateLimited,
)
from bridge.backends.xmpp.archive import archived_line
from bridge.backends.xmpp.files import PREFIX_KEY, SERVICE_KEY, fetch_capped
from bridge.backends.xmpp.oob import (
    download_prefix,
    http_address,
    max_file_size,
    name_from_url,
    offers_upload,
    oob_element,
    oob_url,
    parse_slot,
    service_prefix,
    slot_request,
    under_prefix,
)
from bridge.backends.xmpp.stanzas import group_line, line_head
from bridge.devserver.ports import free_port
from tests.unit.test_xmpp_stanzas import ROOM, Wired, line, wired  # noqa: F401 (a fixture)

PREFIX = "https://upload.example.com/file_share/"
FILE_URL = f"{PREFIX}slot1/sh%C3%B6n%20bild.png"


# -- which URLs are the upload service's -------------------------------------------------

@pytest.mark.parametrize(("url", "inside"), [
    (FILE_URL, True),
    ("https://upload.example.com:443/file_share/a/b.png", True),  # the default port, spelt
    ("HTTPS://Upload.Example.COM/file_share/a/b.png", True),  # scheme and host any case
    ("https://upload.example.com/file_share/", True),
    ("https://upload.example.com/file_share", False),  # the directory itself, not in it
    ("https://upload.example.com/file_shared/a/b.png", False),  # a sibling path
    ("https://upload.example.com/other/a.png", False),
    ("http://upload.example.com/file_share/a/b.png", False),  # no downgrade to http
    ("https://upload.example.com:8443/file_share/a/b.png", False),
    ("https://upload.example.com.evil.org/file_share/a/b.png", False),
    ("https://evil.org/file_share/a/b.png", False),
    ("https://upload.example.com@evil.org/file_share/a.png", False),  # user info
    ("https://x@upload.example.com/file_share/a.png", False),
    ("https://upload.example.com/file_share/../admin", False),  # walks up
    ("https://upload.example.com/file_share/%2e%2e/admin", False),
    ("https://upload.example.com/file_share/%2E./admin", False),
    ("https://upload.example.com/file_share/a\\..\\..\\b", False),
    ("https://upload.example.com/file_share/a b.png", False),  # raw whitespace
    ("https://upload.example.com:99999/file_share/a.png", False),  # no such port
    ("ftp://upload.example.com/file_share/a.png", False),
    ("aesgcm://upload.example.com/file_share/a.png#key", False),  # OMEMO: not ours to read
    ("file:///etc/passwd", False),
    ("/file_share/a.png", False),
    ("", False),
])
def test_under_prefix(url: str, inside: bool) -> None:
    assert under_prefix(url, PREFIX) is inside


def test_a_prefix_without_a_slash_is_a_directory() -> None:
    assert under_prefix("https://h.example/files/a.png", "https://h.example/files")
    assert not under_prefix("https://h.example/filesystem/a.png", "https://h.example/files")
    assert under_prefix("https://h.example/a.png", "https://h.example")
    assert not under_prefix("https://h.example/a.png", "not a url")


def test_http_address_keeps_what_a_prefix_is_matched_on() -> None:
    address = http_address("http://127.0.0.1:5280/file_share/x/y.png")
    assert address is not None
    assert (address.scheme, address.host, address.port, address.path) == (
        "http", "127.0.0.1", 5280, "/file_share/x/y.png")
    assert http_address("https://[::1]/a") is not None
    assert http_address("https://") is None


@pytest.mark.parametrize(("get_url", "prefix"), [
    ("http://127.0.0.1:5280/file_share/slot/name.png", "http://127.0.0.1:5280/file_share/"),
    ("https://up.example.org/upload/3f2a/slot/name.png", "https://up.example.org/upload/"),
    ("https://up.example.org/slot/name.png", "https://up.example.org/"),
    ("https://up.example.org/name.png", "https://up.example.org/"),
    ("https://Up.Example.org:443/f/s/n", "https://up.example.org:443/f/"),
    ("ftp://up.example.org/f/s/n", None),
    ("https://up.example.org/f/../s/n", None),
])
def test_download_prefix_from_a_slot(get_url: str, prefix: str | None) -> None:
    assert download_prefix(get_url) == prefix
    if prefix is not None:
        assert under_prefix(get_url, prefix)


def test_service_prefix() -> None:
    assert service_prefix("Upload.Example.com") == "https://upload.example.com/"


@pytest.mark.parametrize(("url", "name"), [
    (FILE_URL, "shön bild.png"),
    ("https://h/a/b/report.pdf?x=1#frag", "report.pdf"),
    ("https://h/a/b/dir/", "dir"),
    ("https://h/a/%2F..%2Fpasswd", "/../passwd"),  # decoded as is: the hub cleans names
    ("https://h/", "file"),
    ("https://h", "file"),
])
def test_name_from_url(url: str, name: str) -> None:
    assert name_from_url(url) == name


# -- stanzas -----------------------------------------------------------------------------

def test_an_oob_line_written_by_the_fast_path_reads_back() -> None:
    url = "https://up.example.com/f/s/a&b<c>.png"
    stanza = group_line(line_head(ROOM, None), "k1", url, url)
    xml = ET.fromstring(stanza.replace("<message ", '<message xmlns="jabber:client" ', 1))
    assert oob_url(xml) == url
    assert xml.findtext("{jabber:client}body") == url
    assert xml.find("{urn:xmpp:sid:0}origin-id") is not None
    assert group_line("<m id=\"", "k", "t") == group_line("<m id=\"", "k", "t", None)


def test_oob_element_and_url() -> None:
    message = ET.Element("{jabber:client}message")
    assert oob_url(message) is None
    message.append(oob_element(" https://h/a.png "))
    assert oob_url(message) == "https://h/a.png"


def test_slot_request() -> None:
    request = slot_request("a b.png", 123, "image/png")
    assert request.tag == "{urn:xmpp:http:upload:0}request"
    assert request.attrib == {"filename": "a b.png", "size": "123", "content-type": "image/png"}
    assert slot_request("", 1, "text/plain").get("filename") == "file"


SLOT = """<iq xmlns="jabber:client" type="result">
<slot xmlns="urn:xmpp:http:upload:0">
  <put url="{put}">
    <header name="Authorization">Bearer abc</header>
    <header name="Cookie">c=1</header>
    <header name="Expires">Tue, 01 Jan 2030 00:00:00 GMT</header>
    <header name="X-Other">dropped</header>
    <header name="Host">evil.org</header>
  </put>
  <get url="{get}"/>
</slot></iq>"""


def test_a_slot_passes_on_only_the_allowed_headers() -> None:
    slot = parse_slot(ET.fromstring(SLOT.format(put="https://h/p/1", get="https://h/g/1")))
    assert slot is not None
    assert (slot.put_url, slot.get_url) == ("https://h/p/1", "https://h/g/1")
    assert slot.headers == (("Authorization", "Bearer abc"), ("Cookie", "c=1"),
                            ("Expires", "Tue, 01 Jan 2030 00:00:00 GMT"))


@pytest.mark.parametrize(("put", "get"), [
    ("ftp://h/p", "https://h/g"), ("https://h/p", "javascript:alert(1)"), ("", "https://h/g"),
])
def test_an_unusable_slot_is_none(put: str, get: str) -> None:
    assert parse_slot(ET.fromstring(SLOT.format(put=put, get=get))) is None
    assert parse_slot(ET.fromstring('<iq xmlns="jabber:client" type="result"/>')) is None


def disco_info(features: list[str], form: dict[str, str] | None) -> ET.Element:
    fields = "".join(f'<field var="{var}"><value>{value}</value></field>'
                     for var, value in (form or {}).items())
    x = f'<x xmlns="jabber:x:data" type="result">{fields}</x>' if form is not None else ""
    return ET.fromstring(
        '<iq xmlns="jabber:client" type="result">'
        '<query xmlns="http://jabber.org/protocol/disco#info">'
        '<identity category="store" type="file"/>'
        + "".join(f'<feature var="{var}"/>' for var in features) + x + "</query></iq>")


def test_an_upload_service_and_its_limit() -> None:
    upload = "urn:xmpp:http:upload:0"
    info = disco_info([upload], {"FORM_TYPE": upload, "max-file-size": "67108864"})
    assert offers_upload(info) and max_file_size(info) == 67108864
    assert max_file_size(disco_info([upload], None)) is None
    assert max_file_size(disco_info([upload], {"FORM_TYPE": upload, "max-file-size": "x"})) \
        is None
    other = disco_info(["http://jabber.org/protocol/muc"], {"FORM_TYPE": "other",
                                                          "max-file-size": "5"})
    assert not offers_upload(other) and max_file_size(other) is None


# -- an agent's OOB line, through the fast path and through slixmpp -----------------------

def oob_line(text: str, url: str) -> str:
    return line(text, extra=f'<x xmlns="jabber:x:oob"><url>{url}</url></x>')


def learn(backend: Wired, prefix: str | None = PREFIX, service: str | None = None) -> None:
    state = backend.backend._files._state
    if prefix is not None:
        state.set(PREFIX_KEY, prefix)
    if service is not None:
        state.set(SERVICE_KEY, service)


async def test_an_oob_line_on_the_upload_service_is_a_file(wired: Wired) -> None:  # noqa: F811
    learn(wired)
    wired.feed(oob_line(FILE_URL, FILE_URL))
    [event] = wired.events()
    assert dataclasses.replace(event, ts=0.0) == AgentFile(
        room=ROOM, sender="alice@example.com", sender_name="Alice", name="shön bild.png",
        url=FILE_URL, mimetype="", size=None, event_id=f"sid-{FILE_URL}", ts=0.0)
    wired.took(1)


async def test_an_oob_line_elsewhere_stays_text(wired: Wired) -> None:  # noqa: F811
    learn(wired)
    elsewhere = "https://evil.org/file_share/s/a.png"
    wired.feed(oob_line(elsewhere, elsewhere))
    [event] = wired.events()
    assert isinstance(event, AgentMessage) and event.text == elsewhere


async def test_without_a_known_service_every_url_stays_text(wired: Wired) -> None:  # noqa: F811
    wired.feed(oob_line(FILE_URL, FILE_URL))
    [event] = wired.events()
    assert isinstance(event, AgentMessage)


async def test_the_service_domain_alone_allows_its_https_root(wired: Wired) -> None:  # noqa: F811
    learn(wired, prefix=None, service="upload.example.com")
    wired.feed(oob_line(FILE_URL, FILE_URL))
    [event] = wired.events()
    assert isinstance(event, AgentFile)


async def test_the_configured_prefix_wins(wired: Wired) -> None:  # noqa: F811
    learn(wired)
    files = wired.backend._files
    files._config = dataclasses.replace(files._config, upload_url="https://cdn.example.com/x/")
    wired.feed(oob_line(FILE_URL, FILE_URL))
    wired.feed(oob_line("cdn", "https://cdn.example.com/x/s/doc.pdf"))
    first, second = wired.events()
    assert isinstance(first, AgentMessage)
    assert isinstance(second, AgentFile) and second.name == "doc.pdf"


async def test_an_archived_oob_line_is_the_same_file(wired: Wired) -> None:  # noqa: F811
    learn(wired)
    live = oob_line(FILE_URL, FILE_URL)
    wired.feed(live)
    archived = archived_line(ET.fromstring(
        f'<message xmlns="jabber:client" from="{ROOM}"><result xmlns="urn:xmpp:mam:2" '
        f'queryid="q" id="sid-{FILE_URL}"><forwarded xmlns="urn:xmpp:forward:0">'
        f"{live}</forwarded></result></message>"))
    assert archived is not None
    receiver = wired.backend._receiver
    receiver.archived_line(ROOM, receiver.rooms[ROOM], archived)
    first, second = wired.events()
    assert isinstance(first, AgentFile)
    assert dataclasses.replace(second, ts=first.ts) == first


# -- a download stops at its cap -----------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A loopback HTTP server answering every path with the handler a test gives."""
    runners: list[web.AppRunner] = []

    async def serve(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/f/"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def collect(url: str, max_bytes: int) -> bytes:
    async with aiohttp.ClientSession() as session:
        return b"".join([chunk async for chunk in fetch_capped(session, url, max_bytes)])


async def test_a_stream_without_a_length_stops_at_the_cap(http_server) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(10_000):  # 640 MB, if anyone read it all
                await response.write(b"x" * 65536)
                sent += 65536
        except ConnectionError:
            pass  # the bridge hung up
        return response

    base = await http_server(endless)
    with pytest.raises(FileRefused, match="larger than 100000"):
        await collect(base + "big", 100_000)
    # Long before the end: what the loopback socket's buffers took meanwhile, at most.
    assert sent < 32 * 2**20


async def test_an_announced_length_over_the_cap_is_refused_before_reading(http_server
                                                                          ) -> None:
    release = asyncio.Event()

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000000"})
        await response.prepare(request)
        await release.wait()  # the body never comes while the bridge waits
        return response

    base = await http_server(large)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(FileRefused, match="5000000 bytes"):
                await collect(base + "big", 1_000_000)
    finally:
        release.set()


async def test_exactly_the_cap_passes(http_server) -> None:
    async def exact(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"y" * 1000)

    assert await collect(await http_server(exact) + "a", 1000) == b"y" * 1000


@pytest.mark.parametrize(("status", "error"), [
    (404, FileRefused), (410, FileRefused), (403, FileRefused), (401, FileRefused),
    (302, FileRefused), (500, BackendUnavailable), (503, BackendUnavailable),
    (429, RateLimited),
])
async def test_answers_that_are_no_file(http_server, status: int, error: type) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": "http://169.254.169.254/",
                                                    "Retry-After": "7"})

    with pytest.raises(error) as info:
        await collect(await http_server(answer) + "a", 1000)
    if status == 429:
        assert isinstance(info.value, RateLimited) and info.value.retry_after == 7.0


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable):
        await collect(f"http://127.0.0.1:{free_port()}/f/a", 1000)
