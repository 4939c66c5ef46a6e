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
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    "pip install -e '.[test]'  (or [demo], in a checkout): "
    "matrix-synapse is needed to run a private homeserver"
)

SERVER_NAME = "localhost"
CONFIG_NAME = "homeserver.yaml"
LOG_CONFIG_NAME = "log_config.yaml"
LOG_NAME = "homeserver.log"
STDOUT_NAME = "stdout.log"
PID_NAME = "homeserver.pid"
SIGNING_KEY_NAME = "signing.key"
DATABASE_NAME = "homeserver.db"
MEDIA_DIR_NAME = "media_store"

LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.1

_REGISTER_PATH = "/_synapse/admin/v1/register"
_VERSIONS_PATH = "/_matrix/client/versions"

# Every new-style limiter read by synapse/config/ratelimiting.py (checked against
# 1.163). The defaults (e.g. 0.2 messages/s, 0.003 logins/s) throttle tests and
# benchmarks that fire bursts from a handful of users.
LIFTED_RATELIMIT_KEYS: tuple[str, ...] = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_admin_redaction",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_key_requests",
    "rc_3pid_validation",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_media_create",
    "rc_presence.per_user",
    "rc_delayed_event_mgmt",
    "rc_room_creation",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
)
_LIFTED_LIMIT = {"per_second": 1000, "burst_count": 10000}
# rc_federation has its own shape; federation is off anyway, but keep it consistent.
_LIFTED_FEDERATION = {
    "window_size": 1000,
    "sleep_limit": 10000,
    "reject_limit": 10000,
    "concurrent": 1000,
}

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
class SynapseServer:
    """A prepared data directory plus (once started) the Synapse process serving it."""

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

    def start(self, timeout: float = 60.0) -> None:
        """Spawn Synapse and block until the client API answers."""
        if self.running:
            return
        _require_synapse()
        self._stop_leftover()
        if port_accepts(self.port):
            # Without this check a stranger on the port would answer /versions and
            # look like our server while our child dies on "address in use".
            raise SynapseError(f"port {self.port} is already in use; cannot start Synapse")
        started = time.monotonic()
        self._spawn()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Synapse up on %s after %.1fs (pid %s, data %s)",
            self.base_url,
            time.monotonic() - started,
            self.pid,
            self.data_dir,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the homeserver, SIGKILL it after ``timeout``; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate(proc, timeout, "Synapse")
        self.pid_path.unlink(missing_ok=True)
        logger.info("Synapse (pid %d) stopped", proc.pid)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]
        with (self.data_dir / STDOUT_NAME).open("wb") as out:
            # A new session keeps a demo terminal's Ctrl-C away from Synapse; the
            # caller decides when to stop it.
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Synapse only writes pid_file when daemonizing, so record it ourselves: it
        # lets the next start() find a server orphaned by a crashed parent.
        self.pid_path.write_text(f"{self._proc.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise SynapseError(
                    f"Synapse exited with code {code} during startup\n{self._log_tail()}"
                )
            if self._answers_versions():
                return
            if time.monotonic() >= deadline:
                raise SynapseError(
                    f"Synapse did not answer on {self.base_url} within {timeout:.0f}s\n"
                    f"{self._log_tail()}"
                )
            time.sleep(POLL_INTERVAL)

    def _answers_versions(self) -> bool:
        try:
            with _OPENER.open(self.base_url + _VERSIONS_PATH, timeout=2.0) as resp:
                return resp.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def _log_tail(self) -> str:
        # Config errors go to stderr before logging is set up, so show both files.
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
        """Stop a Synapse left running on this data dir by a parent that died."""
        pid = read_pid(self.pid_path)
        if pid is not None and _is_synapse_for(pid, self.config_path):
            logger.warning("stopping leftover Synapse (pid %d) on %s", pid, self.data_dir)
            if not terminate_foreign(
                pid, lambda p: _is_synapse_for(p, self.config_path), timeout=20.0
            ):
                raise SynapseError(f"could not stop leftover Synapse pid {pid}")
        self.pid_path.unlink(missing_ok=True)

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

    def override_ratelimit(self, admin_token: str, user_id: str) -> None:
        """Exempt one user from message rate limiting (needs an admin token)."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id, safe='')}/override_ratelimit"
        self._call("POST", path, {"messages_per_second": 0, "burst_count": 0}, token=admin_token)

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
        server_name, port, secret = _read_existing_config(config_path, port)
    else:
        server_name, port, secret = SERVER_NAME, port or free_port(), secrets.token_hex(32)
        config = _homeserver_config(data_dir, port, secret, rate_limits_lifted)
        _write_yaml(config_path, config, private=True)
    _ensure_log_config(data_dir)
    _ensure_signing_key(data_dir / SIGNING_KEY_NAME)
    (data_dir / MEDIA_DIR_NAME).mkdir(exist_ok=True)
    return SynapseServer(
        data_dir=data_dir, port=port, server_name=server_name, registration_secret=secret
    )


# -- config files ----------------------------------------------------------------------


def _homeserver_config(
    data_dir: Path, port: int, secret: str, rate_limits_lifted: bool
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(data_dir / PID_NAME),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / DATABASE_NAME)}},
        "log_config": str(data_dir / LOG_CONFIG_NAME),
        "media_store_path": str(data_dir / MEDIA_DIR_NAME),
        "signing_key_path": str(data_dir / SIGNING_KEY_NAME),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "presence": {"enabled": True},
        # The default (12) costs ~0.3 s per register/login; this is a throwaway server.
        "bcrypt_rounds": 4,
    }
    if rate_limits_lifted:
        config.update(_lifted_ratelimits())
    return config


def _lifted_ratelimits() -> dict[str, Any]:
    limits: dict[str, Any] = {"rc_federation": dict(_LIFTED_FEDERATION)}
    for key in LIFTED_RATELIMIT_KEYS:
        *parents, leaf = key.split(".")
        node = limits
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = dict(_LIFTED_LIMIT)
    return limits


def _log_config(log_path: Path) -> dict[str, Any]:
    # WARNING everywhere, access log included: the demo terminal and test output
    # should not drown in request lines.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_path),
                "formatter": "plain",
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.access": {"level": "WARNING"}},
        "root": {"level": "WARNING", "handlers": ["file"]},
    }


def _read_existing_config(config_path: Path, wanted_port: int | None) -> tuple[str, int, str]:
    import yaml  # a Synapse dependency

    config = yaml.safe_load(config_path.read_text())
    port = int(config["listeners"][0]["port"])
    if wanted_port is not None and wanted_port != port:
        logger.warning(
            "ignoring port %d: %s already configures port %d", wanted_port, config_path, port
        )
    return config["server_name"], port, config["registration_shared_secret"]


def _ensure_log_config(data_dir: Path) -> None:
    path = data_dir / LOG_CONFIG_NAME
    if not path.exists():
        _write_yaml(path, _log_config(data_dir / LOG_NAME))


def _ensure_signing_key(path: Path) -> None:
    if path.exists():
        return
    from signedjson.key import generate_signing_key, write_signing_keys

    key = generate_signing_key("a_" + secrets.token_hex(2))
    with path.open("w") as stream:
        write_signing_keys(stream, [key])
    path.chmod(0o600)


def _write_yaml(path: Path, data: dict[str, Any], *, private: bool = False) -> None:
    import yaml  # a Synapse dependency

    header = "# Written by bridge.devserver.synapse for a private development homeserver.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    if private:
        # Holds the registration secret, which is enough to mint admin users.
        path.chmod(0o600)


# -- HTTP helpers ------------------------------------------------------------------------


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


