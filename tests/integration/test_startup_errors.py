"""Every start-up failure is one line naming the cause and the key to fix, exit non-zero:
no traceback, no "Unclosed client session". Each runs the real CLI as a process."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bridge.devserver.ports import free_port
from bridge.store import Store
from tests.conftest import Homeserver, XmppServer

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENTS_AND_QUEUES = """
[[agents]]
id = "alice"
address = "{agent}"
name = "Alice"

[[queues]]
id = "support"
name = "Support"
agents = ["alice"]
"""


def matrix_config(tmp_path: Path, homeserver: str, *, credential: str = 'password = "pw-1"',
                  listen: str | None = None, db: Path | None = None) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(f"""
[server]
listen = "{listen or f'127.0.0.1:{free_port()}'}"

[storage]
path = "{db or tmp_path / 'state' / 'db.sqlite3'}"

[backend]
type = "matrix"

[matrix]
homeserver = "{homeserver}"
user_id = "@support:localhost"
{credential}
""" + AGENTS_AND_QUEUES.format(agent="@alice:localhost"))
    return path


def xmpp_config(tmp_path: Path, host: str, port: int, password: str = "pw-1") -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{free_port()}"

[storage]
path = "{tmp_path / 'state' / 'db.sqlite3'}"

[backend]
type = "xmpp"

[xmpp]
jid = "support@localhost"
password = "{password}"
muc_service = "conference.localhost"
host = "{host}"
port = {port}
plaintext = true
""" + AGENTS_AND_QUEUES.format(agent="alice@localhost"))
    return path


def start_error(*args: str) -> str:
    """Run the CLI, expect it to fail; its stderr, checked to be one clean line."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    done = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode not in (0, None), done
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr.rstrip("\n")


def run_error(config: Path, *extra: str) -> str:
    return start_error("run", "-c", str(config), *extra)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_connection_refused_names_the_homeserver(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = matrix_config(tmp_path, f"http://127.0.0.1:{port}")
    assert run_error(config) == (
        f"{config}: cannot start: matrix.homeserver: connection refused by 127.0.0.1:{port} "
        "(is the server running on that port?)")


def test_unresolvable_homeserver(tmp_path: Path) -> None:
    config = matrix_config(tmp_path, "https://matrix.livechat-bridge.invalid")
    assert run_error(config) == (
        f"{config}: cannot start: matrix.homeserver: cannot resolve the host name of "
        "matrix.livechat-bridge.invalid:443 (check the spelling)")


def test_wrong_password_on_a_real_homeserver(homeserver: Homeserver, tmp_path: Path) -> None:
    config = matrix_config(tmp_path, homeserver.url, credential='password = "not-the-pw"')
    assert run_error(config) == (
        f"{config}: cannot start: matrix.password: the homeserver refused the login of "
        "@support:localhost (M_FORBIDDEN: Invalid username or password) (wrong password?)")


def test_bad_access_token_on_a_real_homeserver(homeserver: Homeserver, tmp_path: Path) -> None:
    config = matrix_config(tmp_path, homeserver.url, credential='access_token = "syt_nope"')
    assert run_error(config) == (
        f"{config}: cannot start: matrix.access_token: the homeserver refused the access token "
        "of @support:localhost (M_UNKNOWN_TOKEN: Invalid access token passed.) (expected a "
        "valid access_token of the bot, or its password)")


def test_untrusted_certificate(tmp_path: Path) -> None:
    with SelfSignedHttps(tmp_path) as port:
        config = matrix_config(tmp_path, f"https://127.0.0.1:{port}")
        assert run_error(config) == (
            f"{config}: cannot start: matrix.homeserver: the TLS certificate of 127.0.0.1:{port}"
            " does not verify (CERTIFICATE_VERIFY_FAILED: self-signed certificate) (expected a "
            "certificate this machine trusts, or the private CA that signed it)")


def test_listen_port_taken(tmp_path: Path, taken_port: int) -> None:
    # The port is checked before the homeserver (which does not exist here) is contacted.
    config = matrix_config(tmp_path, f"http://127.0.0.1:{free_port()}",
                           listen=f"127.0.0.1:{taken_port}")
    assert run_error(config) == (
        f"{config}: cannot start: server.listen: port {taken_port} on 127.0.0.1 is already in "
        "use (pick another: --listen HOST:PORT or [server] listen)")


def test_listen_option_overrides_the_config(tmp_path: Path, taken_port: int) -> None:
    config = matrix_config(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert run_error(config, "--listen", f"127.0.0.1:{taken_port}") == (
        f"{config}: cannot start: server.listen: port {taken_port} on 127.0.0.1 is already in "
        "use (pick another: --listen HOST:PORT or [server] listen)")


def test_demo_with_the_port_taken_says_how_to_pick_another(
    require_synapse: None, tmp_path: Path, taken_port: int
) -> None:
    assert start_error("demo", "--state", str(tmp_path), "--listen",
                       f"127.0.0.1:{taken_port}") == (
        f"livechat-bridge demo: cannot start: server.listen: port {taken_port} on 127.0.0.1 is "
        "already in use (pick another: --listen HOST:PORT, or make demo LISTEN=HOST:PORT)")
    assert not (tmp_path / "matrix").exists()  # said before any server was started


def test_database_path_under_a_file(tmp_path: Path) -> None:
    # A file where a folder should be: unwritable for root too (chmod would not stop root).
    (tmp_path / "somefile").write_text("")
    db = tmp_path / "somefile" / "db.sqlite3"
    config = matrix_config(tmp_path, f"http://127.0.0.1:{free_port()}", db=db)
    assert run_error(config) == (
        f"{config}: cannot start: storage.path: cannot open the database {db}: "
        f"{tmp_path / 'somefile'} is not a directory (expected a file in a directory the "
        "bridge may write to)")


def test_database_from_a_newer_version(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "SELECT migration_set, 'm999_from_the_future', '2099-01-01' "
                     "FROM _sqlite_migrations LIMIT 1")
    conn.close()
    config = matrix_config(tmp_path, f"http://127.0.0.1:{free_port()}", db=db)
    assert run_error(config) == (
        f"{config}: cannot start: storage.path: {db}: database has migrations this version "
        "does not know (m999_from_the_future): it was used by a newer livechat-bridge; upgrade "
        "instead of downgrading")


def test_xmpp_connection_refused(tmp_path: Path) -> None:
    port = free_port()
    config = xmpp_config(tmp_path, "127.0.0.1", port)
    assert run_error(config) == (
        f"{config}: cannot start: xmpp.port: connection refused by 127.0.0.1:{port} "
        "(is the server running on that port?)")


def test_xmpp_unresolvable_host(tmp_path: Path) -> None:
    config = xmpp_config(tmp_path, "xmpp.livechat-bridge.invalid", 5222)
    assert run_error(config) == (
        f"{config}: cannot start: xmpp.host: cannot resolve the host name of "
        "xmpp.livechat-bridge.invalid:5222 (check the spelling)")


def test_xmpp_wrong_password(xmpp_server: XmppServer, tmp_path: Path) -> None:
    config = xmpp_config(tmp_path, "127.0.0.1", xmpp_server.server.c2s_port, "not-the-pw")
    # At the default log level: slixmpp's own SASL lines stay off the console.
    assert start_error("run", "-c", str(config)) == (
        f"{config}: cannot start: xmpp.password: support@localhost could not log in "
        "(wrong password?)")


class _Nothing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # never reached: the handshake fails first
        self.send_error(404)


class SelfSignedHttps:
    """An HTTPS server on loopback with a certificate nobody trusts."""

    def __init__(self, tmp_path: Path) -> None:
        self.cert, self.key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", str(self.key), "-out",
                        str(self.cert)], check=True, capture_output=True)

    def __enter__(self) -> int:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Nothing)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
