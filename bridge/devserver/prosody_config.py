"""The Lua config file and the self-signed certificate of a private Prosody server.

Split from ``bridge.devserver.prosody`` (which runs the process): what is written into
the data directory, and what an existing config says about its ports and TLS.

Optional listeners are opt-in, so the tests' plaintext server stays as it was:
``tls`` requires STARTTLS with a self-signed certificate; ``web`` adds WebSocket (RFC
7395, ``/xmpp-websocket``) and BOSH (``/http-bind``) for browser clients such as
Converse.js; ``upload`` adds an HTTP file upload service (XEP-0363, mod_http_file_share)
on the component ``upload.<domain>``. Both share one loopback HTTP port.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DOMAIN = "localhost"
MUC_DOMAIN = "muc.localhost"
UPLOAD_DOMAIN = "upload.localhost"
# Files up to this size may be uploaded (the bridge's own limit is smaller by default).
UPLOAD_SIZE_LIMIT = 64 * 1024 * 1024
# What one account may upload a day: enough for a soak run, still a bound.
UPLOAD_DAILY_QUOTA = 16 * 1024 * 1024 * 1024
LOG_NAME = "prosody.log"
PID_NAME = "prosody.pid"
SOCKET_NAME = "prosody.sock"
STORAGE_DIR_NAME = "data"
CERT_DIR_NAME = "certificates"

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107

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


@dataclass(frozen=True)
class Listeners:
    """The ports a config declares: client port, STARTTLS required, optional HTTP port
    (for WebSocket and BOSH, for the upload service, or both)."""

    c2s_port: int
    tls: bool = False
    http_port: int | None = None
    web: bool = False
    upload: bool = False


def prosody_config(data_dir: Path, ports: Listeners, cert: Path, key: Path) -> str:
    """The whole prosody.cfg.lua for a loopback-only server under ``data_dir``."""
    modules = list(_C2S_MODULES)
    if ports.tls:
        modules.insert(modules.index("saslauth") + 1, "tls")
    if ports.web:
        modules += ["websocket", "bosh"]
    socket_path = data_dir / SOCKET_NAME
    admin_socket = ""
    if len(os.fsencode(socket_path)) <= _MAX_UNIX_SOCKET_PATH:
        modules.append("admin_shell")  # `prosodyctl --config <cfg> shell`
        admin_socket = f"admin_socket = {lua(socket_path)}\n"
    else:
        logger.warning("%s is too long for a unix socket; no admin shell", socket_path)
    # Without a certificate Prosody 0.12 still offers STARTTLS, and clients that take
    # it fail; so mod_tls is disabled outright on a plaintext server.
    disabled = ["s2s"] if ports.tls else ["s2s", "tls"]
    ssl = f"ssl = {{ certificate = {lua(cert)}, key = {lua(key)} }}\n" if ports.tls else ""
    return (
        "-- Written by bridge.devserver.prosody for a private development XMPP server.\n"
        "-- Loopback only; accounts are created with prosodyctl.\n"
        "\n"
        # Harmless for other users; as root Prosody refuses to start without it.
        "run_as_root = true\n"
        f"pidfile = {lua(data_dir / PID_NAME)}\n"
        f"data_path = {lua(data_dir / STORAGE_DIR_NAME)}\n"
        f"certificates = {lua(data_dir / CERT_DIR_NAME)}\n"
        f"{admin_socket}"
        f'log = {{ {{ levels = {{ min = "info" }}, to = "file", '
        f"filename = {lua(data_dir / LOG_NAME)} }} }}\n"
        "\n"
        'interfaces = { "127.0.0.1" }\n'
        f"c2s_ports = {{ {ports.c2s_port} }}\n"
        # Small chat stanzas should leave at once, as on a tuned production server;
        # with Nagle's algorithm on, loopback latency is dominated by delayed ACKs.
        "network_settings = { nagle = false }\n"
        "c2s_direct_tls_ports = {}\n"
        "legacy_ssl_ports = {}\n"
        "s2s_ports = {}\n"
        "s2s_direct_tls_ports = {}\n"
        f"{_http_settings(ports)}"
        "https_ports = {}\n"
        "component_ports = {}\n"
        "\n"
        f"modules_enabled = {lua_list(modules)}\n"
        f"modules_disabled = {lua_list(disabled)}\n"
        "allow_registration = false\n"
        'authentication = "internal_hashed"\n'
        'storage = "internal"\n'
        f"c2s_require_encryption = {lua_bool(ports.tls)}\n"
        f"allow_unencrypted_plain_auth = {lua_bool(not ports.tls)}\n"
        f"{ssl}"
        "\n"
        f"VirtualHost {lua(DOMAIN)}\n"
        f"{'    ' + ssl if ssl else ''}"
        "\n"
        f'Component {lua(MUC_DOMAIN)} "muc"\n'
        # muc_mam stamps group chat messages with XEP-0359 stanza-ids.
        '    modules_enabled = { "muc_mam" }\n'
        "    muc_room_locking = false\n"
        "    muc_room_default_public = false\n"
        "    muc_room_default_persistent = true\n"
        "    restrict_room_creation = false\n"
        "    max_history_messages = 50\n"
        f"{'    ' + ssl if ssl else ''}"
        f"{_upload_component() if ports.upload else ''}"
    )


def _http_settings(ports: Listeners) -> str:
    http_port = ports.http_port
    if http_port is None:
        return "http_ports = {}\n"
    # Prosody's HTTP server refuses bodies over 10 MB unless told otherwise (a global
    # option: one HTTP server serves every host).
    body_limit = (f"http_max_content_size = {UPLOAD_SIZE_LIMIT + 1024 * 1024}\n"
                  if ports.upload else "")
    return (
        f"{body_limit}"
        f"http_ports = {{ {http_port} }}\n"
        'http_interfaces = { "127.0.0.1" }\n'
        # Clients connect to http://127.0.0.1:PORT, a Host that names no XMPP host: every
        # host's HTTP paths (websocket, bosh, file_share) are served under that name.
        'http_host = "127.0.0.1"\n'
        'http_default_host = "127.0.0.1"\n'
        # The URLs the server hands out (upload slots) point at the loopback port.
        f'http_external_url = "http://127.0.0.1:{http_port}/"\n'
        # The HTTP port is loopback-only and has no TLS; without these, a server that
        # requires encryption would refuse every browser client's login.
        "consider_websocket_secure = true\n"
        "consider_bosh_secure = true\n"
    )


def _upload_component() -> str:
    """mod_http_file_share (XEP-0363): slots for accounts of this server, files stored
    under data_path (the data directory), downloads at http://127.0.0.1:PORT/file_share/."""
    return (
        "\n"
        f'Component {lua(UPLOAD_DOMAIN)} "http_file_share"\n'
        f"    http_file_share_size_limit = {UPLOAD_SIZE_LIMIT}\n"
        f"    http_file_share_daily_quota = {UPLOAD_DAILY_QUOTA}\n"
    )


_PORT_RE = re.compile(r"^c2s_ports\s*=\s*\{\s*(\d+)\s*\}", re.MULTILINE)
_TLS_RE = re.compile(r"^c2s_require_encryption\s*=\s*(true|false)", re.MULTILINE)
_HTTP_RE = re.compile(r"^http_ports\s*=\s*\{\s*(\d*)\s*\}", re.MULTILINE)
_WEB_RE = re.compile(r'^modules_enabled\s*=.*"websocket"', re.MULTILINE)
_UPLOAD_RE = re.compile(r'^Component\s+"[^"]*"\s+"http_file_share"', re.MULTILINE)


def read_listeners(config_path: Path) -> Listeners:
    """What a config written by ``prosody_config`` declares; ProsodyError for another."""
    text = config_path.read_text(encoding="utf-8")
    port_match, tls_match = _PORT_RE.search(text), _TLS_RE.search(text)
    if port_match is None or tls_match is None:
        raise ProsodyError(
            f"{config_path} was not written by bridge.devserver.prosody "
            "(no c2s_ports or c2s_require_encryption line); remove it or use another dir"
        )
    http_match = _HTTP_RE.search(text)
    http_port = int(http_match.group(1)) if http_match and http_match.group(1) else None
    return Listeners(int(port_match.group(1)), tls_match.group(1) == "true", http_port,
                     web=_WEB_RE.search(text) is not None,
                     upload=_UPLOAD_RE.search(text) is not None)


def warn_ignored(config_path: Path, found: Listeners, wanted_port: int | None,
                 wanted_tls: bool, wanted_web: bool, wanted_upload: bool) -> None:
    """Say which requested options an existing config overrides (it is kept as is)."""
    if wanted_port is not None and wanted_port != found.c2s_port:
        logger.warning(
            "ignoring port %d: %s already configures port %d",
            wanted_port, config_path, found.c2s_port,
        )
    if wanted_tls != found.tls:
        logger.warning(
            "ignoring tls=%s: %s already configures tls=%s", wanted_tls, config_path, found.tls
        )
    if wanted_web != found.web:
        logger.warning(
            "ignoring web=%s: %s already configures web=%s", wanted_web, config_path, found.web
        )
    if wanted_upload != found.upload:
        logger.warning(
            "ignoring upload=%s: %s already configures upload=%s",
            wanted_upload, config_path, found.upload,
        )


def ensure_certificate(cert: Path, key: Path) -> None:
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


def lua(value: object) -> str:
    """A Lua double-quoted string literal."""
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


def lua_list(items: list[str]) -> str:
    return "{ " + ", ".join(lua(item) for item in items) + " }"


def lua_bool(value: bool) -> str:
    return "true" if value else "false"
