"""Pure helpers for the XMPP stanzas the backend reads and writes: no slixmpp, no I/O.

The backend reads the parsed element directly rather than slixmpp's stanza objects: both
its fast path and slixmpp's handlers end up here, so the two apply the same rules.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

MESSAGE = "{jabber:client}message"
ACK_REQUEST = "{urn:xmpp:sm:3}r"
BODY = "{jabber:client}body"
SUBJECT = "{jabber:client}subject"
DELAY = "{urn:xmpp:delay}delay"
STANZA_ID = "{urn:xmpp:sid:0}stanza-id"
ORIGIN_ID = "{urn:xmpp:sid:0}origin-id"
REPLACE = "{urn:xmpp:message-correct:0}replace"
STORE_HINT = "{urn:xmpp:hints}store"  # XEP-0334: archive a message that has no body
# Chat markers (XEP-0333): read states in the group chats (markers.py).
CHAT_MARKERS = "urn:xmpp:chat-markers:0"
DISPLAYED = f"{{{CHAT_MARKERS}}}displayed"
MARKABLE = f"{{{CHAT_MARKERS}}}markable"
# In every line the bot writes: it asks agents' clients to mark it, and clients may mark
# only the lines that ask.
_MARKABLE_XML = f'<markable xmlns="{CHAT_MARKERS}"/>'
MUC_USER_ITEM = ("{http://jabber.org/protocol/muc#user}x/"
                 "{http://jabber.org/protocol/muc#user}item")
_CHAT_STATES = tuple((f"{{http://jabber.org/protocol/chatstates}}{state}", state)
                     for state in ("composing", "active", "paused", "inactive", "gone"))
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;",
                              '"': "&quot;"})


def chat_state(xml: ET.Element) -> str | None:
    """The chat state (XEP-0085) a message carries, if any."""
    for tag, state in _CHAT_STATES:
        if xml.find(tag) is not None:
            return state
    return None


def history_address(xml: ET.Element) -> str | None:
    """The sender's bare address a non-anonymous room adds to its history (and archive)."""
    item = xml.find(MUC_USER_ITEM)
    real = item.get("jid") if item is not None else None
    return real.split("/", 1)[0] if real else None


def xml_escape(text: str) -> str:
    """Text escaped for XML content and attribute values, as slixmpp escapes it."""
    return text.translate(_XML_ESCAPES)


def event_id(room_jid: str, xml: ET.Element) -> str:
    """The room's own id for a message (XEP-0359) when it gives one, else sender + id."""
    stanza_id = xml.find(STANZA_ID)
    if stanza_id is not None and stanza_id.get("id") and stanza_id.get("by") == room_jid:
        return str(stanza_id.get("id"))
    return f"{xml.get('from', '')}#{xml.get('id', '')}"


def sent_key(xml: ET.Element) -> str | None:
    """The id the sender gave a message (ours, or an agent's client's): its origin-id
    (XEP-0359), else the stanza id. A client sending a message again keeps it."""
    origin = xml.find(ORIGIN_ID)
    return (origin.get("id") if origin is not None else None) or xml.get("id") or None


REPLY = "{urn:xmpp:reply:0}reply"  # XEP-0461: the line a message answers


def reply_id(xml: ET.Element) -> str | None:
    """The id of the line a message answers (XEP-0461), if it is a reply."""
    reply = xml.find(REPLY)
    named = reply.get("id") if reply is not None else None
    return named or None


def is_correction(xml: ET.Element) -> bool:
    """Whether the message corrects an earlier one (XEP-0308)."""
    replace = xml.find(REPLACE)
    return replace is not None and bool(replace.get("id"))


def occupant(xml: ET.Element) -> tuple[str, str]:
    """The room and the nick of a group chat stanza's sender, exactly as written."""
    room_jid, _, nick = (xml.get("from") or "").partition("/")
    return room_jid, nick


def parse_stamp(stamp: str | None) -> float | None:
    """Seconds since the epoch from an XEP-0082 date-time; None when it does not parse."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def delay_stamp(xml: ET.Element) -> float | None:
    """When a delayed message (XEP-0203: room history) was first sent; None when live."""
    delay = xml.find(DELAY)
    return parse_stamp(delay.get("stamp")) if delay is not None else None


def format_stamp(when: float) -> str:
    """An XEP-0082 date-time in UTC, to the second."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def line_head(room_jid: str, lang: str | None) -> str:
    """The start of every group chat line we send to a room, up to its id's value."""
    lang_attr = f' xml:lang="{xml_escape(lang)}"' if lang else ""
    return f'<message type="groupchat" to="{xml_escape(room_jid)}"{lang_attr} id="'


def group_line(head: str, key: str, text: str, oob: str | None = None) -> str:
    """A group chat line whose id and origin-id (XEP-0359) are `key`, after `line_head`;
    with `oob`, the URL of a file (XEP-0066) that clients show inline; markable (XEP-0333),
    so that agents' clients tell when they displayed it."""
    quoted = xml_escape(key)
    attached = (f'<x xmlns="jabber:x:oob"><url>{xml_escape(oob)}</url></x>'
                if oob is not None else "")
    return (f'{head}{quoted}"><body>{xml_escape(text)}</body>{attached}'
            f'<origin-id xmlns="urn:xmpp:sid:0" id="{quoted}"/>{_MARKABLE_XML}</message>')
