"""The visitor's language and texts: which language a browser's list gets, which text wins
(built-in, the admin's shared, the admin's per language), and what `check` names."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.cli import config_warnings
from bridge.config import Config, parse_config
from bridge.i18n import (
    BUILT_IN_LANGUAGES,
    built_in,
    missing_texts,
    pick_language,
    text_direction,
    visitor_strings,
)

pytestmark = pytest.mark.fast


def config(**widget: Any) -> Config:
    extra = widget.pop("extra", {})
    return parse_config({
        "backend": {"type": "matrix"},
        "matrix": {"homeserver": "https://matrix.example.com", "user_id": "@bot:example.com",
                   "password": "secret-password-1"},
        "agents": [{"id": "alice", "address": "@alice:example.com"}],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"]}],
        "widget": widget,
        **extra,
    })


@pytest.mark.parametrize(("accepted", "picked"), [
    ("de-AT,de,en-US", "de"), ("fr-FR,fr,hu", "hu"), ("fr", "en"), ("", "en"),
    ("PL", "pl"), (" tr , en", "tr"), ("lv-LV", "lv")])
def test_the_first_language_the_widget_speaks(accepted: str, picked: str) -> None:
    assert pick_language(accepted, config()) == picked


def test_a_language_the_admin_wrote_is_spoken_and_the_default_is_theirs() -> None:
    admin = config(default_lang="de", strings={"ar": {"start": "ابدأ"}})
    assert pick_language("ar-EG,en", admin) == "ar"
    assert pick_language("fr", admin) == "de"
    assert visitor_strings(admin, "ar")["start"] == "ابدأ"
    assert visitor_strings(admin, "ar")["send"] == built_in("de")["send"]  # the default's
    assert (text_direction("ar"), text_direction("he-IL"), text_direction("de")) == (
        "rtl", "rtl", "ltr")


def test_which_text_wins() -> None:
    admin = config(title="Ask us", strings={"start": "Go", "consent": "I agree.",
                                            "de": {"send": "Ab damit"}})
    english = visitor_strings(admin, "en")
    assert (english["title"], english["start"], english["consent"]) == ("Ask us", "Go",
                                                                        "I agree.")
    german = visitor_strings(admin, "de")
    assert german["start"] == built_in("de")["start"]  # built-in German over shared English
    assert german["title"] == built_in("de")["title"]
    assert german["consent"] == "I agree."  # no German one: better than none
    assert german["send"] == "Ab damit"  # the admin's German over everything


def test_every_built_in_language_has_every_english_text() -> None:
    for lang in BUILT_IN_LANGUAGES:
        assert built_in(lang).keys() == built_in("en").keys(), lang


def test_check_names_what_a_configured_language_lacks() -> None:
    admin = config(
        strings={"consent": "I agree.", "de": {"start": "Los"}},
        invitations=[{"text": "Questions?", "translations": {"de": "Fragen?"}},
                     {"text": "Still here?"}],
        extra={"canned": {"hello": "Hello!", "bye": "Bye!", "de": {"hello": "Hallo!"}},
               "queues": [{"id": "support", "name": "Support", "agents": ["alice"],
                           "welcome": "Hi {visitor}!",
                           "translations": {"de": {"name": "Kundendienst"}}}]},
    )
    assert missing_texts(admin) == [
        "widget.strings.de: no de text for consent",
        "queues.support.translations.de: no de text for welcome",
        "widget.invitations[1].translations.de: no de text",
        "canned.de: no de variant of bye",
    ]


def test_check_names_english_gaps_of_a_language_without_built_in_texts() -> None:
    gap, queue = missing_texts(config(strings={"ar": {"start": "ابدأ"}}))
    assert queue == "queues.support.translations.ar: no ar text for name"
    assert gap.startswith("widget.strings.ar: no ar text for ")
    assert "start" not in gap and gap.endswith(" more")


def test_a_complete_configuration_has_no_warnings() -> None:
    complete = config(strings={"de": {"title": "Fragen?"}}, extra={"queues": [
        {"id": "support", "name": "Support", "agents": ["alice"],
         "translations": {"de": {"name": "Kundendienst"}}}]})
    assert config_warnings(complete) == []


def test_check_warns_of_a_colour_white_text_does_not_read_on() -> None:
    [warning] = config_warnings(config(color="#ffe14d"))
    assert warning.startswith("widget.color: white text on #ffe14d has a contrast of 1.")
    assert config_warnings(config(color="#1d4ed8")) == []
