"""Config loading: a valid file gives frozen settings; every problem names its key and form."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.config import (
    AgentConfig,
    Config,
    ConfigError,
    MatrixConfig,
    QueueConfig,
    XmppConfig,
    load_config,
    parse_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

MINIMAL_MATRIX_TOML = """\
[backend]
type = "matrix"

[matrix]
homeserver = "https://matrix.example.com"
user_id = "@support:example.com"
password = "bot-pw-1"

[[agents]]
id = "alice"
address = "@alice:example.com"
name = "Alice"

[[queues]]
id = "support"
name = "Support"
agents = ["alice"]
"""

# A problem reads "dotted.key[0].path: what is wrong (expected ...)" or "...: unknown key".
PROBLEM_RE = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*: .+$")


def matrix_raw() -> dict[str, Any]:
    return {
        "backend": {"type": "matrix"},
        "matrix": {
            "homeserver": "https://matrix.example.com",
            "user_id": "@support:example.com",
            "password": "bot-pw-1",
        },
        "agents": [
            {"id": "alice", "address": "@alice:example.com", "name": "Alice"},
            {"id": "bob", "address": "@bob:example.com", "name": "Bob", "max_chats": 5},
        ],
        "queues": [
            {"id": "support", "name": "Support", "agents": ["alice"]},
            {"id": "sales", "name": "Sales", "agents": ["bob"]},
        ],
    }


def xmpp_raw() -> dict[str, Any]:
    return {
        "backend": {"type": "xmpp"},
        "xmpp": {
            "jid": "support@example.com",
            "password": "bot-pw-1",
            "muc_service": "conference.example.com",
        },
        "agents": [
            {"id": "alice", "address": "alice@example.com", "name": "Alice"},
            {"id": "lukasz", "address": "łukasz@example.pl", "name": "Łukasz"},
        ],
        "queues": [{"id": "support", "agents": ["alice", "łukasz@example.pl"]}],
    }


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.problems
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def only_problem(raw: dict[str, Any]) -> str:
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    return problems[0]


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- valid configs -------------------------------------------------------------------------


def test_minimal_matrix_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL_MATRIX_TOML))
    assert isinstance(config, Config)
    assert config.backend == "matrix"
    assert config.matrix == MatrixConfig(
        homeserver="https://matrix.example.com",
        user_id="@support:example.com",
        password="bot-pw-1",
    )
    assert config.xmpp is None
    assert config.agents == (AgentConfig(id="alice", address="@alice:example.com", name="Alice"),)
    assert config.queues == (
        QueueConfig(id="support", name="Support", agents=("alice",), topic="Support"),
    )
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.server.public_url == "http://127.0.0.1:8080"
    assert config.server.max_text == 4000
    assert config.storage.path == tmp_path / "state" / "livechat.sqlite3"
    assert config.canned == {}
    assert config.widget.position == "right"


def test_config_is_frozen() -> None:
    config = parse_config(matrix_raw())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backend = "xmpp"  # type: ignore[misc]


def test_access_token_instead_of_password() -> None:
    raw = matrix_raw()
    del raw["matrix"]["password"]
    raw["matrix"].update(access_token="syt_real_token", device_id="LIVECHAT1")
    config = parse_config(raw)
    assert config.matrix is not None
    assert config.matrix.password is None
    assert config.matrix.access_token == "syt_real_token"
    assert config.matrix.device_id == "LIVECHAT1"


def test_homeserver_trailing_slash_is_stripped() -> None:
    raw = matrix_raw()
    raw["matrix"]["homeserver"] = "https://matrix.example.com:8448/"
    config = parse_config(raw)
    assert config.matrix is not None
    assert config.matrix.homeserver == "https://matrix.example.com:8448"


def test_server_section() -> None:
    raw = matrix_raw()
    raw["server"] = {
        "listen": "0.0.0.0:9000",
        "public_url": "https://chat.example.com/",
        "allowed_origins": ["https://www.example.com/", "http://localhost:3000"],
        "max_text": 2000,
        "frames_per_10s": 20,
    }
    server = parse_config(raw).server
    assert (server.host, server.port) == ("0.0.0.0", 9000)
    assert server.public_url == "https://chat.example.com"
    assert server.public_origin == "https://chat.example.com"
    assert server.allowed_origins == ("https://www.example.com", "http://localhost:3000")
    assert (server.max_text, server.frames_per_10s) == (2000, 20)


def test_public_origin_drops_path() -> None:
    raw = matrix_raw()
    raw["server"] = {"public_url": "https://example.com:8443/livechat/"}
    server = parse_config(raw).server
    assert server.public_url == "https://example.com:8443/livechat"
    assert server.public_origin == "https://example.com:8443"


def test_ipv6_listen() -> None:
    raw = matrix_raw()
    raw["server"] = {"listen": "[::1]:8081"}
    server = parse_config(raw).server
    assert (server.host, server.port) == ("::1", 8081)
    assert server.public_url == "http://[::1]:8081"


def test_public_url_defaults_to_listen() -> None:
    raw = matrix_raw()
    raw["server"] = {"listen": "127.0.0.1:18080"}
    assert parse_config(raw).server.public_url == "http://127.0.0.1:18080"


def test_queue_members_by_id_or_address_and_defaults() -> None:
    raw = matrix_raw()
    raw["queues"] = [
        {"id": "support", "agents": ["alice", "@bob:example.com"], "welcome": "Hi {visitor}"}
    ]
    queue = parse_config(raw).queues[0]
    assert queue.agents == ("alice", "bob")
    assert queue.name == "support"
    assert queue.topic == "support"
    assert queue.welcome == "Hi {visitor}"


def test_queue_topic_defaults_to_name_and_can_be_set() -> None:
    raw = matrix_raw()
    raw["queues"][0]["topic"] = "Orders and delivery"
    config = parse_config(raw)
    assert config.queues[0].topic == "Orders and delivery"
    assert config.queues[1].topic == "Sales"


def test_queue_with_no_agents_is_allowed() -> None:
    raw = matrix_raw()
    raw["queues"][0]["agents"] = []  # its tickets go to a help desk's webhook instead
    raw["queues"][0] |= {"webhook_url": "https://helpdesk.example.com/hook",
                         "webhook_secret": "hook-secret-1"}
    assert parse_config(raw).queues[0].agents == ()


def test_lookups() -> None:
    config = parse_config(matrix_raw())
    assert config.agent("bob") is not None
    assert config.agent("bob").max_chats == 5  # type: ignore[union-attr]
    assert config.agent("carol") is None
    assert config.agent_by_address("@alice:example.com") == config.agent("alice")
    assert config.agent_by_address("alice") is None
    assert config.queue("sales") is config.queues[1]
    assert config.queue("nope") is None


def test_canned_and_widget() -> None:
    raw = matrix_raw()
    raw["canned"] = {"greeting": "Hello {visitor}, I'm {agent}.", "bye": "Bye!"}
    raw["widget"] = {
        "title": "Segítség",
        "color": "#A1b2C3",
        "position": "left",
        "strings": {"send": "Küldés"},
    }
    config = parse_config(raw)
    assert config.canned == {"greeting": "Hello {visitor}, I'm {agent}.", "bye": "Bye!"}
    assert config.widget.title == "Segítség"
    assert config.widget.color == "#A1b2C3"
    assert config.widget.position == "left"
    assert config.widget.strings == {"send": "Küldés"}


def test_xmpp_backend_with_jids() -> None:
    config = parse_config(xmpp_raw())
    assert config.backend == "xmpp"
    assert config.matrix is None
    assert config.xmpp == XmppConfig(
        jid="support@example.com", password="bot-pw-1", muc_service="conference.example.com"
    )
    assert config.queues[0].agents == ("alice", "lukasz")
    assert config.agent_by_address("łukasz@example.pl") == config.agent("lukasz")


def test_xmpp_options() -> None:
    raw = xmpp_raw()
    raw["xmpp"].update(host="xmpp.example.com", port=5223, verify_tls=False)
    xmpp = parse_config(raw).xmpp
    assert xmpp is not None
    assert (xmpp.host, xmpp.port, xmpp.verify_tls) == ("xmpp.example.com", 5223, False)
    assert xmpp.rejoin_grace_seconds == 120


def test_xmpp_rejoin_grace() -> None:
    raw = xmpp_raw()
    raw["xmpp"]["rejoin_grace_seconds"] = 0
    xmpp = parse_config(raw).xmpp
    assert xmpp is not None and xmpp.rejoin_grace_seconds == 0
    raw["xmpp"]["rejoin_grace_seconds"] = -5
    assert [p for p in problems_of(raw) if "rejoin_grace" in p] == [
        "xmpp.rejoin_grace_seconds: -5 is negative (expected a number >= 0; 0 switches it off)"]


@pytest.mark.parametrize(
    "user_id",
    ["@alice:example.com", "@a.b_c=d-e/f+g:example.com", "@bob:localhost:8448", "@1:a-b.c"],
)
def test_matrix_user_id_forms_accepted(user_id: str) -> None:
    raw = matrix_raw()
    raw["agents"][0]["address"] = user_id
    assert parse_config(raw).agents[0].address == user_id


# -- files ---------------------------------------------------------------------------------


def test_relative_storage_path_is_resolved_against_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "livechat"
    folder.mkdir(parents=True)
    path = write(folder, MINIMAL_MATRIX_TOML + '\n[storage]\npath = "data/chat.sqlite3"\n')
    assert load_config(path).storage.path == folder / "data" / "chat.sqlite3"


def test_absolute_storage_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "db.sqlite3"
    path = write(tmp_path, MINIMAL_MATRIX_TOML + f'\n[storage]\npath = "{target.as_posix()}"\n')
    assert load_config(path).storage.path == target


def test_parse_config_resolves_relative_to_base_dir(tmp_path: Path) -> None:
    raw = matrix_raw()
    raw["storage"] = {"path": "x.sqlite3"}
    assert parse_config(raw, base_dir=tmp_path).storage.path == tmp_path / "x.sqlite3"


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_MATRIX_TOML + "\n[server\nlisten = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}: not valid TOML (")


def test_duplicate_toml_key_is_invalid_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path, MINIMAL_MATRIX_TOML.replace('type = "matrix"', 'type = "matrix"\ntype = "xmpp"')
    )
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read (No such file or directory)"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems[0].startswith(f"{tmp_path}: cannot read (")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    # An admin's editor saved the file as Latin-1/Windows-1250: that is a problem to
    # report like any other, not a UnicodeDecodeError traceback.
    path = tmp_path / "config.toml"
    text = MINIMAL_MATRIX_TOML.replace('name = "Alice"', 'name = "Árvíztűrő"')
    path.write_bytes(text.encode("cp1250"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith(f"{path}: ")


def test_unicode_names_in_utf8_file(tmp_path: Path) -> None:
    text = MINIMAL_MATRIX_TOML.replace('name = "Alice"', 'name = "Kārlis Şükrü"')
    assert load_config(write(tmp_path, text)).agents[0].name == "Kārlis Şükrü"


def test_config_example_toml_loads_cleanly() -> None:
    example = REPO_ROOT / "config.example.toml"
    assert example.is_file(), f"{example} is missing: the design says it documents every key"
    config = load_config(example)
    assert config.queues
    assert config.backend in ("matrix", "xmpp")


# -- error paths: one problem each ---------------------------------------------------------


def test_queue_agent_with_bad_matrix_id_gives_exact_message(tmp_path: Path) -> None:
    text = MINIMAL_MATRIX_TOML + '\n[[queues]]\nid = "sales"\nagents = ["@bob"]\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.problems == [
        "queues[1].agents[0]: '@bob' is not a Matrix user id (expected @user:server)"
    ]


def test_missing_backend_table() -> None:
    raw = matrix_raw()
    del raw["backend"]
    assert only_problem(raw) == "backend: missing table (expected [backend])"


def test_backend_not_a_table() -> None:
    raw = matrix_raw()
    raw["backend"] = "matrix"
    assert only_problem(raw) == "backend: expected a table, got str"


def test_unknown_backend_type() -> None:
    raw = matrix_raw()
    raw["backend"]["type"] = "irc"
    assert only_problem(raw) == (
        "backend.type: 'irc' is not a backend (expected one of ('matrix', 'xmpp'))"
    )


def test_backend_type_wrong_type() -> None:
    raw = matrix_raw()
    raw["backend"]["type"] = 1
    assert only_problem(raw) == "backend.type: expected a string, got 1"


@pytest.mark.parametrize(
    ("raw_path", "key", "expected"),
    [
        ((), "colour", "colour: unknown key"),
        (("server",), "listn", "server.listn: unknown key; did you mean listen?"),
        (("storage",), "file", "storage.file: unknown key; did you mean files?"),
        (("matrix",), "pasword", "matrix.pasword: unknown key; did you mean password?"),
        (("agents", 0), "email", "agents[0].email: unknown key"),
        (("queues", 1), "hourz", "queues[1].hourz: unknown key; did you mean hours?"),
        (("widget",), "size", "widget.size: unknown key; did you mean site?"),
    ],
)
def test_unknown_keys(raw_path: tuple[Any, ...], key: str, expected: str) -> None:
    raw = matrix_raw()
    raw.setdefault("server", {})
    raw.setdefault("storage", {})
    raw.setdefault("widget", {})
    target: Any = raw
    for step in raw_path:
        target = target[step]
    target[key] = "x"
    assert only_problem(raw) == expected


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("server", "max_text", "4000", "server.max_text: expected an integer, got '4000'"),
        ("server", "max_text", True, "server.max_text: expected an integer, got True"),
        ("server", "max_text", 4000.0, "server.max_text: expected an integer, got 4000.0"),
        (
            "server",
            "frames_per_10s",
            0,
            "server.frames_per_10s: 0 is not positive (expected an integer > 0)",
        ),
        ("server", "listen", 8080, "server.listen: expected a string, got 8080"),
        (
            "server",
            "allowed_origins",
            "https://www.example.com",
            "server.allowed_origins: expected a list, got 'https://www.example.com'",
        ),
        ("storage", "path", 1, "storage.path: expected a string, got 1"),
        ("matrix", "password", 1234, "matrix.password: expected a string, got 1234"),
        ("matrix", "device_id", 7, "matrix.device_id: expected a string, got 7"),
        ("widget", "title", ["x"], "widget.title: expected a string, got ['x']"),
    ],
)
def test_wrong_types(section: str, key: str, value: Any, expected: str) -> None:
    raw = matrix_raw()
    raw.setdefault(section, {})[key] = value
    assert only_problem(raw) == expected


@pytest.mark.parametrize("section", ["server", "storage", "matrix", "canned", "widget"])
def test_section_that_is_not_a_table(section: str) -> None:
    raw = matrix_raw()
    raw[section] = "oops"
    problems = problems_of(raw)
    assert f"{section}: expected a table, got str" in problems


def test_agent_max_chats_bool_and_negative() -> None:
    raw = matrix_raw()
    raw["agents"][0]["max_chats"] = True
    raw["agents"][1]["max_chats"] = -1
    assert problems_of(raw) == [
        "agents[0].max_chats: expected an integer, got True",
        "agents[1].max_chats: -1 is not positive (expected an integer > 0)",
    ]


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("localhost", "server.listen: 'localhost' is not host:port (expected e.g. 127.0.0.1:8080)"),
        (":8080", "server.listen: ':8080' is not host:port (expected e.g. 127.0.0.1:8080)"),
        ("host:http", "server.listen: 'host:http' is not host:port (expected e.g. 127.0.0.1:8080)"),
        (
            "host:65536",
            "server.listen: 'host:65536' is not host:port (expected e.g. 127.0.0.1:8080)",
        ),
    ],
)
def test_bad_listen(listen: str, expected: str) -> None:
    raw = matrix_raw()
    raw["server"] = {"listen": listen}
    assert only_problem(raw) == expected


@pytest.mark.parametrize(
    "url", ["matrix.example.com", "ftp://matrix.example.com", "https://", "javascript:alert(1)", ""]
)
def test_bad_homeserver_url(url: str) -> None:
    raw = matrix_raw()
    raw["matrix"]["homeserver"] = url
    assert only_problem(raw) == (
        f"matrix.homeserver: {url!r} is not an http(s) URL (expected e.g. https://chat.example.com)"
    )


def test_bad_public_url() -> None:
    raw = matrix_raw()
    raw["server"] = {"public_url": "chat.example.com"}
    assert only_problem(raw) == (
        "server.public_url: 'chat.example.com' is not an http(s) URL"
        " (expected e.g. https://chat.example.com)"
    )


@pytest.mark.parametrize(
    "origin", ["https://www.example.com/shop", "www.example.com", "file:///tmp/x", "https://"]
)
def test_bad_origin(origin: str) -> None:
    raw = matrix_raw()
    raw["server"] = {"allowed_origins": ["https://ok.example.com", origin]}
    assert only_problem(raw) == (
        f"server.allowed_origins[1]: {origin!r} is not an origin"
        " (expected scheme://host[:port], no path)"
    )


@pytest.mark.parametrize("origin", ["https://www.example.com?x=1", "https://www.example.com#top"])
def test_origin_with_query_or_fragment_is_not_an_origin(origin: str) -> None:
    # A browser's Origin header never carries a query or fragment: such an entry never matches.
    raw = matrix_raw()
    raw["server"] = {"allowed_origins": [origin]}
    assert only_problem(raw).startswith("server.allowed_origins[0]: ")


def test_origin_not_a_string() -> None:
    raw = matrix_raw()
    raw["server"] = {"allowed_origins": ["https://www.example.com", 5]}
    assert only_problem(raw) == "server.allowed_origins[1]: expected a string, got 5"


@pytest.mark.parametrize("secret", ["...", "", "change-me", "CHANGEME", " secret ", "Password"])
def test_placeholder_password(secret: str) -> None:
    raw = matrix_raw()
    raw["matrix"]["password"] = secret
    assert only_problem(raw) == "matrix.password: is a placeholder (expected the real secret)"


def test_placeholder_access_token() -> None:
    raw = matrix_raw()
    del raw["matrix"]["password"]
    raw["matrix"]["access_token"] = "..."
    assert only_problem(raw) == "matrix.access_token: is a placeholder (expected the real secret)"


def test_neither_password_nor_access_token() -> None:
    raw = matrix_raw()
    del raw["matrix"]["password"]
    assert only_problem(raw) == "matrix: needs password or access_token (expected one of them)"


def test_missing_credentials_reported_alongside_other_problems() -> None:
    # "Every problem ... all at once": an unrelated mistake elsewhere must not hide this one.
    raw = matrix_raw()
    del raw["matrix"]["password"]
    raw["server"] = {"listen": "nope"}
    problems = problems_of(raw)
    assert "server.listen: 'nope' is not host:port (expected e.g. 127.0.0.1:8080)" in problems
    assert "matrix: needs password or access_token (expected one of them)" in problems


def test_matrix_required_keys() -> None:
    raw = matrix_raw()
    raw["matrix"] = {"password": "bot-pw-1"}
    assert problems_of(raw) == [
        "matrix.homeserver: missing (expected a string)",
        "matrix.user_id: missing (expected a string)",
    ]


def test_bad_bot_user_id() -> None:
    raw = matrix_raw()
    raw["matrix"]["user_id"] = "support"
    assert only_problem(raw) == (
        "matrix.user_id: 'support' is not a Matrix user id (expected @user:server)"
    )


def test_missing_matrix_table() -> None:
    raw = matrix_raw()
    del raw["matrix"]
    assert only_problem(raw) == "matrix: missing table (expected [matrix])"


def test_empty_matrix_table_is_a_problem() -> None:
    # `[matrix]` present with every key commented out must not pass as "no backend settings".
    raw = matrix_raw()
    raw["matrix"] = {}
    problems = problems_of(raw)
    assert any(p.startswith("matrix") for p in problems), problems


def test_empty_xmpp_table_is_a_problem() -> None:
    raw = xmpp_raw()
    raw["xmpp"] = {}
    problems = problems_of(raw)
    assert any(p.startswith("xmpp") for p in problems), problems


def test_missing_xmpp_table() -> None:
    raw = xmpp_raw()
    del raw["xmpp"]
    assert only_problem(raw) == "xmpp: missing table (expected [xmpp])"


def test_xmpp_problems() -> None:
    raw = xmpp_raw()
    raw["xmpp"] = {"jid": "support@example.com/bot", "password": "...", "verify_tls": "yes"}
    assert problems_of(raw) == [
        "xmpp.jid: 'support@example.com/bot' is not a bare JID (expected user@server)",
        "xmpp.password: is a placeholder (expected the real secret)",
        "xmpp.muc_service: missing (expected a string)",
        "xmpp.verify_tls: expected true or false, got 'yes'",
    ]


def test_xmpp_port_out_of_range() -> None:
    raw = xmpp_raw()
    raw["xmpp"]["port"] = 70000
    problems = problems_of(raw)
    assert len(problems) == 1 and problems[0].startswith("xmpp.port: "), problems


def test_matrix_backend_agent_with_jid_address() -> None:
    raw = matrix_raw()
    raw["agents"][0]["address"] = "alice@example.com"
    raw["queues"][0]["agents"] = []
    assert only_problem(raw) == (
        "agents[0].address: 'alice@example.com' is not a Matrix user id (expected @user:server)"
    )


def test_xmpp_backend_agent_with_matrix_address() -> None:
    raw = xmpp_raw()
    raw["agents"][0]["address"] = "@alice:example.com"
    raw["queues"][0]["agents"] = ["łukasz@example.pl"]
    assert only_problem(raw) == (
        "agents[0].address: '@alice:example.com' is not a bare JID (expected user@server)"
    )


def test_xmpp_queue_member_with_matrix_address() -> None:
    raw = xmpp_raw()
    raw["queues"][0]["agents"] = ["alice", "@bob:example.com"]
    assert only_problem(raw) == (
        "queues[0].agents[1]: '@bob:example.com' is not a bare JID (expected user@server)"
    )


@pytest.mark.parametrize(
    "address",
    [
        "@Alice:example.com",
        "alice:example.com",
        "@alice",
        "@alice:",
        "@al ice:example.com",
        "@alice:exa_mple.com",
    ],
)
def test_bad_matrix_agent_address(address: str) -> None:
    raw = matrix_raw()
    raw["agents"][0]["address"] = address
    raw["queues"][0]["agents"] = []
    assert only_problem(raw) == (
        f"agents[0].address: {address!r} is not a Matrix user id (expected @user:server)"
    )


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("matrix", "user_id"), "@support:example.com\n"),
        (("agents", 0, "address"), "@alice:example.com\n"),
        (("agents", 0, "id"), "alice\n"),
        (("widget", "color"), "#2563eb\n"),
    ],
)
def test_trailing_newline_does_not_pass_validation(where: tuple[Any, ...], value: str) -> None:
    # The checks use `re.match(... $)`, and `$` also matches before a final newline; a TOML
    # "\n" escape (or a multi-line string) must not sneak through.
    raw = matrix_raw()
    raw["widget"] = {}
    target: Any = raw
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    if where[:2] == ("agents", 0):
        raw["queues"][0]["agents"] = []
    problems = problems_of(raw)
    dotted = where[0] + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in where[1:])
    assert any(p.startswith(f"{dotted}: ") for p in problems), problems


@pytest.mark.parametrize("agent_id", ["Alice", "-alice", "al ice", "a" * 33, "", "ålice"])
def test_bad_agent_id(agent_id: str) -> None:
    raw = matrix_raw()
    raw["agents"][0]["id"] = agent_id
    raw["queues"][0]["agents"] = ["@alice:example.com"]
    problems = problems_of(raw)
    assert problems[0] == (
        f"agents[0].id: {agent_id!r} is not an id (expected lowercase letters, digits, - or _)"
    )


def test_duplicate_agent_id() -> None:
    raw = matrix_raw()
    raw["agents"][1]["id"] = "alice"
    raw["queues"][1]["agents"] = []
    assert only_problem(raw) == "agents[1].id: 'alice' is declared twice (expected unique ids)"


def test_duplicate_queue_id() -> None:
    raw = matrix_raw()
    raw["queues"][1]["id"] = "support"
    assert only_problem(raw) == "queues[1].id: 'support' is declared twice (expected unique ids)"


def test_missing_ids_are_not_also_reported_as_duplicates() -> None:
    raw = matrix_raw()
    for agent in raw["agents"]:
        del agent["id"]
    raw["queues"] = [{"agents": []}, {"agents": []}]
    assert problems_of(raw) == [
        "agents[0].id: missing (expected a string)",
        "agents[1].id: missing (expected a string)",
        "queues[0].id: missing (expected a string)",
        "queues[1].id: missing (expected a string)",
    ]


def test_missing_agent_address() -> None:
    raw = matrix_raw()
    del raw["agents"][1]["address"]
    assert only_problem(raw) == "agents[1].address: missing (expected a string)"


def test_agents_not_an_array_of_tables() -> None:
    raw = matrix_raw()
    raw["agents"] = {"id": "alice"}
    raw["queues"] = [{"id": "support", "agents": []}]
    assert only_problem(raw) == "agents: expected an array of tables ([[agents]])"


def test_agent_entry_not_a_table() -> None:
    raw = matrix_raw()
    raw["agents"].append("carol")
    assert only_problem(raw) == "agents[2]: expected a table"


@pytest.mark.parametrize("queues", [None, [], "support"])
def test_no_queues(queues: Any) -> None:
    raw = matrix_raw()
    if queues is None:
        del raw["queues"]
    else:
        raw["queues"] = queues
    assert only_problem(raw) == "queues: expected at least one [[queues]] table"


def test_queue_entry_not_a_table() -> None:
    raw = matrix_raw()
    raw["queues"].append(3)
    assert only_problem(raw) == "queues[2]: expected a table"


def test_queue_agents_missing_or_wrong_type() -> None:
    raw = matrix_raw()
    del raw["queues"][0]["agents"]
    raw["queues"][1]["agents"] = "bob"
    assert problems_of(raw) == [
        "queues[0].agents: missing (expected a list)",
        "queues[1].agents: expected a list, got 'bob'",
    ]


def test_queue_agent_not_declared() -> None:
    raw = matrix_raw()
    raw["queues"][0]["agents"] = ["alice", "carol", "@carol:example.com", 3]
    assert problems_of(raw) == [
        "queues[0].agents[1]: 'carol' is not a declared agent"
        " (expected an id or address from [[agents]])",
        "queues[0].agents[2]: '@carol:example.com' is not a declared agent"
        " (expected an id or address from [[agents]])",
        "queues[0].agents[3]: expected a string, got 3",
    ]


def test_canned_value_not_a_string() -> None:
    raw = matrix_raw()
    raw["canned"] = {"greeting": "Hi", "bye": 3}
    assert only_problem(raw) == "canned.bye: expected a string, got 3"


@pytest.mark.parametrize(
    ("widget", "expected"),
    [
        ({"position": "top"}, "widget.position: 'top' is not a side (expected left or right)"),
        ({"color": "blue"}, "widget.color: 'blue' is not a color (expected #rrggbb)"),
        ({"color": "#abc"}, "widget.color: '#abc' is not a color (expected #rrggbb)"),
        ({"strings": {"send": 1}}, "widget.strings.send: expected a string, got 1"),
        ({"strings": "x"}, "widget.strings: expected a table, got str"),
    ],
)
def test_widget_problems(widget: dict[str, Any], expected: str) -> None:
    raw = matrix_raw()
    raw["widget"] = widget
    assert only_problem(raw) == expected


# -- many problems at once -----------------------------------------------------------------


def test_several_problems_are_reported_at_once() -> None:
    raw = matrix_raw()
    raw["typo"] = 1
    raw["server"] = {"listen": "nope", "allowed_origins": ["https://x.example.com/path"]}
    raw["matrix"]["homeserver"] = "matrix.example.com"
    raw["matrix"]["password"] = "..."
    raw["agents"][0]["address"] = "alice@example.com"
    raw["agents"][1]["id"] = "alice"
    raw["queues"][1]["agents"] = ["@bob"]
    raw["widget"] = {"color": "red"}
    problems = problems_of(raw)
    expected = [
        "typo: unknown key",
        "server.listen: 'nope' is not host:port (expected e.g. 127.0.0.1:8080)",
        "server.allowed_origins[0]: 'https://x.example.com/path' is not an origin"
        " (expected scheme://host[:port], no path)",
        "matrix.homeserver: 'matrix.example.com' is not an http(s) URL"
        " (expected e.g. https://chat.example.com)",
        "matrix.password: is a placeholder (expected the real secret)",
        "agents[0].address: 'alice@example.com' is not a Matrix user id (expected @user:server)",
        "agents[1].id: 'alice' is declared twice (expected unique ids)",
        "queues[1].agents[0]: '@bob' is not a Matrix user id (expected @user:server)",
        "widget.color: 'red' is not a color (expected #rrggbb)",
    ]
    for problem in expected:
        assert problem in problems, (problem, problems)
    assert len(problems) == len(expected), problems
    for problem in problems:
        assert PROBLEM_RE.match(problem), problem
        assert "unknown key" in problem or "expected" in problem, problem


def test_problems_are_the_same_for_toml_and_dict(tmp_path: Path) -> None:
    text = MINIMAL_MATRIX_TOML.replace('"@alice:example.com"', '"alice"').replace(
        'password = "bot-pw-1"', 'password = "..."'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.problems == [
        "matrix.password: is a placeholder (expected the real secret)",
        "agents[0].address: 'alice' is not a Matrix user id (expected @user:server)",
    ]


def test_raw_dict_is_not_modified() -> None:
    raw = matrix_raw()
    before = copy.deepcopy(raw)
    parse_config(raw)
    assert raw == before


# -- welcome templates ---------------------------------------------------------------------


def test_welcome_with_unknown_placeholder_is_reported() -> None:
    raw = matrix_raw()
    raw["queues"][1]["welcome"] = "Hi {vistor}, {agent} is coming"
    problem = only_problem(raw)
    assert problem.startswith("queues[1].welcome: ")
    assert "{vistor}" in problem
    assert "{visitor}" in problem  # names the known ones


def test_welcome_with_stray_brace_is_reported() -> None:
    raw = matrix_raw()
    raw["queues"][0]["welcome"] = "Hi {visitor"
    assert only_problem(raw).startswith("queues[0].welcome: stray '{'")


def test_welcome_with_known_placeholders_and_literal_braces_is_fine() -> None:
    raw = matrix_raw()
    raw["queues"][0]["welcome"] = "Hi {visitor}! {agent} from {queue} {{soon}}"
    assert parse_config(raw).queues[0].welcome == "Hi {visitor}! {agent} from {queue} {{soon}}"


def test_canned_replies_per_language_and_their_errors() -> None:
    raw = matrix_raw()
    raw["canned"] = {"hi": "Hello {visitor}", "de": {"hi": "Hallo {visitor}"}}
    config = parse_config(raw)
    assert config.canned == {"hi": "Hello {visitor}"}
    assert config.canned_by_lang == {"de": {"hi": "Hallo {visitor}"}}
    raw["canned"] = {"hi": "Hello {nobody}", "german": {"hi": "x"}, "fr": {"salut": 3}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    problems = caught.value.problems
    assert problems[0].startswith("canned.hi: unknown placeholder {nobody}")
    assert problems[1] == "canned.german: is not a language code (expected e.g. [canned.de])"
    assert problems[2] == "canned.fr.salut: expected a string, got 3"


def test_admin_token_is_off_by_default_and_must_be_long() -> None:
    assert parse_config(matrix_raw()).server.admin_token == ""
    raw = matrix_raw()
    raw["server"] = {"admin_token": "3f9c2a7be41d08c5"}
    assert parse_config(raw).server.admin_token == "3f9c2a7be41d08c5"
    raw["server"] = {"admin_token": "short"}
    assert only_problem(raw) == ("server.admin_token: too short (expected at least 16 "
                                 "characters, e.g. from `openssl rand -hex 16`)")


def test_widget_strings_per_language() -> None:
    raw = matrix_raw()
    raw["widget"] = {"strings": {"send": "Send it", "de": {"send": "Senden", "title": "Hallo"},
                                 "hu": {"send": "Küldés"}}}
    widget = parse_config(raw).widget
    assert widget.strings == {"send": "Send it"}
    assert widget.strings_in("de-AT") == {"send": "Senden", "title": "Hallo"}
    assert widget.strings_in("HU") == {"send": "Küldés"}
    assert widget.strings_in("fr") == widget.strings_in("") == {"send": "Send it"}


@pytest.mark.parametrize(
    ("strings", "problem"),
    [
        ({"German": {"send": "Senden"}},
         "widget.strings.German: is not a language code (expected e.g. [widget.strings.de])"),
        ({"de": {"send": 1}}, "widget.strings.de.send: expected a string, got 1"),
        ({"send": ["x"]}, "widget.strings.send: expected a string, got ['x']"),
    ],
)
def test_widget_strings_problems(strings: dict[str, Any], problem: str) -> None:
    raw = matrix_raw()
    raw["widget"] = {"strings": strings}
    assert only_problem(raw) == problem


def test_queue_translations() -> None:
    raw = matrix_raw()
    raw["queues"][0].update(name="Support", welcome="Hi {visitor}", translations={
        "de": {"name": "Kundendienst", "welcome": "Hallo {visitor}"}, "fr": {"topic": "Aide"}})
    queue = parse_config(raw).queues[0]
    assert queue.text("name", "de-CH") == "Kundendienst"
    assert queue.text("topic", "de") == "Kundendienst"  # the topic follows the name
    assert queue.text("welcome", "de") == "Hallo {visitor}"
    assert queue.text("name", "fr") == "Support" and queue.text("topic", "fr") == "Aide"
    assert queue.text("welcome", "fr") == "Hi {visitor}"  # falls back to the default
    assert queue.text("name", "") == "Support"


@pytest.mark.parametrize(
    ("translations", "problem"),
    [
        ({"deutsch": {"name": "x"}},
         "queues[0].translations.deutsch: is not a language table (expected e.g. "
         "[queues.translations.de])"),
        ({"de": "Kundendienst"},
         "queues[0].translations.de: is not a language table (expected e.g. "
         "[queues.translations.de])"),
        ({"de": {"nam": "x"}}, "queues[0].translations.de.nam: unknown key; did you mean name?"),
        ({"de": {"welcome": "Hallo {kunde}"}},
         "queues[0].translations.de.welcome: unknown placeholder {kunde} (known: {agent}, "
         "{queue}, {visitor})"),
        ({"de": {"name": "two\nlines"}},
         "queues[0].translations.de.name: must be one non-empty line (expected e.g. \"Chat "
         "with us\")"),
    ],
)
def test_queue_translation_problems(translations: dict[str, Any], problem: str) -> None:
    raw = matrix_raw()
    raw["queues"][0]["translations"] = translations
    assert only_problem(raw) == problem


# -- [limits] and server.trusted_proxies -----------------------------------------------------


def test_limits_defaults_and_values() -> None:
    config = parse_config(matrix_raw())
    assert config.limits.sockets_per_address == 20
    assert config.limits.chats_per_address == 10
    assert config.limits.chats_window_minutes == 10.0
    assert config.limits.transcripts_per_hour == 5
    assert config.limits.uploads_per_hour == 20
    assert config.server.trusted_proxies == ()
    raw = matrix_raw()
    raw["limits"] = {"sockets_per_address": 0, "chats_per_address": 3,
                     "chats_window_minutes": 0.5, "uploads_per_hour": 7}
    raw["server"] = {"trusted_proxies": ["127.0.0.1", " 10.0.0.0/8", "fd00::/8"]}
    config = parse_config(raw)
    assert (config.limits.sockets_per_address, config.limits.chats_per_address,
            config.limits.chats_window_minutes, config.limits.uploads_per_hour) == (0, 3, 0.5, 7)
    assert config.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "fd00::/8")


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"sockets_per_address": -1}, "limits.sockets_per_address: -1 is negative (expected an "
         "integer >= 0; 0 switches the limit off)"),
        ({"chats_per_address": "10"}, "limits.chats_per_address: expected an integer, got '10'"),
        ({"transcripts_per_hour": 2.5},
         "limits.transcripts_per_hour: expected an integer, got 2.5"),
        ({"uploads_per_hour": True}, "limits.uploads_per_hour: expected an integer, got True"),
        ({"chats_window_minutes": 0},
         "limits.chats_window_minutes: 0 is not positive (expected minutes > 0)"),
        ({"chats_window_minutes": "10m"},
         "limits.chats_window_minutes: expected a number, got '10m'"),
        ({"sockets": 5}, "limits.sockets: unknown key"),
    ],
)
def test_limits_problems(limits: dict[str, Any], expected: str) -> None:
    raw = matrix_raw()
    raw["limits"] = limits
    assert only_problem(raw) == expected


def test_limits_not_a_table() -> None:
    raw = matrix_raw()
    raw["limits"] = 5
    assert only_problem(raw) == "limits: expected a table, got int"


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        (["localhost"], "server.trusted_proxies[0]: 'localhost' is not an IP address or network "
         "(expected e.g. \"127.0.0.1\" or \"10.0.0.0/8\", no bits set after the prefix)"),
        (["127.0.0.1", "10.0.0.1/8"], "server.trusted_proxies[1]: '10.0.0.1/8' is not an IP "
         "address or network (expected e.g. \"127.0.0.1\" or \"10.0.0.0/8\", no bits set after "
         "the prefix)"),
        ([8080], "server.trusted_proxies[0]: expected a string, got 8080"),
        ("127.0.0.1", "server.trusted_proxies: expected a list, got '127.0.0.1'"),
    ],
)
def test_trusted_proxies_problems(proxies: Any, expected: str) -> None:
    raw = matrix_raw()
    raw["server"] = {"trusted_proxies": proxies}
    assert only_problem(raw) == expected


# -- did you mean: an unknown key names the nearest known one ------------------------------


@pytest.mark.parametrize(
    ("place", "key", "expected"),
    [
        (("agents", 0), "max_chat", "agents[0].max_chat: unknown key; did you mean max_chats?"),
        (("server",), "publc_url", "server.publc_url: unknown key; did you mean public_url?"),
        ((), "queue", "queue: unknown key; did you mean queues?"),
        (("matrix",), "homeservr", "matrix.homeservr: unknown key; did you mean homeserver?"),
    ],
)
def test_unknown_key_suggests_the_nearest(place: tuple[Any, ...], key: str,
                                          expected: str) -> None:
    raw = matrix_raw()
    raw.setdefault("server", {})
    target: Any = raw
    for step in place:
        target = target[step]
    target[key] = 1
    assert only_problem(raw) == expected


def test_unknown_key_with_nothing_close_suggests_nothing() -> None:
    raw = matrix_raw()
    raw["agents"][0]["favourite_colour"] = "blue"
    assert only_problem(raw) == "agents[0].favourite_colour: unknown key"


def test_check_prints_the_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    text = MINIMAL_MATRIX_TOML.replace('name = "Alice"', 'name = "Alice"\nmax_chat = 2')
    assert main(["check", "-c", str(write(tmp_path, text))]) == 2
    assert "  agents[0].max_chat: unknown key; did you mean max_chats?" in capsys.readouterr().err


# -- every ticket reaches a person (queues' agents, help-desk mail, webhook) ----------------

SMTP = {"host": "smtp.example.com", "from": "Support <support@example.com>"}
NOBODY = ("queues[0]: its tickets (offline messages, unanswered chats) would reach nobody "
          "(expected at least one agent in agents, a helpdesk_email with [smtp], or a "
          "webhook_url)")


def test_helpdesk_email_needs_smtp() -> None:
    raw = matrix_raw()
    raw["queues"][0]["helpdesk_email"] = "helpdesk@example.com"
    assert only_problem(raw) == (
        "queues[0].helpdesk_email: needs [smtp] to send the mail (expected an [smtp] table "
        "with host and from, or no helpdesk_email)")
    raw["smtp"] = SMTP
    assert parse_config(raw).queues[0].helpdesk_email == "helpdesk@example.com"


@pytest.mark.parametrize("lobby", [False, True])  # a lobby's members are the queue's agents
def test_a_queue_whose_tickets_reach_nobody_is_refused(lobby: bool) -> None:
    raw = matrix_raw()
    raw["queues"][0] |= {"agents": [], "lobby": lobby}
    assert only_problem(raw) == NOBODY
    broken = copy.deepcopy(raw)  # a member that is not declared: that is the one problem
    broken["queues"][0]["agents"] = ["carol"]
    assert only_problem(broken) == ("queues[0].agents[0]: 'carol' is not a declared agent "
                                    "(expected an id or address from [[agents]])")
    for reach in ({"agents": ["alice"]}, {"helpdesk_email": "helpdesk@example.com"},
                  {"webhook_url": "https://desk.example.com/hook",
                   "webhook_secret": "hook-secret-1"}):
        fixed = copy.deepcopy(raw) | {"smtp": SMTP}
        fixed["queues"][0] |= reach
        assert parse_config(fixed).queues[0].id == "support", reach
