"""XMPP backend on slixmpp: one members-only group chat (XEP-0045) per conversation.

The bot joins each conversation's group chat with the nick "{visitor} (visitor)", makes the
queue's agents members and invites them (XEP-0249). Typing travels as chat states (XEP-0085),
read states as displayed markers (XEP-0333), edits and deletes (agents' and the visitor's) as
corrections (XEP-0308) and retractions (XEP-0424, XEP-0425), availability as presence, files
as URLs of the server's upload service (XEP-0363) with an out-of-band element (XEP-0066). No
slixmpp type or exception leaves this package.

XMPP has no server-side idempotency for messages, so a line counts as delivered only when
the group chat reflects it back with our id. After a restart or a new stream the bot reads
the room's archive (XEP-0313) from where the store says it left off: the lines agents wrote
meanwhile reach the hub, and our own lines found there are not sent again. A service
without an archive gets the join history since that time instead (docs/configuration.md, `[xmpp]`).

    backend.py     XmppBackend: the parts tied together, and the lines the bot sends
    connection.py  the client, connecting and reconnecting: the session's life as a state
    rooms.py       joining and catching up, setting a room up, members and invitations
    archive.py     the archive's (XEP-0313) queries and answers
    inbound.py     stanzas that reach the bot, turned into the hub's events
    markers.py     read states: the bot's displayed markers, agents' mapped to line ids
    corrections.py agents' corrections and retractions, moderations, mapped to line ids
    departures.py  agents' clients that drop out of a group chat, held back for a grace
    files.py       files both ways: uploads (XEP-0363) and fetching agents' files
    oob.py         pure helpers on files: OOB URLs (XEP-0066), upload slots, URL prefixes
    fastpath.py    the short way around slixmpp for live lines, with its version guard
    stanzas.py     pure helpers on stanzas: chat states, stamps, escaping, ids
    adhoc.py       agents' commands as ad-hoc commands (XEP-0050) and data forms
"""

from bridge.backends.xmpp.backend import DEFERRED_RETRY_S, REFLECTION_TIMEOUT_S, XmppBackend
from bridge.backends.xmpp.connection import CONNECT_TIMEOUT_S, SM_ACK_WINDOW, LinkState
from bridge.backends.xmpp.fastpath import SM_ACK_DELAY_S
from bridge.backends.xmpp.inbound import BUSY_SHOWS
from bridge.backends.xmpp.rooms import (
    ARCHIVE_MAX_PAGES,
    ARCHIVE_PAGE,
    ARCHIVE_TIMEOUT_S,
    CATCH_UP_MARGIN_S,
    JOIN_TIMEOUT_S,
    ROOM_GONE_CONDITIONS,
)

__all__ = [
    "ARCHIVE_MAX_PAGES", "ARCHIVE_PAGE", "ARCHIVE_TIMEOUT_S", "BUSY_SHOWS", "CATCH_UP_MARGIN_S",
    "CONNECT_TIMEOUT_S", "DEFERRED_RETRY_S", "JOIN_TIMEOUT_S", "REFLECTION_TIMEOUT_S",
    "ROOM_GONE_CONDITIONS", "SM_ACK_DELAY_S", "SM_ACK_WINDOW", "LinkState", "XmppBackend",
]
