"""parse_frame and clean_text: every client frame type, valid and invalid, without a socket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.core.models import Page, VisitorInfo
from bridge.core.protocol import (
    MAX_EMAIL,
    MAX_NAME,
    MAX_TITLE,
    MAX_URL,
    EndFrame,
    LeaveMessageFrame,
    MessageFrame,
    PingFrame,
    ProtocolError,
    ReadFrame,
    ResumeFrame,
    StartFrame,
    TypingFrame,
    clean_text,
    parse_frame,
)

MAX_TEXT = 100


def parse(data: Any, *, max_text: int = MAX_TEXT, user_agent: str = "") -> Any:
    return parse_frame(json.dumps(data), max_text=max_text, user_agent=user_agent)


def refused(data: Any, *, max_text: int = MAX_TEXT) -> ProtocolError:
    raw = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, max_text=max_text)
    assert info.value.code  # a stable code always goes into the error frame
    assert str(info.value) == info.value.message
    return info.value


def start(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "start",
        "visitor": {"name": "Ann Smith", "email": "ann@example.com"},
        "topic": "support",
        "page": {
            "url": "https://www.example.com/shop",
            "title": "Shop",
            "referrer": "https://search.example.org/",
        },
        "lang": "en-GB",
    }
    frame.update(overrides)
    return frame


def visitor(**fields: Any) -> dict[str, Any]:
    v: dict[str, Any] = {"name": "Ann", "email": "ann@example.com"}
    v.update(fields)
    return start(visitor=v)


def message(text: Any, client_id: Any = "c-1") -> dict[str, Any]:
    return {"type": "message", "client_id": client_id, "text": text}


# -- envelope ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "{", "not json", '{"type": "ping",}', "{'type': 'ping'}"])
def test_invalid_json_is_bad_json(raw: str) -> None:
    assert refused(raw).code == "bad_json"


@pytest.mark.parametrize("raw", ["[]", '["ping"]', '"ping"', "42", "null", "true"])
def test_non_object_is_bad_frame(raw: str) -> None:
    err = refused(raw)
    assert err.code == "bad_frame"
    assert "object" in err.message


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": None},
        {"type": "hello"},
        {"type": "PING"},
        {"type": 1},
        {"type": ["ping"]},
        {"type": ""},
        {"kind": "ping"},
    ],
)
def test_unknown_type(data: dict[str, Any]) -> None:
    assert refused(data).code == "unknown_type"


def test_unknown_type_message_names_the_type() -> None:
    assert "'hello'" in refused({"type": "hello"}).message


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# -- simple frames -------------------------------------------------------------------------


def test_ping_and_end() -> None:
    assert parse({"type": "ping"}) == PingFrame()
    assert parse({"type": "end"}) == EndFrame()
    assert parse({"type": "leave_message"}) == LeaveMessageFrame()


def test_unknown_extra_fields_are_ignored() -> None:
    assert parse({"type": "ping", "extra": {"x": 1}}) == PingFrame()


@pytest.mark.parametrize("active", [True, False])
def test_typing(active: bool) -> None:
    assert parse({"type": "typing", "active": active}) == TypingFrame(active=active)


def test_typing_missing_active() -> None:
    err = refused({"type": "typing"})
    assert err.code == "missing_field"
    assert "'active'" in err.message


@pytest.mark.parametrize("active", [1, 0, "true", "false", [], {}])
def test_typing_active_must_be_bool(active: Any) -> None:
    err = refused({"type": "typing", "active": active})
    assert err.code == "bad_field"
    assert "'active'" in err.message and "bool" in err.message


def test_typing_null_active_is_missing() -> None:
    assert refused({"type": "typing", "active": None}).code == "missing_field"


@pytest.mark.parametrize("seq", [0, 1, 12345])
def test_read(seq: int) -> None:
    assert parse({"type": "read", "seq": seq}) == ReadFrame(seq=seq)


@pytest.mark.parametrize("seq", [True, False, 1.5, 2.0, "3", [3]])
def test_read_seq_must_be_int_not_bool(seq: Any) -> None:
    err = refused({"type": "read", "seq": seq})
    assert err.code == "bad_field"
    assert "'seq'" in err.message and "int" in err.message


def test_read_missing_seq() -> None:
    assert refused({"type": "read"}).code == "missing_field"


# -- resume --------------------------------------------------------------------------------


def test_resume() -> None:
    assert parse({"type": "resume", "token": "abc", "after": 7}) == ResumeFrame("abc", 7)


def test_resume_after_defaults_to_zero() -> None:
    assert parse({"type": "resume", "token": "abc"}) == ResumeFrame("abc", 0)
    assert parse({"type": "resume", "token": "abc", "after": None}) == ResumeFrame("abc", 0)


@pytest.mark.parametrize("after", [-1, -1000])
def test_resume_negative_after(after: int) -> None:
    err = refused({"type": "resume", "token": "abc", "after": after})
    assert err.code == "bad_field"
    assert "negative" in err.message


@pytest.mark.parametrize("after", [True, "5", 1.0])
def test_resume_after_wrong_type(after: Any) -> None:
    assert refused({"type": "resume", "token": "abc", "after": after}).code == "bad_field"


def test_resume_missing_token() -> None:
    err = refused({"type": "resume", "after": 1})
    assert err.code == "missing_field"
    assert "'token'" in err.message


@pytest.mark.parametrize("token", [123, True, ["abc"]])
def test_resume_token_wrong_type(token: Any) -> None:
    assert refused({"type": "resume", "token": token}).code == "bad_field"


def test_resume_token_length_limit() -> None:
    assert parse({"type": "resume", "token": "t" * 128}).token == "t" * 128
    err = refused({"type": "resume", "token": "t" * 129})
    assert err.code == "bad_token"


# -- message -------------------------------------------------------------------------------


def test_message() -> None:
    assert parse(message("Hello there", "abc_DEF-123")) == MessageFrame(
        client_id="abc_DEF-123", text="Hello there"
    )


def test_message_missing_fields() -> None:
    assert "'client_id'" in refused({"type": "message", "text": "hi"}).message
    assert "'text'" in refused({"type": "message", "client_id": "c"}).message
    assert refused({"type": "message", "text": "hi"}).code == "missing_field"
    assert refused({"type": "message", "client_id": "c"}).code == "missing_field"


@pytest.mark.parametrize("text", [1, True, ["hi"], {"t": "hi"}])
def test_message_text_wrong_type(text: Any) -> None:
    assert refused(message(text)).code == "bad_field"


@pytest.mark.parametrize("client_id", [1, True, ["c"]])
def test_message_client_id_wrong_type(client_id: Any) -> None:
    assert refused(message("hi", client_id)).code == "bad_field"


@pytest.mark.parametrize("client_id", ["a", "A-z_0", "x" * 64])
def test_client_id_accepted(client_id: str) -> None:
    assert parse(message("hi", client_id)).client_id == client_id


@pytest.mark.parametrize(
    "client_id",
    ["", "x" * 65, "a b", "a.b", "a/b", "a:b", "é", "\na", "a\u202e", "<script>", "a+b"],
)
def test_client_id_charset_and_length(client_id: str) -> None:
    err = refused(message("hi", client_id))
    assert err.code == "bad_field"
    assert "'client_id'" in err.message


@pytest.mark.parametrize("client_id", ["a\n", "abc\n"])
def test_client_id_with_trailing_newline_is_refused(client_id: str) -> None:
    # `$` in CLIENT_ID_RE also matches just before a final "\n"; the id must be all charset.
    assert refused(message("hi", client_id)).code == "bad_field"


def test_text_at_max_is_accepted_and_over_max_refused() -> None:
    assert parse(message("a" * MAX_TEXT)).text == "a" * MAX_TEXT
    err = refused(message("a" * (MAX_TEXT + 1)))
    assert err.code == "too_long"
    assert str(MAX_TEXT) in err.message


def test_max_text_is_the_callers_limit() -> None:
    assert parse(message("abcdef"), max_text=6).text == "abcdef"
    assert refused(message("abcdefg"), max_text=6).code == "too_long"


@pytest.mark.parametrize(
    "text", ["", " ", "   \n\t  ", "\r\n\r\n", "\u00a0\u3000", "\u200b", "\x00"]
)
def test_empty_or_whitespace_only_text_is_refused(text: str) -> None:
    assert refused(message(text)).code == "empty"


def test_text_made_only_of_invisible_joiners_is_refused() -> None:
    # A lone zero-width joiner is kept by clean_text (it glues emoji), but on its own it is
    # an invisible, empty message.
    assert refused(message("\u200d")).code == "empty"
    assert refused(message(" \u200d\u200d ")).code == "empty"


def test_text_is_trimmed_but_inner_whitespace_kept() -> None:
    assert parse(message("  two  spaces\n\n  indented\t tab  ")).text == (
        "two  spaces\n\n  indented\t tab"
    )


def test_crlf_and_cr_are_normalised_to_lf() -> None:
    assert parse(message("one\r\ntwo\rthree\nfour")).text == "one\ntwo\nthree\nfour"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("abc\u202edcba", "abcdcba"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u202dleft\u202c", "left"),  # LRO ... PDF
        ("a\u2066b\u2069c", "abc"),  # isolates
        ("a\u200eb\u200fc", "abc"),  # LRM / RLM
        ("a\x00b\x07c\x1bd\x7fe", "abcde"),  # C0 controls and DEL
        ("a\x85b\x9bc", "abc"),  # C1 controls
        ("a\u200bb", "a\u200bb"),  # zero-width space stays: Thai and Khmer use it to break lines
        ("a\ufeffb", "ab"),  # BOM / zero-width no-break space
        ("a\ue000b", "ab"),  # private use
        ("a\x0bb\x0cc", "abc"),  # vertical tab, form feed
    ],
)
def test_control_and_format_characters_are_stripped(raw: str, clean: str) -> None:
    assert parse(message(raw)).text == clean


def test_lone_surrogate_is_stripped() -> None:
    # JSON may carry an unpaired surrogate escape; it must not reach storage.
    frame = parse_frame('{"type":"message","client_id":"c","text":"a\\ud800b"}', max_text=10)
    assert isinstance(frame, MessageFrame)
    assert frame.text == "ab"


@pytest.mark.parametrize(
    "emoji",
    [
        "\U0001f469\u200d\U0001f4bb",  # woman technologist
        "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family
        "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag (variation selector + ZWJ)
        "\U0001f44d\U0001f3fd",  # skin tone modifier
        "\U0001f1ed\U0001f1fa",  # regional indicator flag HU
    ],
)
def test_emoji_sequences_survive(emoji: str) -> None:
    assert parse(message(f"hi {emoji}!")).text == f"hi {emoji}!"


def test_tag_sequence_flag_emoji_survives() -> None:
    # England's flag is an RGI emoji: black flag + TAG letters (category Cf) + CANCEL TAG.
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    assert parse(message(f"go {england}")).text == f"go {england}"


def test_zero_width_non_joiner_survives_in_persian() -> None:
    # ZWNJ (U+200C, Cf) is a required letter-shaping control in Persian, Urdu, Kurdish.
    word = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "mi-khaham", I want
    assert parse(message(word)).text == word


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('x')</script>",
        '<img src=x onerror="alert(1)">',
        "&lt;b&gt; &amp; <b>bold</b>",
        "a < b && c > d",
        "{agent} {{visitor}}",
    ],
)
def test_html_is_kept_as_literal_text(text: str) -> None:
    # Text is text, never HTML: nothing escaped, nothing removed, nothing interpreted.
    frame = parse(message(text))
    assert frame.text == text


def test_text_is_nfc_normalised() -> None:
    decomposed = "A\u0301rvi\u0301ztu\u030bro\u030b"
    assert parse(message(decomposed)).text == "Árvíztűrő"


def test_multiline_text_keeps_newlines_and_tabs() -> None:
    assert parse(message("a\n\tb")).text == "a\n\tb"


def test_non_ascii_text_is_kept() -> None:
    text = "Árvíztűrő tükörfúrógép — Łódź, Rīga, İstanbul, 東京, Ελλάδα, עברית, العربية"
    assert parse(message(text)).text == text


# -- start ---------------------------------------------------------------------------------


def test_start_full() -> None:
    frame = parse(start(), user_agent="Mozilla/5.0 Test")
    assert frame == StartFrame(
        visitor=VisitorInfo(
            name="Ann Smith", email="ann@example.com", lang="en-GB", user_agent="Mozilla/5.0 Test"
        ),
        topic="support",
        page=Page(
            url="https://www.example.com/shop",
            title="Shop",
            referrer="https://search.example.org/",
        ),
    )


def test_start_minimal() -> None:
    frame = parse({"type": "start", "visitor": {"name": "Ann", "email": "a@b.co"}})
    assert frame == StartFrame(
        visitor=VisitorInfo(name="Ann", email="a@b.co", lang="", user_agent=""),
        topic=None,
        page=Page(),
    )


def test_start_missing_visitor() -> None:
    err = refused({"type": "start"})
    assert err.code == "missing_field"
    assert "'visitor'" in err.message


@pytest.mark.parametrize("value", ["Ann", ["Ann"], 1, True])
def test_start_visitor_must_be_object(value: Any) -> None:
    assert refused(start(visitor=value)).code == "bad_field"


def test_start_missing_name_and_email() -> None:
    assert refused(start(visitor={"email": "a@b.co"})).code == "missing_field"
    assert refused(start(visitor={"name": "Ann"})).code == "missing_field"
    assert "'email'" in refused(start(visitor={"name": "Ann"})).message


@pytest.mark.parametrize("name", ["", "   ", "\u202e", "\x00\x01", "\n"])
def test_start_empty_name(name: str) -> None:
    err = refused(visitor(name=name))
    assert err.code == "missing_field"
    assert "visitor.name" in err.message


@pytest.mark.parametrize("name", [1, True, ["Ann"], {"first": "Ann"}])
def test_start_name_wrong_type(name: Any) -> None:
    assert refused(visitor(name=name)).code == "bad_field"


def test_start_name_length() -> None:
    assert parse(visitor(name="n" * MAX_NAME)).visitor.name == "n" * MAX_NAME
    err = refused(visitor(name="n" * (MAX_NAME + 1)))
    assert err.code == "too_long"
    assert "visitor.name" in err.message


@pytest.mark.parametrize("name", ["Árvíztűrő Tükörfúrógép", "Łukasz", "Kārlis", "Şükrü", "李小龍"])
def test_start_unicode_names_are_kept(name: str) -> None:
    assert parse(visitor(name=name)).visitor.name == name


def test_start_decomposed_name_is_nfc() -> None:
    assert parse(visitor(name="S\u0327u\u0308kru\u0308")).visitor.name == "Şükrü"


def test_start_name_is_single_line_and_clean() -> None:
    assert parse(visitor(name="Ann\r\nSmith")).visitor.name == "Ann Smith"
    assert parse(visitor(name="Ann\tSmith")).visitor.name == "Ann Smith"
    assert parse(visitor(name="  Ann\u202eSmith  ")).visitor.name == "AnnSmith"


def test_start_name_html_is_literal() -> None:
    assert parse(visitor(name="<b>Ann</b>")).visitor.name == "<b>Ann</b>"


@pytest.mark.parametrize(
    "email", ["ann@example.com", "a.b+tag@sub.example.co.uk", "łukasz@example.pl", "x@y.z"]
)
def test_start_good_email(email: str) -> None:
    assert parse(visitor(email=email)).visitor.email == email


@pytest.mark.parametrize(
    "email",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "a@b@example.com",
        "ann smith@example.com",
        "<ann@example.com>",
        "ann@example.com, bob@example.com",
        'ann"@example.com',
        "ann@example.",
    ],
)
def test_start_bad_email(email: str) -> None:
    err = refused(visitor(email=email))
    assert err.code == "bad_email"
    assert "visitor.email" in err.message


def test_start_email_is_trimmed() -> None:
    assert parse(visitor(email="  ann@example.com \n")).visitor.email == "ann@example.com"


def test_start_email_too_long() -> None:
    email = "a" * (MAX_EMAIL - len("@example.com") + 1) + "@example.com"
    assert len(email) == MAX_EMAIL + 1
    assert refused(visitor(email=email)).code == "too_long"


def test_start_email_wrong_type() -> None:
    assert refused(visitor(email=["ann@example.com"])).code == "bad_field"


@pytest.mark.parametrize("lang", ["en", "hu", "fil", "en-GB", "pt-BR", "zh-Hant-TW", "de-CH-1996"])
def test_start_lang_kept_when_valid(lang: str) -> None:
    assert parse(start(lang=lang)).visitor.lang == lang


@pytest.mark.parametrize(
    "lang", ["", "e", "english", "en_GB", "en-", "12", "en-GB!", "<script>", "en-123456789"]
)
def test_start_lang_dropped_when_invalid(lang: str) -> None:
    assert parse(start(lang=lang)).visitor.lang == ""


def test_start_lang_with_trailing_newline_is_dropped() -> None:
    # LANG_RE ends in `$`, which also matches before a final newline.
    assert parse(start(lang="en\n")).visitor.lang == ""


def test_start_lang_wrong_type_is_refused() -> None:
    assert refused(start(lang=["en"])).code == "bad_field"


def test_start_topic_wrong_type() -> None:
    assert refused(start(topic=3)).code == "bad_field"


def test_start_page_must_be_object() -> None:
    assert refused(start(page="https://x.example")).code == "bad_field"


def test_start_page_fields() -> None:
    frame = parse(start(page={"url": "https://a.example/p?q=1", "title": "  Shop\n<Cart>  "}))
    assert frame.page == Page(url="https://a.example/p?q=1", title="Shop <Cart>", referrer="")


@pytest.mark.parametrize(
    ("key", "limit"), [("url", MAX_URL), ("title", MAX_TITLE), ("referrer", MAX_URL)]
)
def test_start_page_field_length(key: str, limit: int) -> None:
    assert getattr(parse(start(page={key: "u" * limit})).page, key) == "u" * limit
    err = refused(start(page={key: "u" * (limit + 1)}))
    assert err.code == "too_long"
    assert f"page.{key}" in err.message


def test_start_page_field_wrong_type() -> None:
    assert refused(start(page={"url": 5})).code == "bad_field"


def test_start_user_agent_is_cleaned_and_capped() -> None:
    ua = "Mozilla\u202e/5.0\r\n" + "x" * 1000
    frame = parse(start(), user_agent=ua)
    assert "\u202e" not in frame.visitor.user_agent
    assert "\n" not in frame.visitor.user_agent
    assert frame.visitor.user_agent.startswith("Mozilla/5.0")
    assert len(frame.visitor.user_agent) <= MAX_TITLE


# -- clean_text directly ---------------------------------------------------------------------


def test_clean_text_single_line_turns_breaks_into_spaces() -> None:
    assert clean_text("a\nb\r\nc\td", multiline=False) == "a b c d"


def test_clean_text_keeps_joiner() -> None:
    assert clean_text("\U0001f469\u200d\U0001f52c") == "\U0001f469\u200d\U0001f52c"
