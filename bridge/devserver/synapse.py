"""Run a private Synapse homeserver in a child process.

Used by the ``demo`` command, the integration-test fixture and the benchmark script.
Everything lives under one data directory (config, signing key, SQLite database,
media, logs), so a demo can be stopped and restarted on the same data.

The API is synchronous on purpose: callers run it from pytest fixtures or threads.
Only the standard library is imported at module level so that importing this module
works without Synapse installed; ``yaml`` and ``signedjson`` (Synapse dependencies)
are imported where they are needed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import importlib.util
import json
import logging
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bridge.devserver.managed import ManagedServer
from bridge.devserver.ports import free_port
from bridge.devserver.process import (
    command_line,
)
from bridge.devserver.synapse_config import (
    CONFIG_NAME,
    LOG_NAME,
    MEDIA_DIR_NAME,
    PID_NAME,
    SERVER_NAME,
    SIGNING_KEY_NAME,
    ensure_log_config,
    ensure_signing_key,
    homeserver_config,
    read_existing_config,
    write_yaml,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install -e '.[test]'  (or [demo], in a checkout): "
    "matrix-synapse is needed to run a private homeserver"
)

STDOUT_NAME = "stdout.log"

LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.1

_REGISTER_PATH = "/_synapse/admin/v1/register"
_VERSIONS_PATH = "/_matrix/client/versions"

# The homeserver is on loopback: never send these requests through an
# http(s)_proxy picked up from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SynapseError(RuntimeError):
    """The homeserver could not be started, or one of its APIs refused a request."""

    def __init__(self, message: str, *, status: int | None = None, errcode: str | None = None):
        super().__init__(message)
        self.status = status
        self.errcode = errcode


def synapse_installed() -> bool:
    """Whether matrix-synapse can be imported by this interpreter."""
    return importlib.util.find_spec("synapse") is not None


def _require_synapse() -> None:
    if not synapse_installed():
        raise SynapseError(f"matrix-synapse is not installed: {INSTALL_HINT}")


@dataclass
class SynapseServer(ManagedServer):
    """A prepared data directory plus (once started) the Synapse process serving it."""

    NAME: ClassVar[str] = "Synapse"
    CONFIG_NAME: ClassVar[str] = CONFIG_NAME
    LOG_NAME: ClassVar[str] = LOG_NAME
    PID_NAME: ClassVar[str] = PID_NAME
    START_TIMEOUT: ClassVar[float] = 60.0
    STOP_TIMEOUT: ClassVar[float] = 20.0
    POLL_INTERVAL: ClassVar[float] = POLL_INTERVAL
    ERROR: ClassVar[type[Exception]] = SynapseError

    data_dir: Path
    port: int
    server_name: str
    registration_secret: str
    base_url: str = ""
    _proc: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Absolute, because the child runs with cwd=data_dir.
        self.data_dir = Path(self.data_dir).resolve()
        if not self.base_url:
            self.base_url = f"http://127.0.0.1:{self.port}"

    # -- what the managed process needs ---------------------------------------------

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]

    def _spawned(self, proc: subprocess.Popen[bytes]) -> None:
        # Synapse only writes pid_file when daemonizing, so record it ourselves: it
        # lets the next start() find a server orphaned by a crashed parent.
        self.pid_path.write_text(f"{proc.pid}\n")

    def _answers(self) -> bool:
        try:
            with _OPENER.open(self.base_url + _VERSIONS_PATH, timeout=2.0) as resp:
                return resp.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def _is_ours(self, pid: int) -> bool:
        return _is_synapse_for(pid, self.config_path)

    def _ports(self) -> tuple[int, ...]:
        return (self.port,)

    def _require(self) -> None:
        _require_synapse()

    def _where(self) -> str:
        return self.base_url

    # -- HTTP APIs -----------------------------------------------------------------

    def register(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
    ) -> tuple[str, str]:
        """Create a user with the shared-secret admin API; return (user_id, token).

        If the user already exists (a demo restarted on old data) log in instead;
        ``admin`` and ``displayname`` are then left as they were.
        """
        nonce = self._call("GET", _REGISTER_PATH)["nonce"]
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": _register_mac(self.registration_secret, nonce, localpart, password, admin),
        }
        if displayname is not None:
            body["displayname"] = displayname
        try:
            reply = self._call("POST", _REGISTER_PATH, body)
        except SynapseError as exc:
            if exc.errcode != "M_USER_IN_USE":
                raise
            logger.info("user %s already exists; logging in", localpart)
            return self.login(localpart, password)
        return reply["user_id"], reply["access_token"]

    def login(self, localpart: str, password: str) -> tuple[str, str]:
        """Password login; returns (user_id, access_token) for a new device."""
        reply = self._call(
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
        )
        return reply["user_id"], reply["access_token"]

    def whoami(self, access_token: str) -> str:
        return self._call("GET", "/_matrix/client/v3/account/whoami", token=access_token)["user_id"]

    def override_ratelimit(self, admin_token: str, user_id: str, messages_per_second: float = 0,
                           burst_count: int = 0) -> None:
        """One user's message rate limit (needs an admin token); 0 and 0 exempt them."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id, safe='')}/override_ratelimit"
        self._call("POST", path, {"messages_per_second": messages_per_second,
                                  "burst_count": burst_count}, token=admin_token)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise _http_error(method, path, exc) from None
        except urllib.error.URLError as exc:
            raise SynapseError(f"{method} {path}: {exc.reason}") from exc


def prepare_synapse(
    data_dir: Path, port: int | None = None, *, rate_limits_lifted: bool = True
) -> SynapseServer:
    """Create (or reuse) a data directory for a private homeserver; does not start it.

    An existing homeserver.yaml is kept as is, including its port and shared secret,
    so a demo restarts on the same data; ``port`` and ``rate_limits_lifted`` only
    apply when the config is first written.
    """
    _require_synapse()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / CONFIG_NAME
    if config_path.exists():
        server_name, port, secret = read_existing_config(config_path, port)
    else:
        server_name, port, secret = SERVER_NAME, port or free_port(), secrets.token_hex(32)
        config = homeserver_config(data_dir, port, secret, rate_limits_lifted)
        write_yaml(config_path, config, private=True)
    ensure_log_config(data_dir)
    ensure_signing_key(data_dir / SIGNING_KEY_NAME)
    (data_dir / MEDIA_DIR_NAME).mkdir(exist_ok=True)
    return SynapseServer(
        data_dir=data_dir, port=port, server_name=server_name, registration_secret=secret
    )


def _register_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, user, password):
        mac.update(part.encode())
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def _http_error(method: str, path: str, exc: urllib.error.HTTPError) -> SynapseError:
    raw = exc.read()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    errcode = payload.get("errcode")
    detail = payload.get("error") or raw[:200].decode(errors="replace")
    return SynapseError(
        f"{method} {path} -> HTTP {exc.code} {errcode or ''}: {detail}",
        status=exc.code,
        errcode=errcode,
    )


# -- process helpers ---------------------------------------------------------------------


def _is_synapse_for(pid: int, config_path: Path) -> bool:
    """Whether ``pid`` is a live Synapse using ``config_path`` (guards against PID reuse)."""
    argv = command_line(pid)
    return b"synapse.app.homeserver" in argv and str(config_path).encode() in argv


