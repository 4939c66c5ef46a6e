"""The visitor changes their own last line: the `edit` and `delete` frames, and whether a
change may be made now. Pure: the time comes in as `now`, the line as the store has it.

Only the visitor's newest line (their newest text or file, whatever came after it from the
agents) may change, only while the chat is open and only for `[chats]
visitor_edit_seconds` after it was sent; a file can be deleted, not edited. A change
repeated (the same text again, a delete of a line already deleted) is answered as if made
and changes nothing, whenever it comes: a widget that resends after a reconnect is not
told off for what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.core.models import Item, ItemKind
from bridge.core.untrusted import ProtocolError, field_of, line_text


@dataclass(frozen=True)
class EditFrame:
    """New text for the visitor's line `seq`."""

    seq: int
    text: str


@dataclass(frozen=True)
class DeleteFrame:
    """The visitor takes back their line `seq`."""

    seq: int


def _seq(data: dict[str, Any]) -> int:
    seq: int = field_of(data, "seq", int)
    if seq < 0:
        raise ProtocolError("bad_field", "field 'seq' must not be negative")
    return seq


def parse_edit(data: dict[str, Any], max_text: int, user_agent: str = "") -> EditFrame:
    seq = _seq(data)
    return EditFrame(seq=seq, text=line_text(field_of(data, "text", str), max_text))


def parse_delete(data: dict[str, Any], max_text: int, user_agent: str = "") -> DeleteFrame:
    return DeleteFrame(seq=_seq(data))


def judge_change(change: EditFrame | DeleteFrame, newest: Item | None, *, ended: bool,
                 now: float, window_s: float) -> bool:
    """Whether `change` is to be made (True) or is made already (False: a repeat, answered
    as if made). `newest` is the visitor's newest line or file of the chat (deleted or not).

    Raises ProtocolError: `not_editable` (changes are off, `seq` is not the visitor's newest
    line, a file to edit, a deleted line to edit), `ended`, `too_late`.
    """
    if window_s <= 0:
        raise ProtocolError("not_editable", "lines cannot be changed in this chat")
    if newest is None or newest.seq != change.seq:
        raise ProtocolError("not_editable", "only your last message can be changed")
    if newest.deleted_at is not None:
        if isinstance(change, DeleteFrame):
            return False
        raise ProtocolError("not_editable", "that message was deleted")
    if isinstance(change, EditFrame):
        if newest.kind is not ItemKind.TEXT:
            raise ProtocolError("not_editable", "a file cannot be edited; delete it instead")
        if change.text == newest.text:
            return False
    if ended:
        raise ProtocolError("ended", "this conversation has ended")
    if now > newest.ts + window_s:
        raise ProtocolError("too_late", "it is too late to change that message")
    return True
