"""Pure pieces of the Matrix backend: the sync filters, an agent's text out of an event (and
the line it corrects), the line a redaction takes back, an error answer as the backend's
exception, and the visitor's draft as one notice edited in place."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from nio import ErrorResponse

from bridge.backends.base import BackendError, BackendUnavailable, RateLimited
from bridge.core.models import RoomRef
from bridge.core.protocol import clean_text

_REPLY_FALLBACK = re.compile(r"^(> .*\n)+\n", re.MULTILINE)
DRAFT_MARK = "✍ "
# Only what the bridge reads: smaller syncs, less parsing, lower latency. Agents' files are
# m.room.message events too (msgtype m.image, m.file, ...): no field is filtered out.
# m.receipt: agents' read receipts (which visitor lines were seen). m.room.redaction: agents
# (or moderators) taking a line back.
SYNC_FILTER: dict[str, Any] = {
    "account_data": {"not_types": ["*"]},
    "presence": {"types": ["m.presence"]},
    "room": {
        "account_data": {"not_types": ["*"]},
        "ephemeral": {"types": ["m.typing", "m.receipt"]},
        "state": {"types": ["m.room.member"]},
        "timeline": {"types": ["m.room.message", "m.room.member", "m.room.redaction",
                               "m.reaction"],
                     "limit": 100},
    },
}
# No timeline at all: neither old lines nor old redactions are replayed on a first start.
FIRST_SYNC_FILTER: dict[str, Any] = {**SYNC_FILTER, "room": {"timeline": {"limit": 0}}}


THREAD_MEMORY = 10_000


def plain_body(event: Any) -> tuple[str, str | None]:
    """The text an agent wrote: `body` (never the HTML), without a quoted reply fallback;
    and, for a correction (`m.replace` with `m.new_content`), the event id of the line it
    corrects (the text is then the corrected one). A replacement that names no line is no
    correction: its plain body is shown as written."""
    content = event.source.get("content") or {}
    body = event.body if isinstance(event.body, str) else ""
    relates = _relation(content)
    if "m.in_reply_to" in relates:
        body = _REPLY_FALLBACK.sub("", body, count=1)
    new_content = content.get("m.new_content")
    target = relates.get("event_id")
    if (relates.get("rel_type") == "m.replace" and isinstance(new_content, dict)
            and isinstance(target, str) and target):
        return clean_text(str(new_content.get("body", ""))), target
    return clean_text(body), None


def reply_target(event: Any) -> str | None:
    """The event id of the line a message answers (`m.in_reply_to`), if it is a reply."""
    reply = _relation(event.source.get("content") or {}).get("m.in_reply_to")
    target = reply.get("event_id") if isinstance(reply, dict) else None
    return target if isinstance(target, str) and target else None


def reaction_of(source: dict[str, Any]) -> tuple[str, str] | None:
    """(the line reacted to, the reaction's key) of an `m.reaction` annotation."""
    if source.get("type") != "m.reaction":
        return None
    relates = _relation(source.get("content") or {})
    target, key = relates.get("event_id"), relates.get("key")
    if relates.get("rel_type") != "m.annotation" or not isinstance(target, str) \
            or not isinstance(key, str) or not target:
        return None
    return target, key


def _relation(content: dict[str, Any]) -> dict[str, Any]:
    """`m.relates_to`, or {} when it is missing or no object (anyone can send anything: one
    odd event must not fail the whole sync batch, again and again)."""
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def redacted_id(source: dict[str, Any]) -> str | None:
    """The event an `m.room.redaction` takes back, else None. Before room version 11 the
    server's top-level `redacts` says it (a `content.redacts` there is only what a client
    wrote); from 11 on it is `content.redacts`, and a server need not copy it to the top
    (Synapse does). nio 0.26 makes a redaction without the top-level key a BadEvent: so
    the raw event is read, both places."""
    if source.get("type") != "m.room.redaction":
        return None
    redacts = source.get("redacts")
    if not isinstance(redacts, str) or not redacts:
        content = source.get("content")
        redacts = content.get("redacts") if isinstance(content, dict) else None
    return redacts if isinstance(redacts, str) and redacts else None


class Threads:
    """Which messages were written in a thread (Matrix 1.4 `m.thread`), and edits of them:
    an edit carries no thread relation of its own, so the threads' event ids are kept
    (the newest THREAD_MEMORY) to keep an edited note from reaching the visitor."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()

    def in_thread(self, event: Any) -> bool:
        relates = _relation(event.source.get("content") or {})
        if relates.get("rel_type") == "m.replace":
            return relates.get("event_id") in self._ids
        if relates.get("rel_type") != "m.thread":
            return False
        self._ids[event.event_id] = None
        if len(self._ids) > THREAD_MEMORY:
            self._ids.popitem(last=False)
        return True


def error_of(response: ErrorResponse) -> BackendError:
    status = getattr(getattr(response, "transport_response", None), "status", None)
    if response.status_code == "M_LIMIT_EXCEEDED" or status == 429:
        return RateLimited((response.retry_after_ms or 1000) / 1000)
    if status is None or status >= 500:
        error: BackendError = BackendUnavailable(f"matrix: {response}")
    else:
        error = BackendError(f"matrix: {response}")
    error.status = status
    return error


class DraftPreviews:
    """Per room, the visitor's unsent text as one notice: sent once, then edited in place
    (`m.replace`), redacted when the line is sent or the box cleared. Never a flood: the
    caller throttles."""

    def __init__(self, send: Callable[[RoomRef, dict[str, Any]], Awaitable[str]],
                 redact: Callable[[RoomRef, str], Awaitable[None]]) -> None:
        self._send = send
        self._redact = redact
        self._shown: dict[RoomRef, str] = {}  # room -> the preview notice's event id

    async def show(self, room: RoomRef, text: str) -> None:
        shown = self._shown.get(room)
        if not text:
            if shown is not None:
                del self._shown[room]
                await self._redact(room, shown)
            return
        body = f"{DRAFT_MARK}{text}"
        content: dict[str, Any] = {"msgtype": "m.notice", "body": body}
        if shown is None:
            self._shown[room] = await self._send(room, content)
            return
        await self._send(room, {**content, "body": f"* {body}", "m.new_content": content,
                                "m.relates_to": {"rel_type": "m.replace", "event_id": shown}})
