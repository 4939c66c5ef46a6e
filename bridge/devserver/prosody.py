"""Run a private Prosody XMPP server in a child process.

Used by the ``demo`` command and the XMPP tests, like ``bridge.devserver.synapse`` is
for Matrix. Everything lives under one data directory (Lua config, account and room
storage, self-signed certificate, logs, pid file, admin socket), so a demo can be
stopped and restarted on the same data.

The API is synchronous on purpose: callers run it from pytest fixtures or threads.
Prosody itself is Debian's package (``prosody`` plus ``lua-unbound``); only the
standard library is imported here.

The server listens for clients on 127.0.0.1 only, with no server-to-server or
direct-TLS ports. Without ``tls`` it offers no STARTTLS at all and accepts SCRAM over
plain TCP; with ``tls`` it requires STARTTLS with a self-signed certificate whose path
is ``ProsodyServer.ca_file``. With ``web`` (off by default) it also serves WebSocket and
BOSH on an HTTP port of its own (``ProsodyServer.websocket_url``, ``bosh_url``). With
``upload`` (on by default) the same HTTP port serves an HTTP file upload service (XEP-0363,
mod_http_file_share) announced as ``upload.<domain>``, whose files are downloaded under
``ProsodyServer.upload_url``; ``upload=False`` is a server without one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bridge.devserver.managed import ManagedServer
from bridge.devserver.ports import free_port
from bridge.devserver.process import (
    command_line,
)
from bridge.devserver.prosody_config import (
    CERT_DIR_NAME,
    DOMAIN,
    LOG_NAME,
    MUC_DOMAIN,
    PID_NAME,
    STORAGE_DIR_NAME,
    UPLOAD_DOMAIN,
    Listeners,
    ProsodyError,
    ensure_certificate,
    lua,
    prosody_config,
    read_listeners,
    warn_ignored,
)

__all__ = ["INSTALL_HINT", "ProsodyError", "ProsodyServer", "prepare_prosody",
           "prosody_installed"]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "apt-get install -y --no-install-recommends prosody lua-unbound  "
    "(Debian's prosody runs a private XMPP server for the tests and the demo)"
)

CONFIG_NAME = "prosody.cfg.lua"
STDOUT_NAME = "stdout.log"
CERT_NAME = "localhost.crt"
KEY_NAME = "localhost.key"

LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
PROSODYCTL_TIMEOUT = 30.0

_STREAM_NS = "http://etherx.jabber.org/streams"
_FEATURES_END = re.compile(rb"</stream:features>|<stream:features\b[^>]*/>")
_MAX_PROBE_BYTES = 65536

def prosody_installed() -> bool:
    """Whether Debian's ``prosody`` and ``prosodyctl`` are on PATH."""
    return shutil.which("prosody") is not None and shutil.which("prosodyctl") is not None


def _require_prosody() -> None:
    if not prosody_installed():
        raise ProsodyError(f"prosody is not installed: {INSTALL_HINT}")


@dataclass
class ProsodyServer(ManagedServer):
    """A prepared data directory plus (once started) the Prosody process serving it."""

    NAME: ClassVar[str] = "Prosody"
    CONFIG_NAME: ClassVar[str] = CONFIG_NAME
    LOG_NAME: ClassVar[str] = LOG_NAME
    PID_NAME: ClassVar[str] = PID_NAME
    START_TIMEOUT: ClassVar[float] = 20.0
    STOP_TIMEOUT: ClassVar[float] = 10.0
    POLL_INTERVAL: ClassVar[float] = POLL_INTERVAL
    ERROR: ClassVar[type[Exception]] = ProsodyError

    data_dir: Path
    c2s_port: int
    domain: str = DOMAIN
    muc_domain: str = MUC_DOMAIN
    tls: bool = False
    # The self-signed certificate clients must trust (tls=True), else None.
    ca_file: Path | None = None
    # WebSocket and BOSH (web=True) and the upload service (upload=True) listen here.
    http_port: int | None = None
    web: bool = False
    # The upload service's address (XEP-0363), or None for a server without one.
    upload_domain: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Absolute, because the child runs with cwd=data_dir.
        self.data_dir = Path(self.data_dir).resolve()
        if self.ca_file is not None:
            self.ca_file = Path(self.ca_file).resolve()

    @property
    def websocket_url(self) -> str | None:
        """The RFC 7395 endpoint for browser clients (web=True), else None."""
        if self.http_port is None or not self.web:
            return None
        return f"ws://127.0.0.1:{self.http_port}/xmpp-websocket"

    @property
    def bosh_url(self) -> str | None:
        if self.http_port is None or not self.web:
            return None
        return f"http://127.0.0.1:{self.http_port}/http-bind"

    @property
    def upload_url(self) -> str | None:
        """Where the upload service's files are downloaded from (every slot's GET URL
        starts with it), or None without an upload service."""
        if self.http_port is None or self.upload_domain is None:
            return None
        return f"http://127.0.0.1:{self.http_port}/file_share/"

    def uploaded_files(self) -> int:
        """How many files the upload service holds (tests count uploads with it)."""
        if self.upload_domain is None:
            return 0
        stored = self.data_dir / STORAGE_DIR_NAME / self.upload_domain.replace(".", "%2e")
        return sum(1 for _ in stored.rglob("*.bin"))

    # -- what the managed process needs ---------------------------------------------

    def _command(self) -> list[str]:
        # -F keeps Prosody in the foreground, so the child's PID is the server's.
        return [_which("prosody"), "-F", "--config", str(self.config_path)]

    def _answers(self) -> bool:
        return _stream_answers(self.c2s_port, self.domain)

    def _is_ours(self, pid: int) -> bool:
        return _is_prosody_for(pid, self.config_path)

    def _ports(self) -> tuple[int, ...]:
        return tuple(port for port in (self.c2s_port, self.http_port) if port is not None)

    def _require(self) -> None:
        _require_prosody()

    # -- accounts ------------------------------------------------------------------

    def destroy_room(self, room_jid: str) -> None:
        """Destroy a group chat as a server admin would (the admin shell), for tests of a
        room that disappears under the bridge."""
        code = (f'>prosody.hosts[{lua(self.muc_domain)}].modules.muc'
                f'.get_room_from_jid({lua(room_jid)}):destroy()')
        result = subprocess.run(
            [_which("prosodyctl"), "--config", str(self.config_path), "shell", code],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if result.returncode != 0 or "true" not in result.stdout:
            raise ProsodyError(f"destroying {room_jid} failed: {result.stdout} {result.stderr}")

    def register(self, localpart: str, password: str) -> str:
        """Create the account ``localpart@domain`` (or reset its password); return the JID.

        Runs ``prosodyctl``, which writes the account store directly, so it works
        whether or not the server is running.
        """
        _require_prosody()
        cmd = [
            _which("prosodyctl"),
            "--config",
            str(self.config_path),
            "register",
            localpart,
            self.domain,
            password,
        ]
        try:
            result = subprocess.run(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROSODYCTL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProsodyError(
                f"prosodyctl register {localpart} timed out after {PROSODYCTL_TIMEOUT:.0f}s"
            ) from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise ProsodyError(
                f"prosodyctl register {localpart} {self.domain} failed "
                f"(exit {result.returncode}): {output or '(no output)'}"
            )
        # Prosody stores the nodeprepped localpart; lowercasing covers the ASCII case.
        return f"{localpart.lower()}@{self.domain}"


def prepare_prosody(
    data_dir: Path, *, tls: bool = False, c2s_port: int | None = None, web: bool = False,
    upload: bool = True,
) -> ProsodyServer:
    """Create (or reuse) a data directory for a private XMPP server; does not start it.

    An existing prosody.cfg.lua is kept as is, including its ports and TLS setting, so a
    demo restarts on the same data; ``tls``, ``c2s_port``, ``web`` (WebSocket and BOSH)
    and ``upload`` (an HTTP file upload service), the last two on a free loopback HTTP
    port, only apply when the config is first written.
    """
    _require_prosody()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STORAGE_DIR_NAME).mkdir(exist_ok=True)
    cert_dir = data_dir / CERT_DIR_NAME
    cert_dir.mkdir(exist_ok=True)
    config_path = data_dir / CONFIG_NAME
    if config_path.exists():
        ports = read_listeners(config_path)
        warn_ignored(config_path, ports, c2s_port, tls, web, upload)
    else:
        ports = Listeners(c2s_port or free_port(), tls,
                          free_port() if web or upload else None, web=web, upload=upload)
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    if ports.tls:
        ensure_certificate(cert_path, key_path)
    if not config_path.exists():
        config_path.write_text(
            prosody_config(data_dir, ports, cert_path, key_path), encoding="utf-8"
        )
    return ProsodyServer(
        data_dir=data_dir,
        c2s_port=ports.c2s_port,
        domain=DOMAIN,
        muc_domain=MUC_DOMAIN,
        tls=ports.tls,
        ca_file=cert_path if ports.tls else None,
        http_port=ports.http_port,
        web=ports.web,
        upload_domain=UPLOAD_DOMAIN if ports.upload else None,
    )


# -- network helpers -------------------------------------------------------------------


def _stream_answers(port: int, domain: str) -> bool:
    """Whether an XMPP client stream opened on ``port`` is answered with stream features."""
    header = (
        f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' "
        f"xmlns='jabber:client' xmlns:stream='{_STREAM_NS}'>"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(header.encode())
            received = b""
            while not _FEATURES_END.search(received):
                chunk = sock.recv(4096)
                if not chunk or len(received) > _MAX_PROBE_BYTES:
                    return False
                received += chunk
            sock.sendall(b"</stream:stream>")
            return True
    except OSError:
        return False


# -- process helpers ---------------------------------------------------------------------


def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ProsodyError(f"{name} is not on PATH: {INSTALL_HINT}")
    return path


def _is_prosody_for(pid: int, config_path: Path) -> bool:
    """Whether ``pid`` is a live Prosody using ``config_path`` (guards against PID reuse);
    Prosody runs as ``lua5.x /usr/bin/prosody -F --config <cfg>``."""
    argv = command_line(pid)
    return any(os.path.basename(arg) == b"prosody" for arg in argv) and (
        str(config_path).encode() in argv
    )


