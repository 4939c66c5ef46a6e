"""Load `config.toml` into frozen, validated settings.

Every problem is reported with its dotted key path and the expected form, all at once, so an
admin fixes the file in one pass (`livechat-bridge check`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.core.routing import Hours, parse_hours
from bridge.core.templates import TemplateError, render
from bridge.mail import SmtpConfig, parse_smtp

MATRIX_USER_RE = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
BARE_JID_RE = re.compile(r"^[^@/\s\"&'/:<>]+@[A-Za-z0-9.\-]+$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
PLACEHOLDER_SECRETS = {"", "...", "change-me", "changeme", "secret", "password"}
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

    @property
    def public_origin(self) -> str:
        return normalize_origin(self.public_url)

    @property
    def origins(self) -> frozenset[str]:
        """Every origin whose pages may use the widget: the listed sites and our own."""
        return frozenset((*map(normalize_origin, self.allowed_origins), self.public_origin))


def normalize_origin(url: str) -> str:
    """scheme://host[:port] in the form browsers send: lowercase, no default port."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return f"invalid:{url}"  # matches no configured origin
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


@dataclass(frozen=True)
class StorageConfig:
    path: Path = Path("state/livechat.sqlite3")


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


@dataclass(frozen=True)
class AgentConfig:
    id: str
    address: str
    name: str
    max_chats: int = 3


@dataclass(frozen=True)
class QueueConfig:
    id: str
    name: str
    agents: tuple[str, ...]
    welcome: str = ""
    topic: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    hours: Hours | None = None  # None: always open
    holidays: frozenset[date] = frozenset()
    priority: int = 0
    strategy: str = "least_busy"
    max_waiting: int = 0  # 0: no limit
    agent_priorities: dict[str, int] = field(default_factory=dict)
    helpdesk_email: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    lobby: bool = False  # a room where the queue's agents see waiting chats and !claim them
    offer_message_after_minutes: float = 5.0  # 0: never offer "leave a message" to waiters
    unanswered_to_ticket: bool = True  # a chat that ends unanswered becomes a ticket


@dataclass(frozen=True)
class WidgetConfig:
    title: str = "Chat with us"
    color: str = "#2563eb"
    position: str = "right"
    strings: dict[str, str] = field(default_factory=dict)


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

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def agent_by_address(self, address: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.address == address), None)

    def queue(self, queue_id: str) -> QueueConfig | None:
        return next((q for q in self.queues if q.id == queue_id), None)


T = TypeVar("T")


class _Reader:
    """Reads typed values out of nested TOML tables, collecting problems with key paths."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def table(self, data: dict[str, Any], key: str, path: str, required: bool) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(path, "missing table (expected [" + path + "])")
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {type(value).__name__}")
            return {}
        return value

    def get(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        kind: type[T],
        default: T | None = None,
        *,
        required: bool = False,
        check: Callable[[T], str | None] | None = None,
    ) -> T | None:
        full = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.fail(full, f"missing (expected {_kind_name(kind)})")
            return default
        value = data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            self.fail(full, f"expected {_kind_name(kind)}, got {value!r}")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.fail(full, problem)
                return default
        return value

    def unknown_keys(self, data: dict[str, Any], known: set[str], path: str) -> None:
        for key in sorted(set(data) - known):
            self.fail(f"{path}.{key}" if path else key, "unknown key")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list"}.get(
        kind, kind.__name__
    )


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{value!r} is not an http(s) URL (expected e.g. https://chat.example.com)"
    return None


def _origin(value: str) -> str | None:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "#" in value
        or "?" in value
    ):
        return f"{value!r} is not an origin (expected scheme://host[:port], no path)"
    return None


def _listen(value: str) -> str | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        return f"{value!r} is not host:port (expected e.g. 127.0.0.1:8080)"
    return None


def _secret(value: str) -> str | None:
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder (expected the real secret)"
    return None


def _ident(value: str) -> str | None:
    if not ID_RE.fullmatch(value):
        return f"{value!r} is not an id (expected lowercase letters, digits, - or _)"
    return None


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
    r = _Reader()
    r.unknown_keys(
        raw,
        {"server", "storage", "backend", "matrix", "xmpp", "agents", "queues", "canned", "widget",
         "smtp", "identity"},
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
    agents = _agents(r, raw.get("agents", []), backend)
    queues = _queues(r, raw.get("queues", []), agents, backend)
    canned, canned_by_lang = _canned(r, r.table(raw, "canned", "canned", False))
    widget = _widget(r, r.table(raw, "widget", "widget", False))
    smtp_t = r.table(raw, "smtp", "smtp", False)
    smtp = parse_smtp(r, smtp_t) if isinstance(raw.get("smtp"), dict) else None
    identity_t = r.table(raw, "identity", "identity", False)
    r.unknown_keys(identity_t, {"secret"}, "identity")
    identity_secret = r.get(identity_t, "secret", "identity", str, "", check=_secret)
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
    )


def _server(r: _Reader, t: dict[str, Any]) -> ServerConfig:
    r.unknown_keys(
        t, {"listen", "public_url", "allowed_origins", "max_text", "frames_per_10s",
            "idle_timeout_minutes", "admin_token"}, "server"
    )
    listen = r.get(t, "listen", "server", str, "127.0.0.1:8080", check=_listen)
    host, _, port = listen.rpartition(":")
    public_url = r.get(t, "public_url", "server", str, f"http://{listen}", check=_http_url)
    origins = r.get(t, "allowed_origins", "server", list, [])
    for i, origin in enumerate(origins):
        if isinstance(origin, str):
            problem = _origin(origin)
        else:
            problem = f"expected a string, got {origin!r}"
        if problem:
            r.fail(f"server.allowed_origins[{i}]", problem)
    positive = _positive
    return ServerConfig(
        host=host.strip("[]"),
        port=int(port),
        public_url=public_url.rstrip("/"),
        allowed_origins=tuple(o.rstrip("/") for o in origins if isinstance(o, str)),
        max_text=r.get(t, "max_text", "server", int, 4000, check=positive),
        frames_per_10s=r.get(t, "frames_per_10s", "server", int, 40, check=positive),
        idle_timeout_minutes=float(r.get(t, "idle_timeout_minutes", "server", (int, float), 30,
                                         check=_not_negative)),
        admin_token=r.get(t, "admin_token", "server", str, "", check=_admin_token),
    )


def _admin_token(value: str) -> str | None:
    if len(value) < 16:
        return "too short (expected at least 16 characters, e.g. from `openssl rand -hex 16`)"
    return _secret(value)


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a port (expected 1-65535)"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else f"{value} is negative (expected minutes, 0 to switch off)"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"{value} is not positive (expected an integer > 0)"


def _storage(r: _Reader, t: dict[str, Any], base_dir: Path) -> StorageConfig:
    r.unknown_keys(t, {"path"}, "storage")
    path = Path(r.get(t, "path", "storage", str, "state/livechat.sqlite3"))
    return StorageConfig(path=_resolve(path, base_dir))


def _resolve(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else base_dir / path


def _matrix(r: _Reader, t: dict[str, Any], backend: str) -> MatrixConfig:
    p = "matrix"
    r.unknown_keys(
        t, {"homeserver", "user_id", "password", "access_token", "device_id", "device_name"}, p
    )
    homeserver = r.get(t, "homeserver", p, str, "", required=True, check=_http_url)
    user_id = r.get(t, "user_id", p, str, "", required=True, check=_matrix_user)
    password = r.get(t, "password", p, str, None, check=_secret)
    token = r.get(t, "access_token", p, str, None, check=_secret)
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


def _xmpp(r: _Reader, t: dict[str, Any], backend: str, base_dir: Path) -> XmppConfig:
    p = "xmpp"
    r.unknown_keys(t, {"jid", "password", "muc_service", "host", "port", "verify_tls",
                       "ca_file", "plaintext"}, p)
    ca_file = r.get(t, "ca_file", p, str, None)
    return XmppConfig(
        jid=r.get(t, "jid", p, str, "", required=True, check=_bare_jid),
        password=r.get(t, "password", p, str, "", required=True, check=_secret),
        muc_service=r.get(t, "muc_service", p, str, "", required=True),
        host=r.get(t, "host", p, str, None),
        port=r.get(t, "port", p, int, 5222, check=_port),
        verify_tls=r.get(t, "verify_tls", p, bool, True),
        ca_file=None if ca_file is None else _resolve(Path(ca_file), base_dir),
        plaintext=r.get(t, "plaintext", p, bool, False),
    )


def _matrix_user(value: str) -> str | None:
    if MATRIX_USER_RE.fullmatch(value):
        return None
    return f"{value!r} is not a Matrix user id (expected @user:server)"


def _bare_jid(value: str) -> str | None:
    if BARE_JID_RE.fullmatch(value):
        return None
    return f"{value!r} is not a bare JID (expected user@server)"


def _address_check(backend: str) -> Callable[[str], str | None]:
    return _matrix_user if backend == "matrix" else _bare_jid


def _agents(r: _Reader, items: Any, backend: str) -> list[AgentConfig]:
    if not isinstance(items, list):
        r.fail("agents", "expected an array of tables ([[agents]])")
        return []
    agents: list[AgentConfig] = []
    seen: set[str] = set()
    addresses: set[str] = set()
    for i, t in enumerate(items):
        p = f"agents[{i}]"
        if not isinstance(t, dict):
            r.fail(p, "expected a table")
            continue
        r.unknown_keys(t, {"id", "address", "name", "max_chats"}, p)
        agent_id = r.get(t, "id", p, str, "", required=True, check=_ident)
        if agent_id and agent_id in seen:
            r.fail(f"{p}.id", f"{agent_id!r} is declared twice (expected unique ids)")
        seen.add(agent_id)
        address = r.get(t, "address", p, str, "", required=True, check=_address_check(backend))
        if address and address in addresses:
            r.fail(f"{p}.address", f"{address!r} belongs to another agent (expected one agent "
                   "per address)")
        addresses.add(address)
        agents.append(
            AgentConfig(
                id=agent_id,
                address=address,
                name=r.get(t, "name", p, str, ""),
                max_chats=r.get(t, "max_chats", p, int, 3, check=_positive),
            )
        )
    return agents


def _queue_agent(
    r: _Reader, path: str, ref: Any, agents: list[AgentConfig], backend: str
) -> str | None:
    """Resolve a queue member given by agent id or by address to the agent id."""
    if not isinstance(ref, str):
        r.fail(path, f"expected a string, got {ref!r}")
        return None
    for agent in agents:
        if ref in (agent.id, agent.address):
            return agent.id
    if "@" in ref:
        problem = _address_check(backend)(ref)
        if problem:
            r.fail(path, problem)
            return None
    r.fail(path, f"{ref!r} is not a declared agent (expected an id or address from [[agents]])")
    return None


def _queues(r: _Reader, items: Any, agents: list[AgentConfig], backend: str) -> list[QueueConfig]:
    if not isinstance(items, list) or not items:
        r.fail("queues", "expected at least one [[queues]] table")
        return []
    queues: list[QueueConfig] = []
    seen: set[str] = set()
    for i, t in enumerate(items):
        p = f"queues[{i}]"
        if not isinstance(t, dict):
            r.fail(p, "expected a table")
            continue
        r.unknown_keys(t, {"id", "name", "agents", "welcome", "topic", "timezone", "hours",
                           "holidays", "priority", "strategy", "max_waiting",
                           "helpdesk_email", "webhook_url", "webhook_secret", "lobby",
                           "offer_message_after_minutes", "unanswered_to_ticket"}, p)
        queue_id = r.get(t, "id", p, str, "", required=True, check=_ident)
        if queue_id and queue_id in seen:
            r.fail(f"{p}.id", f"{queue_id!r} is declared twice (expected unique ids)")
        seen.add(queue_id)
        members = r.get(t, "agents", p, list, [], required=True)
        priorities: dict[str, int] = {}
        resolved = []
        for j, member in enumerate(members):
            ref, priority = member, 0
            if isinstance(member, dict):  # { id = "bob", priority = 5 }
                r.unknown_keys(member, {"id", "priority"}, f"{p}.agents[{j}]")
                ref, priority = member.get("id"), member.get("priority", 0)
                if not isinstance(priority, int) or isinstance(priority, bool):
                    r.fail(f"{p}.agents[{j}].priority", f"expected an integer, got {priority!r}")
                    priority = 0
            agent_id = _queue_agent(r, f"{p}.agents[{j}]", ref, agents, backend)
            if agent_id:
                resolved.append(agent_id)
                if priority:
                    priorities[agent_id] = priority
        name = r.get(t, "name", p, str, queue_id) or queue_id
        strategy = r.get(t, "strategy", p, str, "least_busy")
        if strategy not in STRATEGIES:
            r.fail(f"{p}.strategy", f"{strategy!r} is not a strategy (expected one of "
                   f"{', '.join(STRATEGIES)})")
        queues.append(
            QueueConfig(
                id=queue_id,
                name=name,
                agents=tuple(resolved),
                welcome=r.get(t, "welcome", p, str, "", check=_welcome),
                topic=r.get(t, "topic", p, str, name),
                timezone=_timezone(r, t, p),
                hours=_hours(r, t, p),
                holidays=_holidays(r, t, p),
                priority=r.get(t, "priority", p, int, 0),
                strategy=strategy,
                max_waiting=r.get(t, "max_waiting", p, int, 0, check=_not_negative),
                agent_priorities=priorities,
                helpdesk_email=r.get(t, "helpdesk_email", p, str, "", check=_mailbox),
                webhook_url=r.get(t, "webhook_url", p, str, "", check=_http_url),
                webhook_secret=r.get(t, "webhook_secret", p, str, "", check=_secret),
                lobby=r.get(t, "lobby", p, bool, False),
                offer_message_after_minutes=float(r.get(
                    t, "offer_message_after_minutes", p, (int, float), 5.0,
                    check=_not_negative)),
                unanswered_to_ticket=r.get(t, "unanswered_to_ticket", p, bool, True),
            )
        )
        if queues[-1].webhook_url and not queues[-1].webhook_secret:
            r.fail(f"{p}.webhook_secret", "missing (expected a secret to sign the webhook)")
    return queues


STRATEGIES = ("least_busy", "broadcast")


def _timezone(r: _Reader, t: dict[str, Any], p: str) -> ZoneInfo:
    name = r.get(t, "timezone", p, str, "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder, not a zone
        r.fail(f"{p}.timezone", f"{name!r} is not a time zone (expected e.g. Europe/Budapest)")
        return ZoneInfo("UTC")


def _hours(r: _Reader, t: dict[str, Any], p: str) -> Hours | None:
    spec = r.get(t, "hours", p, dict, None)
    if spec is None:
        return None
    try:
        return parse_hours(spec)
    except ValueError as exc:
        r.fail(f"{p}.hours", str(exc))
        return None


def _holidays(r: _Reader, t: dict[str, Any], p: str) -> frozenset[date]:
    days: set[date] = set()
    for j, value in enumerate(r.get(t, "holidays", p, list, [])):
        try:
            if isinstance(value, datetime):
                raise ValueError  # a moment, not a day: say what is expected
            if not isinstance(value, date):
                if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    raise ValueError
                value = date.fromisoformat(value)
            days.add(value)
        except ValueError:
            r.fail(f"{p}.holidays[{j}]", f"{value!r} is not a date (expected YYYY-MM-DD)")
    return frozenset(days)


WELCOME_PLACEHOLDERS = {"visitor", "queue", "agent"}


def _welcome(value: str) -> str | None:
    try:
        render(value, {name: "" for name in WELCOME_PLACEHOLDERS})
    except TemplateError as exc:
        return str(exc)
    return None


CANNED_PLACEHOLDERS = {"visitor", "visitor_email", "agent", "queue", "site"}
LANG_RE = re.compile(r"[a-z]{2,3}")


def _canned_text(r: _Reader, path: str, text: Any) -> str | None:
    if not isinstance(text, str):
        r.fail(path, f"expected a string, got {text!r}")
        return None
    try:
        render(text, {name: "" for name in CANNED_PLACEHOLDERS})
    except TemplateError as exc:
        r.fail(path, str(exc))
        return None
    return text


def _canned(r: _Reader, t: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
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


def _widget(r: _Reader, t: dict[str, Any]) -> WidgetConfig:
    p = "widget"
    r.unknown_keys(t, {"title", "color", "position", "strings"}, p)
    strings = r.table(t, "strings", "widget.strings", False)
    for key, value in strings.items():
        if not isinstance(value, str):
            r.fail(f"widget.strings.{key}", f"expected a string, got {value!r}")
    position = r.get(t, "position", p, str, "right")
    if position not in ("left", "right"):
        r.fail("widget.position", f"{position!r} is not a side (expected left or right)")
    return WidgetConfig(
        title=r.get(t, "title", p, str, "Chat with us", check=_one_line),
        color=r.get(t, "color", p, str, "#2563eb", check=_color),
        position=position,
        strings={k: v for k, v in strings.items() if isinstance(v, str)},
    )


def _mailbox(value: str) -> str | None:
    if re.fullmatch(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+", value):
        return None
    return f"{value!r} is not an email address (expected e.g. helpdesk@example.com)"


def _one_line(value: str) -> str | None:
    if any(ch in value for ch in "\r\n\u2028\u2029") or not value.strip():
        return "must be one non-empty line (expected e.g. \"Chat with us\")"
    return None


def _color(value: str) -> str | None:
    return None if COLOR_RE.fullmatch(value) else f"{value!r} is not a color (expected #rrggbb)"
