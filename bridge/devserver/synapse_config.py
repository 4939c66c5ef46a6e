"""The private homeserver's files: homeserver.yaml with the rate limits lifted, the log
config and the signing key (written by bridge/devserver/synapse.py's prepare_synapse)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SERVER_NAME = "localhost"
CONFIG_NAME = "homeserver.yaml"
PID_NAME = "homeserver.pid"
SIGNING_KEY_NAME = "signing.key"
LOG_CONFIG_NAME = "log_config.yaml"
LOG_NAME = "homeserver.log"
DATABASE_NAME = "homeserver.db"
MEDIA_DIR_NAME = "media_store"
MAX_UPLOAD_SIZE = "50M"

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


# -- config files ----------------------------------------------------------------------


def homeserver_config(
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
        # Stated, not left to the defaults (the same in 1.163): the bridge downloads agents'
        # files through the authenticated endpoints, and visitors' files may be this large.
        "enable_authenticated_media": True,
        "max_upload_size": MAX_UPLOAD_SIZE,
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
        config.update(lifted_ratelimits())
    return config


def lifted_ratelimits() -> dict[str, Any]:
    limits: dict[str, Any] = {"rc_federation": dict(_LIFTED_FEDERATION)}
    for key in LIFTED_RATELIMIT_KEYS:
        *parents, leaf = key.split(".")
        node = limits
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = dict(_LIFTED_LIMIT)
    return limits


def log_config(log_path: Path) -> dict[str, Any]:
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


def read_existing_config(config_path: Path, wanted_port: int | None) -> tuple[str, int, str]:
    import yaml  # a Synapse dependency

    config = yaml.safe_load(config_path.read_text())
    port = int(config["listeners"][0]["port"])
    if wanted_port is not None and wanted_port != port:
        logger.warning(
            "ignoring port %d: %s already configures port %d", wanted_port, config_path, port
        )
    return config["server_name"], port, config["registration_shared_secret"]


def ensure_log_config(data_dir: Path) -> None:
    path = data_dir / LOG_CONFIG_NAME
    if not path.exists():
        write_yaml(path, log_config(data_dir / LOG_NAME))


def ensure_signing_key(path: Path) -> None:
    if path.exists():
        return
    from signedjson.key import generate_signing_key, write_signing_keys

    key = generate_signing_key("a_" + secrets.token_hex(2))
    with path.open("w") as stream:
        write_signing_keys(stream, [key])
    path.chmod(0o600)


def write_yaml(path: Path, data: dict[str, Any], *, private: bool = False) -> None:
    import yaml  # a Synapse dependency

    header = "# Written by bridge.devserver.synapse for a private development homeserver.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    if private:
        # Holds the registration secret, which is enough to mint admin users.
        path.chmod(0o600)


# -- HTTP helpers ------------------------------------------------------------------------


