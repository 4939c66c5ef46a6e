"""`livechat-bridge demo`: a private messenger server, the bridge, a demo shop page and a
mail sink, all on loopback. Matrix runs a private Synapse; XMPP runs a private Prosody.

The demo writes a real config file (`<state>/<backend>/config.toml`) and runs the bridge
from it, so `check -c` and `report -c` work on what the demo runs."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from bridge.app import Bridge
from bridge.backends.base import BackendError
from bridge.config import Config, ConfigError, load_config
from bridge.demo_config import demo_settings, write_config
from bridge.demo_mail import MAIL_PATH, MailSink
from bridge.demo_servers import STARTERS, DemoServer, credentials, installed
from bridge.signals import wait_for_signal
from bridge.startup import StartupError, check_listen_free
from bridge.web.app import HOME

log = logging.getLogger(__name__)

DEMO_LISTEN_HINT = "--listen HOST:PORT, or make demo LISTEN=HOST:PORT"
# The messenger libraries log every sync and stanza at INFO: the demo's console is for
# the bridge's own lines.
QUIET_LOGGERS = ("nio", "slixmpp", "mail.log")


async def run_demo(state: Path, listen: str, backend: str = "matrix") -> int:
    start_server = STARTERS[backend][0]
    if not installed(backend):
        print(f"The {backend} demo needs its server: {STARTERS[backend][1].INSTALL_HINT}")
        return 1
    host, _, port = listen.rpartition(":")
    try:
        # Before the slow server start: a busy port is said at once, with the way out.
        check_listen_free(host.strip("[]"), int(port), DEMO_LISTEN_HINT)
    except StartupError as exc:
        print(f"livechat-bridge demo: cannot start: {exc}", file=sys.stderr)
        return 1
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    state = (state / backend).resolve()
    print(f"Starting a private {backend} server…", flush=True)
    server = await asyncio.to_thread(start_server, state)
    sink = MailSink()
    try:
        await asyncio.to_thread(sink.start)
        return await _serve(state, listen, server, sink)
    finally:
        await asyncio.to_thread(sink.stop)
        await asyncio.to_thread(server.stop)


async def _serve(state: Path, listen: str, server: DemoServer, sink: MailSink) -> int:
    token = credentials(state)["admin_token"]
    path = write_config(state, demo_settings(state, listen, server, token, sink.smtp_table()))
    print(f"Demo config: {path}", flush=True)
    try:
        config = load_config(path)  # what `livechat-bridge check -c` reads
    except ConfigError as exc:
        print(f"{path}: {'; '.join(exc.problems)}", file=sys.stderr)
        return 1
    bridge = Bridge(config)
    bridge.app[HOME] = "/demo"
    sink.install(bridge.app)
    try:
        await bridge.start(DEMO_LISTEN_HINT)
    except (BackendError, StartupError) as exc:
        # A failed start has closed all it opened.
        print(f"livechat-bridge demo: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        print(banner(config, path, server, sink), flush=True)
        await wait_for_signal()
    finally:
        await bridge.stop()
    return 0


def banner(config: Config, path: Path, server: DemoServer, sink: MailSink) -> str:
    url = config.server.public_url
    token = config.server.admin_token
    return (
        "\nlivechat-bridge demo is running.\n"
        f"  Shop page with the widget  {url}/demo\n"
        f"  Mails the demo sent        {url}{MAIL_PATH}   (transcripts, tickets; SMTP sink "
        f"on 127.0.0.1:{sink.port})\n"
        f"  Stats page                 {url}/stats   admin token {token}\n"
        f"      (type the token into the page's form, or: curl -H 'Authorization: Bearer "
        f"{token}' {url}/stats)\n"
        f"  Config file                {path}\n"
        f"      (livechat-bridge check -c {path}; livechat-bridge report -c {path})\n"
        f"{server.login_help}"
        "  Agents: keep your client running and online. Presence decides who gets a chat:\n"
        "  offline, away or busy agents get none, and the visitor waits or leaves a message.\n"
        "  In a chat try  !c greeting   !transfer bob   !note TEXT   !end   (!help for all)\n"
        "Press Ctrl-C to stop.\n"
    )
