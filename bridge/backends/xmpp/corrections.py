"""Agents' corrections (XEP-0308) and retractions (XEP-0424) in the group chats, and
moderators' (XEP-0425), named by the event ids this backend reports for lines.

A correction names the line it corrects by the id the sender's client gave it (its message
id, or origin-id, XEP-0359), not by the room's stanza-id: the read marks (markers.py) keep
those ids of agents' lines, with who wrote them, and give the event id back for the same
sender in the same room. A client correcting twice names either the first line (XEP-0308
now) or the previous correction (older clients): each correction is remembered as standing
for the line it corrects, so both reach that line.

A retraction in a group chat names the line by the room's stanza-id (`<retract id=…>`,
urn:xmpp:message-retract:1); older clients name it by its origin-id inside a fastening
(`<apply-to id=…>` of XEP-0422 around a `:0` retract). A moderation comes from the room
itself, names the line by its stanza-id, and the moderator by their occupant address (0.3:
`<retract><moderated by=…>`; 0.2: `<apply-to><moderated by=…><retract/>`). The bot's own
retractions (the visitor's draft previews, drafts.py, and lines the visitor deleted) are no
one's: never reported; coming back from the room, they are noted as delivered.

The bot retracts a visitor's line in both forms, for clients of either (`retract_elements`),
with the fallback text of XEP-0428 for clients that know neither.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from slixmpp import ClientXMPP
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bridge.backends.base import AgentRetracted, InboundEvent
from bridge.backends.xmpp.markers import ReadMarks
from bridge.backends.xmpp.stanzas import (
    BODY,
    MESSAGE,
    ORIGIN_ID,
    REPLACE,
    STORE_HINT,
    event_id,
    occupant,
    sent_key,
)
from bridge.backends.xmpp.state import Room
from bridge.core.models import RoomRef

log = logging.getLogger(__name__)

RETRACT = "{urn:xmpp:message-retract:1}retract"
_RETRACT_0 = "{urn:xmpp:message-retract:0}retract"
APPLY_TO = "{urn:xmpp:fasten:0}apply-to"
_MODERATED = ("{urn:xmpp:message-moderate:1}moderated", "{urn:xmpp:message-moderate:0}moderated")
FALLBACK = "{urn:xmpp:fallback:0}fallback"
# What clients that know no retraction show (XEP-0424's example): "/me" names the bot, here
# the visitor's nick.
RETRACTION_FALLBACK = "/me retracted a previous message, but it's unsupported by your client."
# Corrections remembered as standing for the line they correct: clients correct recent lines.
CORRECTION_MEMORY = 10_000

# Where a retraction goes on: (stanza, room, occupant nick).
HandOver = Callable[[ET.Element, str, str], None]


@dataclass(frozen=True)
class Retraction:
    """What a retraction stanza asks for."""

    target: str  # the id it names the line by
    moderator: str | None  # a moderation's `by` ("" when the room names no one); None else


def retraction(xml: ET.Element) -> Retraction | None:
    """The retraction (or moderation) a message carries; None for any other message, and
    for the tombstones (`<retracted/>`) archives leave in a retracted line's place."""
    retract = xml.find(RETRACT)
    if retract is not None and retract.get("id"):
        return Retraction(str(retract.get("id")), _moderator(retract))
    for apply_to in xml.iterfind(APPLY_TO):  # the older form, with a fastening
        target = apply_to.get("id")
        if not target:
            continue
        for tag in _MODERATED:
            moderated = apply_to.find(tag)
            if moderated is not None and _retracts(moderated):
                return Retraction(target, moderated.get("by") or "")
        if _retracts(apply_to):
            return Retraction(target, None)
    return None


def _retracts(parent: ET.Element) -> bool:
    return parent.find(_RETRACT_0) is not None or parent.find(RETRACT) is not None


def _moderator(retract: ET.Element) -> str | None:
    for tag in _MODERATED:
        moderated = retract.find(tag)
        if moderated is not None:
            return moderated.get("by") or ""
    return None


def is_retraction(xml: ET.Element) -> bool:
    return retraction(xml) is not None


def retract_elements(stanza_id: str, origin_id: str) -> list[ET.Element]:
    """What a message retracting one of the bot's lines carries besides its fallback body:
    the retraction naming the line by the room's id (urn:xmpp:message-retract:1), the
    older form naming it by the id the bot gave it (a `:0` retract in a fastening), the
    fallback marker, and a hint to archive it though it is no line (XEP-0334)."""
    apply_to = ET.Element(APPLY_TO, {"id": origin_id})
    apply_to.append(ET.Element(_RETRACT_0))
    return [ET.Element(RETRACT, {"id": stanza_id}), apply_to,
            ET.Element(FALLBACK, {"for": "urn:xmpp:message-retract:1"}),
            ET.Element(STORE_HINT)]


def moderator_address(by: str, room_jid: str, real_jids: dict[str, str]) -> str:
    """Who moderated, as the room tells it: `by` is the moderator's occupant address
    (room/nick), known by the real address of the nick while they are in the room, or an
    address of their own (archives' tombstones); else the room itself."""
    bare, _, nick = by.partition("/")
    if not bare:
        return room_jid
    if bare == room_jid:
        return real_jids.get(nick, room_jid) if nick else room_jid
    return bare


class Corrections:
    """Maps the ids corrections and retractions name to event ids, and reports retractions
    (live, from the join history and from the archive) as AgentRetracted."""

    def __init__(self, rooms: dict[str, Room], bot_jid: str, read_marks: ReadMarks,
                 queue_event: Callable[[InboundEvent], None],
                 memory: int = CORRECTION_MEMORY) -> None:
        self._rooms = rooms
        self._bot_jid = bot_jid  # bare
        self._read_marks = read_marks
        self._queue_event = queue_event
        self._memory = memory
        # (room, a correction's event id) -> the event id of the line it corrects
        self._corrected: OrderedDict[tuple[str, str], str] = OrderedDict()

    def register(self, client: ClientXMPP, hand_over: HandOver) -> None:
        """Retractions have no body (but for a fallback text): slixmpp's group chat events
        pass them by. The fast path takes the live ones first; with it off, and for the join
        history and the room's own (moderations), they come this way."""
        def on_stanza(message: StanzaBase) -> None:
            xml = message.xml
            # One with a fallback body comes as a group chat line, and goes on from there.
            if xml.get("type") == "groupchat" and xml.find(BODY) is None:
                hand_over(xml, *occupant(xml))

        def on_fastened(message: StanzaBase) -> None:
            if message.xml.find(RETRACT) is None:  # both forms at once: handled above
                on_stanza(message)

        client.register_handler(Callback("livechat retractions",
                                         MatchXPath(f"{MESSAGE}/{RETRACT}"), on_stanza))
        client.register_handler(Callback("livechat fastened retractions",
                                         MatchXPath(f"{MESSAGE}/{APPLY_TO}"), on_fastened))

    # -- corrections ---------------------------------------------------------------------

    def replaces(self, room_jid: str, sender: str, xml: ET.Element, line_id: str
                 ) -> str | None:
        """For a correction by `sender`: the event id of the line it corrects; None for a
        line that corrects nothing, and when that line is unknown (long ago, or not the
        sender's): the hub then shows the correction as a line of its own."""
        replace = xml.find(REPLACE)
        named = replace.get("id") if replace is not None else None
        if not named:
            return None
        corrected = self._read_marks.sent_by(room_jid, sender, named)
        if corrected is None and self._read_marks.owner(room_jid, named) == sender:
            corrected = named  # a client that names the line by the room's id
        if corrected is None or corrected == line_id:
            return None
        corrected = self._corrected.get((room_jid, corrected), corrected)
        self._corrected[(room_jid, line_id)] = corrected
        if len(self._corrected) > self._memory:
            self._corrected.popitem(last=False)
        return corrected

    # -- retractions ---------------------------------------------------------------------

    def retraction(self, xml: ET.Element, room_jid: str, nick: str,
                   real_jid: str | None = None) -> None:
        """A retraction or a moderation in one of our rooms, from `nick` (empty: the room
        itself); `real_jid`, the sender's address where the history or archive tells it."""
        found = retraction(xml)
        state = self._rooms.get(room_jid)
        if found is None or state is None:
            return
        sender: str | None
        line: str | None
        if found.moderator is not None:
            if nick:  # only the room moderates: an occupant claiming to forges it
                log.info("xmpp: %s: moderation from %r ignored", room_jid, nick)
                return
            sender = moderator_address(found.moderator, room_jid, state.real_jids)
            line = self._corrected.get((room_jid, found.target), found.target)
        else:
            if nick == state.nick:  # the bot's own: draft previews, deleted lines
                if xml.find(ORIGIN_ID) is not None:  # a deleted line's: its key is known
                    state.note_delivered(str(sent_key(xml)), event_id(room_jid, xml))
                return
            if not nick:
                return  # the room retracting without a moderator: nothing XEP-0425 knows
            sender = real_jid or state.real_jids.get(nick)
            if sender is None:
                log.info("xmpp: %s: retraction from %r with no known address", room_jid, nick)
                return
            line = self._retracted_line(room_jid, nick, sender, found.target)
            if line is None:
                return
        if sender == self._bot_jid:
            return
        self._queue_event(AgentRetracted(RoomRef(room_jid), sender, line))

    def _retracted_line(self, room_jid: str, nick: str, sender: str, target: str
                        ) -> str | None:
        """The event id of the line an agent takes back: named by the id their client gave
        it (older clients), else by the room's id (or, in a room that gives none, the
        "{room}/{nick}#{id}" this backend reports). None for a line known to be another's."""
        marks = self._read_marks
        known = marks.sent(room_jid, target)
        if known is not None:
            line, owner = known
        else:
            without_ids = f"{room_jid}/{nick}#{target}"
            line = without_ids if marks.owner(room_jid, without_ids) else target
            owner = marks.owner(room_jid, line)
        if owner is not None and owner != sender:
            log.info("xmpp: %s: %s may not retract %s's line %s", room_jid, sender, owner, line)
            return None
        return self._corrected.get((room_jid, line), line)
