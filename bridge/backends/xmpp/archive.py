"""Reading a group chat's archive (XEP-0313 on the MUC, paged with XEP-0059): the stanzas
to ask with and the answers to read, without slixmpp's stanza objects.

After the bridge was away from a room (a restart, a new stream), the lines agents wrote
meanwhile are read from the room's archive from a point in time on, not from the few dozen
stanzas of history a room sends on a join, which the bot's own lines also fill.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bridge.backends.xmpp.stanzas import (
    DELAY,
    MESSAGE,
    format_stamp,
    history_address,
    parse_stamp,
)

MAM = "urn:xmpp:mam:2"
_RSM = "http://jabber.org/protocol/rsm"
_DATA = "jabber:x:data"
_FORWARD = "urn:xmpp:forward:0"
RESULT = f"{{{MAM}}}result"


@dataclass(frozen=True)
class ArchivedLine:
    """One stanza from the archive: the group chat message as the room sent it."""

    archive_id: str  # the room's stanza-id of the message, as live lines carry it
    message: ET.Element
    stamp: float | None  # when the room archived it
    real_jid: str | None  # the sender's bare address, where the room tells it


@dataclass
class ArchivePage:
    """The answers to one query, collected as they arrive before the query's result."""

    room: str
    lines: list[ArchivedLine] = field(default_factory=list)
    answer: ET.Element | None = None  # the query's result, once it came


def archive_query(query_id: str, since: float, after: str | None, size: int) -> ET.Element:
    """A query for the room's messages from `since` on, `size` a page, after the archive id
    `after` (the last one of the previous page)."""
    query = ET.Element(f"{{{MAM}}}query", {"queryid": query_id})
    form = ET.SubElement(query, f"{{{_DATA}}}x", {"type": "submit"})
    for var, value, kind in (("FORM_TYPE", MAM, "hidden"), ("start", format_stamp(since), None)):
        attrs = {"var": var} | ({"type": kind} if kind else {})
        ET.SubElement(ET.SubElement(form, f"{{{_DATA}}}field", attrs),
                      f"{{{_DATA}}}value").text = value
    paging = ET.SubElement(query, f"{{{_RSM}}}set")
    ET.SubElement(paging, f"{{{_RSM}}}max").text = str(size)
    if after is not None:
        ET.SubElement(paging, f"{{{_RSM}}}after").text = after
    return query


def archived_line(stanza: ET.Element) -> ArchivedLine | None:
    """The archived message a result stanza carries; None when it carries none."""
    result = stanza.find(RESULT)
    if result is None or not result.get("id"):
        return None
    forwarded = result.find(f"{{{_FORWARD}}}forwarded")
    message = forwarded.find(MESSAGE) if forwarded is not None else None
    if forwarded is None or message is None:
        return None
    delay = forwarded.find(DELAY)
    return ArchivedLine(
        archive_id=str(result.get("id")),
        message=message,
        stamp=parse_stamp(delay.get("stamp") if delay is not None else None),
        real_jid=history_address(message),
    )


def page_end(answer: ET.Element | None) -> tuple[bool, str | None]:
    """From a query's result: whether the archive has nothing more, and the last id of the
    page (where the next page starts)."""
    fin = answer.find(f"{{{MAM}}}fin") if answer is not None else None
    if fin is None:
        return True, None
    last = fin.findtext(f"{{{_RSM}}}set/{{{_RSM}}}last")
    return fin.get("complete") in ("true", "1"), last or None
