"""The short way around slixmpp for a live line, and everything it couples to slixmpp's
private state.

Inbound, the stanzas of a live line (a group chat message or chat state from a known
occupant, an archive result we asked for, the server's XEP-0198 ack request) are taken from
the parsed element before slixmpp builds a stanza object and matches it against its ~40
handlers, which is most of what a line costs in the bot. Outbound, a line is written from a
template past slixmpp's send queue when nothing waits there.

Both count for stream management by hand, in attributes of slixmpp's XEP-0198 plugin that
are not its public interface. So the fast path checks, once per client, that the installed
slixmpp is a version it was checked against and that those attributes are there; if not it
stays off (logged once) and every stanza takes slixmpp's own way, which is correct, only
slower.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Protocol

import slixmpp
from slixmpp import JID, ClientXMPP

from bridge.backends.xmpp.corrections import is_retraction
from bridge.backends.xmpp.stanzas import (
    ACK_REQUEST,
    BODY,
    DELAY,
    DISPLAYED,
    MESSAGE,
    SUBJECT,
    chat_state,
    group_line,
    line_head,
    occupant,
)

log = logging.getLogger(__name__)

# The slixmpp releases whose XEP-0198 plugin and stream internals the code below was read
# against (major, minor). Another release may count differently: it gets the slow path.
CHECKED_SLIXMPP = frozenset({(1, 17)})
# What the fast path reads and writes besides slixmpp's public interface.
_SM_ATTRIBUTES = ("handled", "seq", "window", "window_counter", "unacked_queue",
                  "enabled_in", "enabled_out", "request_ack")
_CLIENT_ATTRIBUTES = ("send_raw", "waiting_queue", "transport", "default_lang")
# Prosody asks for an ack after every stanza it sends us. The answer waits this long, so it
# never competes with the line it came with (the server needs it within tens of seconds);
# one answer covers every request made meanwhile.
SM_ACK_DELAY_S = 0.005
_SM_MAX_SEQ = 2**32
_reported: set[str] = set()  # problems already logged: once per process is enough


class BotClient(ClientXMPP):
    """slixmpp's client with a way around it: `take` (when set) sees each parsed stanza
    first and returns True for those it handled itself."""

    take: Callable[[ET.Element], bool] | None = None

    def _spawn_event(self, xml: ET.Element) -> None:
        take = self.take
        if take is None or not take(xml):
            super()._spawn_event(xml)


class LiveStanzas(Protocol):
    """What the fast path hands a taken stanza to (the backend's inbound side)."""

    def takes_from(self, room_jid: str, nick: str) -> bool:
        """A joined room, and the bot itself or an occupant whose address the room gave."""

    def room_line(self, xml: ET.Element, room_jid: str, nick: str) -> None: ...

    def room_chat_state(self, xml: ET.Element, room_jid: str, nick: str) -> None: ...

    def room_marker(self, xml: ET.Element, room_jid: str, nick: str) -> None: ...

    def room_retraction(self, xml: ET.Element, room_jid: str, nick: str) -> None: ...

    def archive_result(self, xml: ET.Element) -> bool:
        """Collect a result of an archive query of ours; False when it is none."""


def fast_path_problem(client: ClientXMPP,
                      version: tuple[int, ...] = slixmpp.__version_info__) -> str | None:
    """Why the fast path must stay off with this client; None when it may run."""
    if tuple(version[:2]) not in CHECKED_SLIXMPP:
        shown = ".".join(str(part) for part in version)
        return f"slixmpp {shown} is not a release the fast path was checked against"
    if not hasattr(ClientXMPP, "_spawn_event"):
        return "slixmpp has no _spawn_event to step in at"
    sm = client.plugin.get("xep_0198", None)
    if sm is None:
        return "stream management (xep_0198) is not loaded"
    missing = [f"xep_0198.{name}" for name in _SM_ATTRIBUTES if not hasattr(sm, name)]
    missing += [name for name in _CLIENT_ATTRIBUTES if not hasattr(client, name)]
    if missing:
        return f"slixmpp lacks {', '.join(missing)}"
    return None


class FastPath:
    """The fast path of one client: on, or off for good when the guard says so."""

    def __init__(self, client: BotClient, receiver: LiveStanzas) -> None:
        self._client = client
        self._receiver = receiver
        self._ack_answer: asyncio.TimerHandle | None = None
        self._heads: dict[str, str] = {}  # room -> our line's start, built once per room
        self._sm: Any = client.plugin.get("xep_0198", None)  # its stream management
        problem = fast_path_problem(client)
        self.enabled = problem is None
        if problem is not None:
            if problem not in _reported:
                _reported.add(problem)
                log.warning("xmpp: fast path off, every stanza goes through slixmpp: %s",
                            problem)
            return
        client.take = self.take
        client.add_event_handler("disconnected", self._on_disconnected)

    def close(self) -> None:
        self._cancel_ack_answer()

    # -- inbound -------------------------------------------------------------------------

    def take(self, xml: ET.Element) -> bool:
        """Handle a parsed stanza here; True when it was, False to leave it to slixmpp.

        Taken: the server's ack requests, results of our archive queries, and live lines,
        chat states, displayed markers and retractions from occupants we know, in rooms we
        are in, whose addresses come exactly as we keep them. Left: room history (it has a
        delay stamp, and join_muc_wait collects it), subjects, the room's own messages
        (moderations), presence, errors, other spellings of an address.
        """
        if xml.tag == ACK_REQUEST:
            self._schedule_ack_answer()
            return True
        if xml.tag != MESSAGE:
            return False
        kind = xml.get("type")
        if kind in (None, "normal"):
            if not self._receiver.archive_result(xml):
                return False
            self.count_handled()
            return True
        if kind != "groupchat" or xml.find(SUBJECT) is not None or xml.find(DELAY) is not None:
            return False
        room_jid, nick = occupant(xml)
        if not self._receiver.takes_from(room_jid, nick):
            return False
        has_body = xml.find(BODY) is not None
        # A line's stanza is never looked at for markers or retractions here: it has a body
        # (room_line tells a retraction's fallback text from a line).
        marker = not has_body and xml.find(DISPLAYED) is not None
        retracts = not has_body and not marker and is_retraction(xml)
        if not has_body and not marker and not retracts and chat_state(xml) is None:
            return False
        self.count_handled()
        try:
            if has_body:
                self._receiver.room_line(xml, room_jid, nick)
            else:
                if marker:
                    self._receiver.room_marker(xml, room_jid, nick)
                elif retracts:
                    self._receiver.room_retraction(xml, room_jid, nick)
                self._receiver.room_chat_state(xml, room_jid, nick)  # one may come along
        except Exception:
            # Raised from here, it would abort slixmpp's read of the stream.
            log.exception("xmpp: handling a stanza from %s failed", xml.get("from"))
        return True

    def count_handled(self) -> None:
        """Count a stanza taken before slixmpp saw it, as its stream management counts every
        message, presence and iq: the server learns from that count what arrived."""
        sm = self._sm
        if sm.enabled_in:
            sm.handled = (sm.handled + 1) % _SM_MAX_SEQ

    def _schedule_ack_answer(self) -> None:
        if self._ack_answer is None:
            client = self._client
            self._ack_answer = asyncio.get_running_loop().call_later(
                SM_ACK_DELAY_S, self._answer_ack_request, client.transport)

    def _answer_ack_request(self, transport: Any) -> None:
        """What slixmpp's own handler answers, on the stream that asked, without building a
        stanza: how many stanzas we have handled."""
        self._ack_answer = None
        if transport is not None and self._client.transport is transport:
            self._client.send_raw(f"<a xmlns='urn:xmpp:sm:3' h='{self._sm.handled}'/>")

    def _cancel_ack_answer(self) -> None:
        if self._ack_answer is not None:
            self._ack_answer.cancel()
            self._ack_answer = None

    def _on_disconnected(self, _reason: Any) -> None:
        self._cancel_ack_answer()  # the next stream asks again

    # -- outbound ------------------------------------------------------------------------

    def send_line(self, room_jid: str, key: str, text: str, oob: str | None = None) -> bool:
        """Write a group chat line at once, when nothing waits in slixmpp's send queue;
        False when it must join that queue instead (so lines and chat states keep their
        order).

        An empty queue means everything sent before was written: slixmpp takes a stanza
        off the queue only to filter and write it in the same step, our plugins' filters
        being synchronous.
        """
        client = self._client
        if not self.enabled or client.transport is None or not client.waiting_queue.empty():
            return False
        head = self._heads.get(room_jid)
        if head is None:
            head = self._heads[room_jid] = line_head(str(JID(room_jid)), client.default_lang)
        self._write_stanza(group_line(head, key, text, oob))
        return True

    def _write_stanza(self, xml: str) -> None:
        """Write one stanza past the send queue, counted for stream management exactly as
        slixmpp's XEP-0198 send filter counts the stanzas it sees: numbered, kept until the
        server acknowledges it (a resumed stream sends it again), an ack requested every
        window's worth. Uncounted, the server's acks would no longer line up."""
        sm = self._sm
        self._client.send_raw(xml)
        if sm.enabled_out:
            sm.seq = (sm.seq + 1) % _SM_MAX_SEQ
            sm.unacked_queue.append((sm.seq, xml))
            sm.window_counter -= 1
            if sm.window_counter <= 0:
                sm.window_counter = sm.window
                sm.request_ack()
