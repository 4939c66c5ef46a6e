"""An agent on a real XMPP client (slixmpp), with the same interface as MatrixAgent."""

from __future__ import annotations

import asyncio
import contextlib
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from slixmpp import JID, ClientXMPP, Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NOTICE_MARK = "ℹ️ "
RETRACT = "{urn:xmpp:message-retract:1}retract"


class XmppAgent:
    """Connects to the private Prosody, accepts invitations, records group chat traffic."""

    def __init__(self, jid: str, password: str, port: int, bot_jid: str, nick: str,
                 ca_file: Path | None = None) -> None:
        self.address = jid
        self.bot_jid = bot_jid
        self.nick = nick
        self.port = port
        self.client = ClientXMPP(jid, password)
        for plugin in ("xep_0030", "xep_0045", "xep_0066", "xep_0085", "xep_0199", "xep_0249",
                       "xep_0308", "xep_0359", "xep_0363"):
            self.client.register_plugin(plugin)
        self.client.enable_direct_tls = False
        if ca_file is None:
            self.client.enable_starttls = False
            self.client.enable_plaintext = True
            self.client.plugin["feature_mechanisms"].unencrypted_scram = True
        else:
            self.client.ca_certs = ca_file
        self.client.auto_authorize = True
        self.client.auto_subscribe = True
        self.messages: list[tuple[str, str, bool, str]] = []  # room, nick, notice, body
        self.invites: set[str] = set()
        self.joined: set[str] = set()
        self.removed: set[str] = set()  # rooms the agent was taken out of
        self.seen_ids: set[tuple[str, str]] = set()
        self.states: dict[str, list[bool]] = {}
        self.archive_ids: dict[tuple[str, str], str] = {}  # (room, body) -> the room's id
        self.corrections: list[tuple[str, str, str]] = []  # room, corrected id, new body
        self.retracted: list[tuple[str, str]] = []  # room, the room's id of the line
        self.files: list[tuple[str, str, str, dict[str, Any]]] = []  # room, name, url, {}
        self._closing = False
        self._changed = asyncio.Condition()
        self._session = asyncio.Event()
        self.sessions = 0
        self.client.add_event_handler("session_start", self._on_session_start)
        self.client.add_event_handler("disconnected", self._on_disconnected)
        self.client.add_event_handler("groupchat_direct_invite", self._on_invite)
        self.client.add_event_handler("groupchat_message", self._on_groupchat)
        self.client.add_event_handler("groupchat_presence", self._on_room_presence)
        self.client.add_event_handler("chatstate", self._on_chat_state)
        self.client.add_event_handler("message", self._on_direct)
        # A retraction has no body: slixmpp's group chat events pass it by.
        self.client.register_handler(Callback("retractions", MatchXPath(
            f"{{jabber:client}}message/{RETRACT}"), self._on_retraction))
        self.direct: list[tuple[str, str]] = []  # sender, body of chat messages

    async def start(self) -> XmppAgent:
        self.client.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self._session.wait(), 10)
        return self

    async def _on_session_start(self, _event: Any) -> None:
        self.client.send_presence()
        self._session.set()
        for room in self.joined:  # like a real client after a server restart
            await self.client.plugin["xep_0045"].join_muc_wait(JID(room), self.nick,
                                                               maxstanzas=50, timeout=10)
        self.sessions += 1  # a session with every room joined
        await self._notify()

    async def _on_disconnected(self, _reason: Any) -> None:
        self._session.clear()
        while not self._closing and not self._session.is_set():
            await asyncio.sleep(0.3)
            self.client.connect("127.0.0.1", self.port)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._session.wait(), 2)
            if not self._session.is_set():
                self.client.cancel_connection_attempt()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_invite(self, message: Message) -> None:
        self.invites.add(JID(message["groupchat_invite"]["jid"]).bare)
        await self._notify()

    async def _on_groupchat(self, message: Message) -> None:
        room, nick = message["from"].bare, message["from"].resource
        body = str(message["body"])
        line_id = (room, message["stanza_id"]["id"] or message["id"])
        if body and message["type"] == "groupchat" and line_id not in self.seen_ids:
            self.seen_ids.add(line_id)  # a rejoin replays history: count each line once
            notice = body.startswith(NOTICE_MARK)
            self.messages.append((room, nick, notice,
                                  body.removeprefix(NOTICE_MARK) if notice else body))
            self.archive_ids[(room, body)] = message["stanza_id"]["id"]
            if url := str(message["oob"]["url"]):
                self.files.append((room, url.rsplit("/", 1)[-1], url, {}))
            if message["replace"]["id"]:
                self.corrections.append((room, message["replace"]["id"], body))
        elif message["chat_state"] and not body and self._is_bot(room, nick):
            self.states.setdefault(room, []).append(message["chat_state"] == "composing")
        await self._notify()

    def _on_retraction(self, message: Message) -> None:
        retract = message.xml.find(RETRACT)
        if retract is not None:
            self.retracted.append((message["from"].bare, retract.get("id", "")))

    async def _on_room_presence(self, presence: Any) -> None:
        room, nick = presence["from"].bare, presence["from"].resource
        # 321: the affiliation was taken away (removed from a members-only room).
        if (presence["type"] == "unavailable" and nick == self.nick
                and 321 in presence["muc"]["status_codes"]):
            self.removed.add(room)
            self.joined.discard(room)
            await self._notify()

    async def _on_direct(self, message: Message) -> None:
        if message["type"] == "chat" and message["body"]:
            self.direct.append((message["from"].bare, str(message["body"])))
            await self._notify()

    async def open_direct(self, bot: str) -> str:
        return bot  # XMPP needs no room: chat messages go to the address

    async def say_direct(self, room: str, text: str) -> None:
        self.client.send_message(mto=JID(room), mbody=text, mtype="chat")

    def direct_texts(self, room: str) -> list[str]:
        return [body for sender, body in self.direct if sender == room]

    async def _on_chat_state(self, message: Message) -> None:
        if not message["body"]:  # lines with a state attached come as groupchat_message
            await self._on_groupchat(message)

    def _is_bot(self, room: str, nick: str) -> bool:
        real = self.client.plugin["xep_0045"].get_jid_property(JID(room), nick, "jid")
        return real is not None and JID(real).bare == self.bot_jid

    async def until(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout), self._changed:
            while not (result := check()):
                await self._changed.wait()
            return result

    async def wait_text(self, room: str, body: str, *, notice: bool = False,
                        timeout: float = 15.0) -> None:
        await self.until(lambda: body in self.texts(room, notice=notice), timeout)

    def texts(self, room: str, *, notice: bool = False) -> list[str]:
        return [b for r, _n, is_notice, b in self.messages if r == room and is_notice == notice]

    async def join(self, room: str) -> None:
        await self.until(lambda: room in self.invites)
        await self.client.plugin["xep_0045"].join_muc_wait(JID(room), self.nick,
                                                           maxstanzas=50, timeout=10)
        self.joined.add(room)

    async def leave(self, room: str) -> None:
        self.joined.discard(room)
        self.client.plugin["xep_0045"].leave_muc(JID(room), self.nick)

    async def say(self, room: str, text: str, message_id: str | None = None) -> str:
        """A line; with `message_id`, as a client sends one again after its stream broke:
        the same id and origin-id (XEP-0359) as the first time."""
        message = self.client.make_message(mto=JID(room), mbody=text, mtype="groupchat")
        message["chat_state"] = "active"
        if message_id is not None:
            message["id"] = message_id
            message["origin_id"]["id"] = message_id
        message.send()
        return str(message["id"])

    async def send_file(self, room: str, name: str, content: bytes, mimetype: str) -> str:
        """What Conversations does: a slot from the server's upload service, a PUT, then
        the GET URL as the body and as an out-of-band URL (XEP-0066)."""
        url = await self.client.plugin["xep_0363"].upload_file(
            name, size=len(content), content_type=mimetype, input_file=io.BytesIO(content),
            timeout=10)
        message = self.client.make_message(mto=JID(room), mbody=url, mtype="groupchat")
        message["oob"]["url"] = url
        message.send()
        return str(message["id"])

    async def download(self, url: str) -> bytes:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200, response.status
            return await response.read()

    def file_names(self, room: str) -> list[str]:
        return [name for r, name, _url, _content in self.files if r == room]

    async def correct(self, room: str, message_id: str, text: str) -> None:
        message = self.client.make_message(mto=JID(room), mbody=text, mtype="groupchat")
        message["replace"]["id"] = message_id
        message.send()

    async def retract(self, room: str, message_id: str, body: str) -> None:
        """Take a line back (XEP-0424), naming it by the id the room gave it, as clients do
        in group chats."""
        stanza_id = await self.until(lambda: self.archive_ids.get((room, body)))
        message = self.client.make_message(mto=JID(room), mtype="groupchat")
        retract = ET.SubElement(message.xml, RETRACT, {"id": stanza_id})
        assert retract is not None
        ET.SubElement(message.xml, "{urn:xmpp:hints}store")
        message.send()

    async def set_typing(self, room: str, active: bool) -> None:
        message = self.client.make_message(mto=JID(room), mtype="groupchat")
        message["chat_state"] = "composing" if active else "paused"
        message.send()

    def bot_typing(self, room: str) -> list[bool]:
        return self.states.get(room, [])

    async def room_title(self, room: str) -> str:
        info = await self.client.plugin["xep_0030"].get_info(jid=JID(room), timeout=10)
        identities = info["disco_info"]["identities"]
        return next(name for category, _type, _lang, name in identities
                    if category == "conference")

    async def visitor_nick(self, room: str) -> str:
        muc = self.client.plugin["xep_0045"]
        return next(nick for nick in muc.get_roster(JID(room)) if self._is_bot(room, nick))

    async def set_away(self, away: bool) -> None:
        if away:
            self.client.send_presence(pshow="dnd")
        else:
            self.client.send_presence()

    async def go_offline(self) -> None:
        """The connection drops without a goodbye (a phone in a tunnel): the server takes
        the agent out of its group chats."""
        self._closing = True
        self.client.abort()
        await asyncio.sleep(0)

    async def come_back(self) -> None:
        """Connects again and rejoins the group chats it was in, with their history."""
        self._closing = False
        sessions = self.sessions
        self.client.connect("127.0.0.1", self.port)
        await self.until(lambda: self.sessions > sessions)  # its rooms joined again

    async def close(self) -> None:
        self._closing = True
        self.client.disconnect(wait=0.5)
        await asyncio.sleep(0)
        self.client.abort()
