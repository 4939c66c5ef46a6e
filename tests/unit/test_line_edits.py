"""Whether the visitor may change a line now (bridge.core.line_edits), as tables: every
refusal has its code, every repeat is answered as made, and the frames parse like a
message's text."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bridge.core.line_edits import DeleteFrame, EditFrame, judge_change
from bridge.core.models import ConversationId, FileInfo, Item, ItemKind, Sender
from bridge.core.protocol import ProtocolError, parse_frame

SENT = 1_000.0
WINDOW = 120.0
LINE = Item(conversation_id=ConversationId("c1"), seq=4, kind=ItemKind.TEXT,
            sender=Sender.VISITOR, name="Anna", text="Helo", ts=SENT, client_id="m1")
FILE = replace(LINE, kind=ItemKind.FILE, text="shot.png",
               file=FileInfo(id="f" * 32, sha256="0" * 64, name="shot.png",
                             mimetype="image/png", size=10))
EDITED = replace(LINE, text="Hello", edited_at=SENT + 5)
DELETED = replace(LINE, text="", deleted_at=SENT + 5)


def judge(change: EditFrame | DeleteFrame, newest: Item | None, *, ended: bool = False,
          now: float = SENT + 10, window_s: float = WINDOW) -> bool:
    return judge_change(change, newest, ended=ended, now=now, window_s=window_s)


@pytest.mark.parametrize(("change", "newest"), [
    (EditFrame(4, "Hello"), LINE),
    (EditFrame(4, "Hello again"), EDITED),
    (DeleteFrame(4), LINE),
    (DeleteFrame(4), EDITED),
    (DeleteFrame(4), FILE),  # a file can be taken back
])
def test_the_newest_line_within_the_window_changes(change: EditFrame | DeleteFrame,
                                                   newest: Item) -> None:
    assert judge(change, newest) is True
    assert judge(change, newest, now=SENT + WINDOW) is True  # the last second counts


@pytest.mark.parametrize(("change", "newest", "ended", "now"), [
    (DeleteFrame(4), DELETED, True, SENT + 9999),  # deleted before: fine, whenever
    (EditFrame(4, "Hello"), EDITED, True, SENT + 9999),  # the same text again
    (EditFrame(4, "Helo"), LINE, False, SENT + 10),  # "edited" to what it is
])
def test_a_repeat_is_answered_as_made_and_changes_nothing(
        change: EditFrame | DeleteFrame, newest: Item, ended: bool, now: float) -> None:
    assert judge(change, newest, ended=ended, now=now) is False


@pytest.mark.parametrize(("change", "newest", "ended", "now", "window", "code"), [
    (EditFrame(4, "Hello"), LINE, False, SENT + 10, 0.0, "not_editable"),  # off
    (DeleteFrame(4), LINE, False, SENT + 10, 0.0, "not_editable"),
    (EditFrame(4, "Hello"), None, False, SENT + 10, WINDOW, "not_editable"),  # none yet
    (EditFrame(3, "Hello"), LINE, False, SENT + 10, WINDOW, "not_editable"),  # not the last
    (DeleteFrame(5), LINE, False, SENT + 10, WINDOW, "not_editable"),  # an agent's seq
    (EditFrame(4, "x"), FILE, False, SENT + 10, WINDOW, "not_editable"),  # a file's text
    (EditFrame(4, "Hello"), DELETED, False, SENT + 10, WINDOW, "not_editable"),
    (EditFrame(4, "Hello"), LINE, True, SENT + 10, WINDOW, "ended"),
    (DeleteFrame(4), LINE, True, SENT + 10, WINDOW, "ended"),
    (EditFrame(4, "Hello"), LINE, False, SENT + WINDOW + 0.001, WINDOW, "too_late"),
    (DeleteFrame(4), EDITED, False, SENT + WINDOW + 1, WINDOW, "too_late"),  # from sending
])
def test_refusals_have_their_codes(change: EditFrame | DeleteFrame, newest: Item | None,
                                   ended: bool, now: float, window: float, code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        judge(change, newest, ended=ended, now=now, window_s=window)
    assert refused.value.code == code
    assert refused.value.message


def frame(**fields: Any) -> Any:
    return parse_frame(json.dumps(fields), max_text=20)


def test_the_frames_parse() -> None:
    assert frame(type="edit", seq=4, text=" Hello\r\nthere ") == EditFrame(4, "Hello\nthere")
    assert frame(type="delete", seq=4, text="ignored") == DeleteFrame(4)


@pytest.mark.parametrize(("fields", "code"), [
    ({"type": "edit", "text": "Hello"}, "missing_field"),
    ({"type": "edit", "seq": "4", "text": "Hello"}, "bad_field"),
    ({"type": "edit", "seq": 4.0, "text": "Hello"}, "bad_field"),
    ({"type": "edit", "seq": True, "text": "Hello"}, "bad_field"),
    ({"type": "edit", "seq": -1, "text": "Hello"}, "bad_field"),
    ({"type": "edit", "seq": 2**63, "text": "Hello"}, "bad_field"),
    ({"type": "edit", "seq": 4}, "missing_field"),
    ({"type": "edit", "seq": 4, "text": 7}, "bad_field"),
    ({"type": "edit", "seq": 4, "text": "x" * 21}, "too_long"),
    ({"type": "edit", "seq": 4, "text": " \u200b\n"}, "empty"),
    ({"type": "delete"}, "missing_field"),
    ({"type": "delete", "seq": None}, "missing_field"),
    ({"type": "delete", "seq": [4]}, "bad_field"),
])
def test_bad_frames_are_refused(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        frame(**fields)
    assert refused.value.code == code
