"""Load `config.toml` into frozen, validated settings.

Every problem is reported with its dotted key path and the expected form, all at once, so an
admin fixes the file in one pass (`livechat-bridge check`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.config_agents import AgentConfig, parse_agents
from bridge.config_chats import ChatsConfig, parse_chats
from bridge.config_files import FilesConfig, parse_files
from bridge.config_limits import LimitsConfig, parse_limits, parse_trusted_proxies
from bridge.config_queues import QueueConfig, parse_queues
from bridge.config_reader import (
    LANG_RE,
    Reader,
    check_bare_jid,
    check_http_url,
    check_listen,
    check_matrix_user,
    check_not_negative,
    check_origin,
    check_port,
    check_positive,
    check_secret,
)
from bridge.config_widget import WidgetConfig, parse_widget
from bridge.core.templates import TemplateError, render
from bridge.mail import SmtpConfig, parse_smtp

BACKENDS = ("matrix", "xmpp")


class ConfigError(Exception):
    """The file is not usable; `problems` lists each one as "key.path: what is wrong"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    allowed_origins: tuple[str, ...] = ()
    max_text: int = 4000
    frames_per_10s: int = 40
    idle_timeout_minutes: float = 30.0  # 0: chats never end by themselves
    admin_token: str = ""  # opens the /stats page; empty: the page is off
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For counts

    @cached_property
    def public_origin(self) -> str:
        return normalize_origin(self.public_url)

    @cached_property
    def origins(self) -> frozenset[str]:
        """Every origin whose pages may use the widget: the listed sites and our own (worked
        out once: every socket and widget request asks)."""
        return frozenset((*map(normalize_origin, self.allowed_origins), self.public_origin))


def site_of(page_url: str, server: ServerConfig) -> str:
    """The site a chat was on, as host[:port]: the page's origin when it is one of the
    configured sites (the page URL comes from the visitor), else the bridge's own."""
    origin = normalize_origin(page_url)
    if origin not in server.origins:
        origin = server.public_origin
    return origin.partition("://")[2]


def normalize_origin(url: str) -> str:
    """scheme://host[:port] in the form browsers send: lowercase, no default port."""
    try:
        parts = urlsplit(url.strip())  # "http://[" is refused here
        port = parts.port
    except ValueError:
        return f"invalid:{url}"  # matches no configured origin
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


@dataclass(frozen=True)
class StorageConfig:
    path: Path = Path("state/livechat.sqlite3")
    files: Path | None = None  # where files lie; None: "files" next to the database

    @property
    def files_dir(self) -> Path:
        return self.files if self.files is not None else self.path.parent / "files"


@dataclass(frozen=True)
class MatrixConfig:
    homeserver: str
    user_id: str
    password: str | None = None
    access_token: str | None = None
    device_id: str | None = None
    device_name: str = "livechat-bridge"


@dataclass(frozen=True)
class XmppConfig:
    jid: str
    password: str
    muc_service: str
    host: str | None = None
    port: int = 5222
    verify_tls: bool = True
    ca_file: Path | None = None
    plaintext: bool = False
    # An agent's client that drops out of a group chat has this long to come back before
    # the chat counts as left (docs/configuration.md); 0: at once.
    rejoin_grace_seconds: float = 120.0
    # Where the upload service's files are downloaded from (an http(s) URL prefix): agents'
    # files at addresses under it are fetched and passed on; "" learns it from the bot's
    # own uploads (docs/files.md).
    upload_url: str = ""


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    storage: StorageConfig
    backend: str
    agents: tuple[AgentConfig, ...]
    queues: tuple[QueueConfig, ...]
    matrix: MatrixConfig | None = None
    xmpp: XmppConfig | None = None
    canned: dict[str, str] = field(default_factory=dict)
    canned_by_lang: dict[str, dict[str, str]] = field(default_factory=dict)
    widget: WidgetConfig = field(default_factory=WidgetConfig)
    smtp: SmtpConfig | None = None
    identity_secret: str = ""  # [identity] secret: HMAC key shared with the host site
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    chats: ChatsConfig = field(default_factory=ChatsConfig)

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def agent_by_address(self, address: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.address == address), None)

    def queue(self, queue_id: str) -> QueueConfig | None:
        return next((q for q in self.queues if q.id == queue_id), None)


def load_config(path: Path) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from exc
    return parse_config(raw, base_dir=path.parent)


def parse_config(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    r = Reader()
    r.unknown_keys(
        raw,
        {"server", "storage", "backend", "matrix", "xmpp", "agents", "queues", "canned", "widget",
         "smtp", "identity", "limits", "files", "chats"},
        "",
    )
    server = _server(r, r.table(raw, "server", "server", False))
    storage = _storage(r, r.table(raw, "storage", "storage", False), base_dir)
    backend_t = r.table(raw, "backend", "backend", True)
    backend = r.get(backend_t, "type", "backend", str, "matrix",
                    required=isinstance(raw.get("backend"), dict))
    if backend not in BACKENDS:
        r.fail("backend.type", f"{backend!r} is not a backend (expected one of {BACKENDS})")
        backend = "matrix"
    matrix_t = r.table(raw, "matrix", "matrix", backend == "matrix")
    matrix = _matrix(r, matrix_t, backend) if isinstance(raw.get("matrix"), dict) else None
    xmpp_t = r.table(raw, "xmpp", "xmpp", backend == "xmpp")
    xmpp = _xmpp(r, xmpp_t, backend, base_dir) if isinstance(raw.get("xmpp"), dict) else None
    agents = parse_agents(r, raw.get("agents", []), backend)
    queues = parse_queues(r, raw.get("queues", []), agents, backend, smtp="smtp" in raw)
    canned, canned_by_lang = _canned(r, r.table(raw, "canned", "canned", False))
    widget = parse_widget(r, r.table(raw, "widget", "widget", False), {q.id for q in queues})
    smtp_t = r.table(raw, "smtp", "smtp", False)
    smtp = parse_smtp(r, smtp_t) if isinstance(raw.get("smtp"), dict) else None
    identity_t = r.table(raw, "identity", "identity", False)
    r.unknown_keys(identity_t, {"secret"}, "identity")
    identity_secret = r.get(identity_t, "secret", "identity", str, "", check=check_secret)
    limits = parse_limits(r, r.table(raw, "limits", "limits", False))
    files = parse_files(r, r.table(raw, "files", "files", False))
    chats = parse_chats(r, r.table(raw, "chats", "chats", False))
    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        server=server,
        storage=storage,
        backend=backend,
        agents=tuple(agents),
        queues=tuple(queues),
        matrix=matrix,
        xmpp=xmpp,
        canned=canned,
        canned_by_lang=canned_by_lang,
        widget=widget,
        smtp=smtp,
        identity_secret=identity_secret,
        limits=limits,
        files=files,
        chats=chats,
    )


def _server(r: Reader, t: dict[str, Any]) -> ServerConfig:
    r.unknown_keys(
        t, {"listen", "public_url", "allowed_origins", "max_text", "frames_per_10s",
            "idle_timeout_minutes", "admin_token", "trusted_proxies"}, "server"
    )
    listen = r.get(t, "listen", "server", str, "127.0.0.1:8080", check=check_listen)
    host, _, port = listen.rpartition(":")
    public_url = r.get(t, "public_url", "server", str, f"http://{listen}", check=check_http_url)
    origins = r.get(t, "allowed_origins", "server", list, [])
    for i, origin in enumerate(origins):
        if isinstance(origin, str):
            problem = check_origin(origin)
        else:
            problem = f"expected a string, got {origin!r}"
        if problem:
            r.fail(f"server.allowed_origins[{i}]", problem)
    return ServerConfig(
        host=host.strip("[]"),
        port=int(port),
        public_url=public_url.rstrip("/"),
        allowed_origins=tuple(o.rstrip("/") for o in origins if isinstance(o, str)),
        max_text=r.get(t, "max_text", "server", int, 4000, check=check_positive),
        frames_per_10s=r.get(t, "frames_per_10s", "server", int, 40, check=check_positive),
        idle_timeout_minutes=float(r.get(t, "idle_timeout_minutes", "server", (int, float), 30,
                                         check=check_not_negative)),
        admin_token=r.get(t, "admin_token", "server", str, "", check=_admin_token),
        trusted_proxies=parse_trusted_proxies(r, t),
    )


def _admin_token(value: str) -> str | None:
    if len(value) < 16:
        return "too short (expected at least 16 characters, e.g. from `openssl rand -hex 16`)"
    return check_secret(value)


def _storage(r: Reader, t: dict[str, Any], base_dir: Path) -> StorageConfig:
    r.unknown_keys(t, {"path", "files"}, "storage")
    path = Path(r.get(t, "path", "storage", str, "state/livechat.sqlite3"))
    files = r.get(t, "files", "storage", str, None)
    return StorageConfig(path=_resolve(path, base_dir),
                         files=None if files is None else _resolve(Path(files), base_dir))


def _resolve(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else base_dir / path


def _matrix(r: Reader, t: dict[str, Any], backend: str) -> MatrixConfig:
    p = "matrix"
    r.unknown_keys(
        t, {"homeserver", "user_id", "password", "access_token", "device_id", "device_name"}, p
    )
    homeserver = r.get(t, "homeserver", p, str, "", required=True, check=check_http_url)
    user_id = r.get(t, "user_id", p, str, "", required=True, check=check_matrix_user)
    password = r.get(t, "password", p, str, None, check=check_secret)
    token = r.get(t, "access_token", p, str, None, check=check_secret)
    if "password" not in t and "access_token" not in t:
        r.fail(p, "needs password or access_token (expected one of them)")
    return MatrixConfig(
        homeserver=homeserver.rstrip("/"),
        user_id=user_id,
        password=password,
        access_token=token,
        device_id=r.get(t, "device_id", p, str, None),
        device_name=r.get(t, "device_name", p, str, "livechat-bridge"),
    )


def _xmpp(r: Reader, t: dict[str, Any], backend: str, base_dir: Path) -> XmppConfig:
    p = "xmpp"
    r.unknown_keys(t, {"jid", "password", "muc_service", "host", "port", "verify_tls",
                       "ca_file", "plaintext", "rejoin_grace_seconds", "upload_url"}, p)
    ca_file = r.get(t, "ca_file", p, str, None)
    return XmppConfig(
        jid=r.get(t, "jid", p, str, "", required=True, check=check_bare_jid),
        password=r.get(t, "password", p, str, "", required=True, check=check_secret),
        muc_service=r.get(t, "muc_service", p, str, "", required=True),
        host=r.get(t, "host", p, str, None),
        port=r.get(t, "port", p, int, 5222, check=check_port),
        verify_tls=r.get(t, "verify_tls", p, bool, True),
        ca_file=None if ca_file is None else _resolve(Path(ca_file), base_dir),
        plaintext=r.get(t, "plaintext", p, bool, False),
        rejoin_grace_seconds=float(r.get(t, "rejoin_grace_seconds", p, (int, float), 120,
                                         check=check_not_negative)),
        upload_url=r.get(t, "upload_url", p, str, "", check=_check_upload_url),
    )


def _check_upload_url(value: str) -> str | None:
    return None if value == "" else check_http_url(value)


CANNED_PLACEHOLDERS = {"visitor", "visitor_email", "agent", "queue", "site"}


def _canned_text(r: Reader, path: str, text: Any) -> str | None:
    if not isinstance(text, str):
        r.fail(path, f"expected a string, got {text!r}")
        return None
    try:
        render(text, {name: "" for name in CANNED_PLACEHOLDERS})
    except TemplateError as exc:
        r.fail(path, str(exc))
        return None
    return text


def _canned(r: Reader, t: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Shared canned replies, and per language ([canned.de]) the ones that replace them for
    visitors whose browser asks for that language."""
    shared: dict[str, str] = {}
    by_lang: dict[str, dict[str, str]] = {}
    for name, value in t.items():
        if isinstance(value, dict):
            if not LANG_RE.fullmatch(name):
                r.fail(f"canned.{name}", "is not a language code (expected e.g. [canned.de])")
                continue
            texts = {k: v for k, v in ((k, _canned_text(r, f"canned.{name}.{k}", v))
                                       for k, v in value.items()) if v is not None}
            by_lang[name] = texts
        elif (text := _canned_text(r, f"canned.{name}", value)) is not None:
            shared[name] = text
    return shared, by_lang
