"""Run a private Prosody XMPP server in a child process.

Used by the ``demo`` command and the XMPP tests, like ``bridge.devserver.synapse`` is
for Matrix. Everything lives under one data directory (Lua config, account and room
storage, self-signed certificate, logs, pid file, admin socket), so a demo can be
stopped and restarted on the same data.

The API is synchronous on purpose: callers run it from pytest fixtures or threads.
Prosody itself is Debian's package (``prosody`` plus ``lua-unbound``); only the
standard library is imported here.

The server listens for clients on 127.0.0.1 only, with no server-to-server, HTTP or
direct-TLS ports. Without ``tls`` it offers no STARTTLS at all and accepts SCRAM over
plain TCP; with ``tls`` it requires STARTTLS with a self-signed certificate whose path
is ``ProsodyServer.ca_file``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridge.devserver.ports import free_port
from bridge.devserver.process import (
    command_line,
    port_accepts,
    read_pid,
    terminate,
    terminate_foreign,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "apt-get install -y --no-install-recommends prosody lua-unbound  "
    "(Debian's prosody runs a private XMPP server for the tests and the demo)"
)

DOMAIN = "localhost"
MUC_DOMAIN = "muc.localhost"
CONFIG_NAME = "prosody.cfg.lua"
LOG_NAME = "prosody.log"
STDOUT_NAME = "stdout.log"
PID_NAME = "prosody.pid"
SOCKET_NAME = "prosody.sock"
STORAGE_DIR_NAME = "data"
CERT_DIR_NAME = "certificates"
CERT_NAME = "localhost.crt"
KEY_NAME = "localhost.key"

LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
PROSODYCTL_TIMEOUT = 30.0

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107

_STREAM_NS = "http://etherx.jabber.org/streams"
_FEATURES_END = re.compile(rb"</stream:features>|<stream:features\b[^>]*/>")
_MAX_PROBE_BYTES = 65536

# Client-side modules. mod_mam is deliberately absent: the bridge reads history from
# the group chat archive (muc_mam on the MUC component), not from personal archives.
_C2S_MODULES: tuple[str, ...] = (
    "roster",
    "saslauth",
    "disco",
    "carbons",
    "pep",
    "private",
    "blocklist",
    "vcard4",
    "vcard_legacy",
    "version",
    "uptime",
    "time",
    "ping",
    "register",  # prosodyctl and password changes; in-band registration stays off
    "smacks",  # XEP-0198, shipped with Prosody since 0.12
)


class ProsodyError(RuntimeError):
    """The XMPP server could not be started, or prosodyctl refused a command."""


def prosody_installed() -> bool:
    """Whether Debian's ``prosody`` and ``prosodyctl`` are on PATH."""
    return shutil.which("prosody") is not None and shutil.which("prosodyctl") is not None


def _require_prosody() -> None:
    if not prosody_installed():
        raise ProsodyError(f"prosody is not installed: {INSTALL_HINT}")


@dataclass
class ProsodyServer:
    """A prepared data directory plus (once started) the Prosody process serving it."""

    data_dir: Path
    c2s_port: int
    domain: str = DOMAIN
    muc_domain: str = MUC_DOMAIN
    tls: bool = False
    # The self-signed certificate clients must trust (tls=True), else None.
    ca_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Absolute, because the child runs with cwd=data_dir.
        self.data_dir = Path(self.data_dir).resolve()
        if self.ca_file is not None:
            self.ca_file = Path(self.ca_file).resolve()

    # -- paths -------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_NAME

    # -- process lifecycle -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = 20.0) -> None:
        """Spawn Prosody and block until its client port answers with stream features."""
        if self.running:
            return
        _require_prosody()
        self._stop_leftover()
        if port_accepts(self.c2s_port):
            # Without this check a stranger on the port could answer our probe while
            # our child dies on "address in use".
            raise ProsodyError(f"port {self.c2s_port} is already in use; cannot start Prosody")
        started = time.monotonic()
        self._spawn()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Prosody up on 127.0.0.1:%d after %.2fs (pid %s, tls %s, data %s)",
            self.c2s_port,
            time.monotonic() - started,
            self.pid,
            self.tls,
            self.data_dir,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout``; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate(proc, timeout, "Prosody")
        # Prosody removes its pid file on a clean shutdown, but not after SIGKILL.
        self.pid_path.unlink(missing_ok=True)
        logger.info("Prosody (pid %d) stopped", proc.pid)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _spawn(self) -> None:
        # -F keeps Prosody in the foreground, so the child's PID is the server's.
        cmd = [_which("prosody"), "-F", "--config", str(self.config_path)]
        with (self.data_dir / STDOUT_NAME).open("wb") as out:
            # A new session keeps a demo terminal's Ctrl-C away from Prosody; the
            # caller decides when to stop it.
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ProsodyError(
                    f"Prosody exited with code {code} during startup\n{self._log_tail()}"
                )
            if _stream_answers(self.c2s_port, self.domain):
                return
            if time.monotonic() >= deadline:
                raise ProsodyError(
                    f"Prosody did not answer on 127.0.0.1:{self.c2s_port} within "
                    f"{timeout:.0f}s\n{self._log_tail()}"
                )
            time.sleep(POLL_INTERVAL)

    def _log_tail(self) -> str:
        # Config errors are printed to stdout before logging is set up, so show both.
        parts = []
        for path in (self.log_path, self.data_dir / STDOUT_NAME):
            try:
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            except FileNotFoundError:
                continue
            if lines:
                parts.append(f"--- last {len(lines)} lines of {path} ---\n" + "\n".join(lines))
        return "\n".join(parts) or "(no log output)"

    def _stop_leftover(self) -> None:
        """Stop a Prosody left running on this data dir by a parent that died."""
        pid = read_pid(self.pid_path)
        if pid is not None and _is_prosody_for(pid, self.config_path):
            logger.warning("stopping leftover Prosody (pid %d) on %s", pid, self.data_dir)
            if not terminate_foreign(
                pid, lambda p: _is_prosody_for(p, self.config_path), timeout=10.0
            ):
                raise ProsodyError(f"could not stop leftover Prosody pid {pid}")
        self.pid_path.unlink(missing_ok=True)

    # -- accounts ------------------------------------------------------------------

    def destroy_room(self, room_jid: str) -> None:
        """Destroy a group chat as a server admin would (the admin shell), for tests of a
        room that disappears under the bridge."""
        lua = (f'>prosody.hosts[{_lua(self.muc_domain)}].modules.muc'
               f'.get_room_from_jid({_lua(room_jid)}):destroy()')
        result = subprocess.run(
            [_which("prosodyctl"), "--config", str(self.config_path), "shell", lua],
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
    data_dir: Path, *, tls: bool = False, c2s_port: int | None = None
) -> ProsodyServer:
    """Create (or reuse) a data directory for a private XMPP server; does not start it.

    An existing prosody.cfg.lua is kept as is, including its port and TLS setting, so a
    demo restarts on the same data; ``tls`` and ``c2s_port`` only apply when the config
    is first written.
    """
    _require_prosody()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STORAGE_DIR_NAME).mkdir(exist_ok=True)
    cert_dir = data_dir / CERT_DIR_NAME
    cert_dir.mkdir(exist_ok=True)
    config_path = data_dir / CONFIG_NAME
    if config_path.exists():
        c2s_port, tls = _read_existing_config(config_path, c2s_port, tls)
    else:
        c2s_port = c2s_port or free_port()
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    if tls:
        _ensure_certificate(cert_path, key_path)
    if not config_path.exists():
        config_path.write_text(
            _prosody_config(data_dir, c2s_port, tls, cert_path, key_path), encoding="utf-8"
        )
    return ProsodyServer(
        data_dir=data_dir,
        c2s_port=c2s_port,
        domain=DOMAIN,
        muc_domain=MUC_DOMAIN,
        tls=tls,
        ca_file=cert_path if tls else None,
    )


# -- config files ----------------------------------------------------------------------


def _prosody_config(data_dir: Path, port: int, tls: bool, cert: Path, key: Path) -> str:
    modules = list(_C2S_MODULES)
    if tls:
        modules.insert(modules.index("saslauth") + 1, "tls")
    socket_path = data_dir / SOCKET_NAME
    admin_socket = ""
    if len(os.fsencode(socket_path)) <= _MAX_UNIX_SOCKET_PATH:
        modules.append("admin_shell")  # `prosodyctl --config <cfg> shell`
        admin_socket = f"admin_socket = {_lua(socket_path)}\n"
    else:
        logger.warning("%s is too long for a unix socket; no admin shell", socket_path)
    # Without a certificate Prosody 0.12 still offers STARTTLS, and clients that take
    # it fail; so mod_tls is disabled outright on a plaintext server.
    disabled = ["s2s"] if tls else ["s2s", "tls"]
    ssl = f"ssl = {{ certificate = {_lua(cert)}, key = {_lua(key)} }}\n" if tls else ""
    return (
        "-- Written by bridge.devserver.prosody for a private development XMPP server.\n"
        "-- Loopback only; accounts are created with prosodyctl.\n"
        "\n"
        # Harmless for other users; as root Prosody refuses to start without it.
        "run_as_root = true\n"
        f"pidfile = {_lua(data_dir / PID_NAME)}\n"
        f"data_path = {_lua(data_dir / STORAGE_DIR_NAME)}\n"
        f"certificates = {_lua(data_dir / CERT_DIR_NAME)}\n"
        f"{admin_socket}"
        f'log = {{ {{ levels = {{ min = "info" }}, to = "file", '
        f"filename = {_lua(data_dir / LOG_NAME)} }} }}\n"
        "\n"
        'interfaces = { "127.0.0.1" }\n'
        f"c2s_ports = {{ {port} }}\n"
        # Small chat stanzas should leave at once, as on a tuned production server;
        # with Nagle's algorithm on, loopback latency is dominated by delayed ACKs.
        "network_settings = { nagle = false }\n"
        "c2s_direct_tls_ports = {}\n"
        "legacy_ssl_ports = {}\n"
        "s2s_ports = {}\n"
        "s2s_direct_tls_ports = {}\n"
        "http_ports = {}\n"
        "https_ports = {}\n"
        "component_ports = {}\n"
        "\n"
        f"modules_enabled = {_lua_list(modules)}\n"
        f"modules_disabled = {_lua_list(disabled)}\n"
        "allow_registration = false\n"
        'authentication = "internal_hashed"\n'
        'storage = "internal"\n'
        f"c2s_require_encryption = {_lua_bool(tls)}\n"
        f"allow_unencrypted_plain_auth = {_lua_bool(not tls)}\n"
        f"{ssl}"
        "\n"
        f"VirtualHost {_lua(DOMAIN)}\n"
        f"{'    ' + ssl if ssl else ''}"
        "\n"
        f'Component {_lua(MUC_DOMAIN)} "muc"\n'
        # muc_mam stamps group chat messages with XEP-0359 stanza-ids.
        '    modules_enabled = { "muc_mam" }\n'
        "    muc_room_locking = false\n"
        "    muc_room_default_public = false\n"
        "    muc_room_default_persistent = true\n"
        "    restrict_room_creation = false\n"
        "    max_history_messages = 50\n"
        f"{'    ' + ssl if ssl else ''}"
    )


_PORT_RE = re.compile(r"^c2s_ports\s*=\s*\{\s*(\d+)\s*\}", re.MULTILINE)
_TLS_RE = re.compile(r"^c2s_require_encryption\s*=\s*(true|false)", re.MULTILINE)


def _read_existing_config(
    config_path: Path, wanted_port: int | None, wanted_tls: bool
) -> tuple[int, bool]:
    text = config_path.read_text(encoding="utf-8")
    port_match, tls_match = _PORT_RE.search(text), _TLS_RE.search(text)
    if port_match is None or tls_match is None:
        raise ProsodyError(
            f"{config_path} was not written by bridge.devserver.prosody "
            "(no c2s_ports or c2s_require_encryption line); remove it or use another dir"
        )
    port, tls = int(port_match.group(1)), tls_match.group(1) == "true"
    if wanted_port is not None and wanted_port != port:
        logger.warning(
            "ignoring port %d: %s already configures port %d", wanted_port, config_path, port
        )
    if wanted_tls != tls:
        logger.warning(
            "ignoring tls=%s: %s already configures tls=%s", wanted_tls, config_path, tls
        )
    return port, tls


def _ensure_certificate(cert: Path, key: Path) -> None:
    """Write a self-signed certificate for both hosts, valid for ten years."""
    if cert.exists() and key.exists():
        return
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ProsodyError("openssl is needed to make a certificate for tls=True")
    cmd = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        f"/CN={DOMAIN}",
        "-addext",
        f"subjectAltName=DNS:{DOMAIN},DNS:{MUC_DOMAIN}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
    result = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise ProsodyError(
            "openssl could not make a certificate: "
            + result.stderr.decode(errors="replace").strip()
        )
    # The server runs as the user who prepared the directory (root: run_as_root).
    key.chmod(0o600)
    cert.chmod(0o644)


def _lua(value: object) -> str:
    """A Lua double-quoted string literal."""
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


def _lua_list(items: list[str]) -> str:
    return "{ " + ", ".join(_lua(item) for item in items) + " }"


def _lua_bool(value: bool) -> str:
    return "true" if value else "false"


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


