"""`livechat-bridge demo` as a user runs it: a real process with its real servers, driven
only through what its banner prints (config path, admin token, logins, URLs)."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from slixmpp import ClientXMPP

from bridge.devserver.ports import free_port
from tests.integration.helpers import Visitor

REPO_ROOT = Path(__file__).resolve().parents[2]
BANNER_END = "Press Ctrl-C to stop."
START_TIMEOUT = 60.0
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


@dataclass
class Demo:
    """A running demo process and its banner."""

    base_url: str
    banner: str
    stderr: Path

    def find(self, pattern: str) -> str:
        match = re.search(pattern, self.banner)
        assert match, f"{pattern!r} not in the banner:\n{self.banner}"
        return match.group(1)


@asynccontextmanager
async def running_demo(backend: str, tmp_path: Path) -> AsyncIterator[Demo]:
    """Start `python -m bridge demo` on a free port and a temporary state folder; stop it
    with SIGTERM (as Ctrl-C would) whatever the test does."""
    listen = f"127.0.0.1:{free_port()}"
    stderr = tmp_path / f"demo-{backend}.stderr"
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "demo", "--backend", backend, "--listen", listen,
            "--state", str(tmp_path / "state"), cwd=REPO_ROOT,
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        banner = await _read_banner(proc, stderr)
        yield Demo(f"http://{listen}", banner, stderr)
    finally:
        await _stop(proc)


async def _read_banner(proc: asyncio.subprocess.Process, stderr: Path) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while BANNER_END not in (line := (await proc.stdout.readline()).decode()):
                if not line:
                    raise AssertionError("the demo ended before its banner")
                lines.append(line)
    except (AssertionError, TimeoutError):
        pytest.fail(f"no banner: {''.join(lines)}\n{_text(stderr)}")
    return "".join(lines)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- Matrix: config file, stats, mail page, `/` -----------------------------------------------


@pytest.mark.usefixtures("require_synapse")
async def test_the_matrix_demo_shows_the_whole_product(tmp_path: Path) -> None:
    async with running_demo("matrix", tmp_path) as demo, aiohttp.ClientSession() as http:
        config = Path(demo.find(r"Config file\s+(\S+)"))
        assert config == (tmp_path / "state" / "matrix" / "config.toml").resolve()
        assert "2 agents" in await asyncio.to_thread(_check, config)
        text = _text(config)
        assert "[canned]" in text and "greeting = " in text and "helpdesk_email" in text
        assert "@bob:localhost" in demo.banner  # the second agent's login, for !transfer

        token = demo.find(r"admin token (\S+)")
        stats = await http.get(f"{demo.base_url}/stats",
                               headers={"Authorization": f"Bearer {token}"})
        assert stats.status == 200
        form = await http.post(f"{demo.base_url}/stats", data={"token": token})
        assert form.status == 200

        home = await http.get(f"{demo.base_url}/", allow_redirects=False)
        assert (home.status, home.headers["Location"]) == (302, "/demo")

        await _transcript_reaches_the_mail_page(demo, http)
    # The console is the bridge's: not the Matrix library's line per sync.
    assert " INFO nio" not in _text(demo.stderr)


def _check(config: Path) -> str:
    """`livechat-bridge check -c` as an admin runs it; its output, after asserting it passed."""
    check = subprocess.run([sys.executable, "-m", "bridge", "check", "-c", str(config)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
                           check=False)
    assert check.returncode == 0, check.stderr
    return check.stdout


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


async def _transcript_reaches_the_mail_page(demo: Demo, http: aiohttp.ClientSession) -> None:
    mail_page = demo.find(r"Mails the demo sent\s+(\S+)")
    visitor = await Visitor(demo.base_url).connect()
    try:
        await visitor.start(name="Mira", email="mira@example.org")
        await visitor.say("Where is my parcel?")
        await visitor.send({"type": "transcript"})
        assert (await visitor.wait("transcript"))["sent"] is True
    finally:
        await visitor.close()
    deadline = time.monotonic() + 10
    while "mira@example.org" not in (page := await (await http.get(mail_page)).text()):
        assert time.monotonic() < deadline, page
        await asyncio.sleep(0.1)
    assert "Where is my parcel?" in page


async def test_root_names_the_widget_tag_outside_the_demo(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge()
    async with aiohttp.ClientSession() as http:
        page = await (await http.get(f"{bridge.base_url}/", allow_redirects=False)).text()
    url = bridge.config.server.public_url
    assert f"&lt;script src=&quot;{url}/widget.js&quot; async&gt;&lt;/script&gt;" in page


# -- XMPP: WebSocket and TLS logins as the printed agent ----------------------------------------


@pytest.mark.usefixtures("require_prosody")
async def test_the_xmpp_demo_lets_agents_log_in_over_websocket_and_tls(tmp_path: Path) -> None:
    async with running_demo("xmpp", tmp_path) as demo:
        jid = demo.find(r"Alice\s+JID (\S+)")
        password = demo.find(r"Alice\s+JID \S+\s+password (\S+)")
        assert await websocket_login(demo.find(r"websocket_url: '(\S+)'"), jid, password) == (
            f"{jid}/demo-test")
        port = int(demo.find(r"port (\d+) \(STARTTLS\)"))
        cert = demo.find(r"or trust (\S+)\)")
        await tls_login(jid, password, port, cert)


async def websocket_login(url: str, jid: str, password: str) -> str:
    """RFC 7395: open, SASL PLAIN, open again, bind; return the bound full JID."""
    local, _, domain = jid.partition("@")
    opening = f'<open xmlns="{FRAMING}" to="{domain}" version="1.0"/>'
    plain = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("xmpp",)) as ws:
        assert ws.protocol == "xmpp"
        await ws.send_str(opening)
        assert "PLAIN" in await _until(ws, "</stream:features>")
        await ws.send_str('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" '
                          f'mechanism="PLAIN">{plain}</auth>')
        await _until(ws, "<success")
        await ws.send_str(opening)
        await _until(ws, "urn:ietf:params:xml:ns:xmpp-bind")
        await ws.send_str('<iq type="set" id="bind1" xmlns="jabber:client"><bind '
                          'xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>demo-test'
                          "</resource></bind></iq>")
        bound = await _until(ws, "</jid>")
        await ws.send_str(f'<close xmlns="{FRAMING}"/>')
    match = re.search(r"<jid>([^<]+)</jid>", bound)
    assert match, bound
    return match.group(1)


async def _until(ws: aiohttp.ClientWebSocketResponse, marker: str) -> str:
    """Frames up to the one holding `marker` (a failure or a closed socket fails)."""
    seen = ""
    async with asyncio.timeout(10):
        while marker not in seen:
            message = await ws.receive()
            assert message.type is aiohttp.WSMsgType.TEXT, (message, seen)
            assert "<failure" not in message.data, message.data
            seen += message.data
    return seen


async def tls_login(jid: str, password: str, port: int, cert: str) -> None:
    """A c2s login with STARTTLS that verifies the server against the printed certificate
    only (not the system's trust store)."""
    client = ClientXMPP(f"{jid}/tls-test", password)
    client.ca_certs = cert
    client.enable_direct_tls = False
    started = asyncio.get_running_loop().create_future()
    secured: list[bool] = []
    client.add_event_handler("tls_success", lambda _: secured.append(True))
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(1))
    for event in ("failed_auth", "connection_failed", "ssl_invalid_chain"):
        client.add_event_handler(
            event, lambda e, event=event: started.done() or started.set_exception(
                AssertionError(f"{event}: {e}")))
    try:
        client.connect(host="127.0.0.1", port=port)
        await asyncio.wait_for(started, 15)
        assert secured == [True]
    finally:
        client.disconnect()
        await asyncio.sleep(0.1)
