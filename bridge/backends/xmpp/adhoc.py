"""Agents' commands as ad-hoc commands (XEP-0050) with data forms (XEP-0004): the menus
and forms Gajim, Psi, Conversations and Cheogram show for the bot's contact.

What the forms are, their choices and what a filled-in form does belong to a `CommandDesk`
(bridge/command_forms.py, handed over by the composition root); this module only speaks
the protocol: it lists the desk's forms to the agents who may open them, renders a form,
reads the submitted values and answers with the desk's outcome as the command's note.

slixmpp's XEP-0050 plugin keeps the sessions and the actions (execute, complete, cancel);
three of its lookups are replaced here because they key on the bot's full JID as it was
when a command was added, which a new session after a reconnect changes, and because its
disco items list every command to everyone:
- `get_command` (xep_0050): our forms by node, for whichever resource the bot has now;
- `get_items` and `get_info` (xep_0030) on the commands node and the forms' nodes: only
  configured agents see them; anything else goes to slixmpp's stored answers as before.
Later steps of a form reach it by its session id alone (the plugin does not say who sent
them); the id is random and only the agent who opened the form is told it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.xep_0004 import Form as DataForm
from slixmpp.plugins.xep_0030 import DiscoInfo, DiscoItems

from bridge.core.forms import FieldKind, Form, MenuEntry, Outcome

log = logging.getLogger(__name__)

COMMANDS = "http://jabber.org/protocol/commands"
DATA_FORMS = "jabber:x:data"
FIELD_TYPES = {FieldKind.CHOICE: "list-single", FieldKind.LINE: "text-single",
               FieldKind.TEXT: "text-multi", FieldKind.FLAG: "boolean"}
MAX_SESSIONS = 256  # open forms kept; an abandoned one is forgotten after this many more

Session = dict[str, Any]  # slixmpp's XEP-0050 session: a plain dict


class CommandDesk(Protocol):
    """What the forms do; the hub ring's side of them (bridge/command_forms.py)."""

    def menu(self, address: str) -> Sequence[MenuEntry] | None:
        """The forms a bare JID may open; None: not an agent, who may open none."""

    def form(self, address: str, command: str) -> Form | Outcome:
        """The form to fill in now, or the outcome when there is nothing to fill in."""

    async def submit(self, address: str, command: str, values: Mapping[str, str], key: str
                     ) -> Outcome:
        """Run a filled-in form; a second submit with the same `key` runs nothing. Bad
        values get a failed outcome naming the field and change nothing."""


class BoundedSessions(dict[str, Session]):
    """The plugin's session store, capped: a form an agent closed without cancelling stays
    in it otherwise, as does a session completed through the "execute" action."""

    def __setitem__(self, key: str, value: Session) -> None:
        super().__setitem__(key, value)
        while len(self) > MAX_SESSIONS:
            del self[next(iter(self))]  # the oldest: dicts keep insertion order


class AdhocCommands:
    """The bot's ad-hoc commands; the desk is served from when the composition root hands
    it over (until then, and without one, there are no commands)."""

    def __init__(self) -> None:
        self._desk: CommandDesk | None = None
        self._stored_items: Any = None  # xep_0030's own answers, for every other node
        self._stored_info: Any = None

    def serve(self, desk: CommandDesk) -> None:
        self._desk = desk

    def register(self, client: Any) -> None:
        """Our lookups on the client's plugins; they hold across reconnects (the client and
        its plugins are made once)."""
        adhoc = client.plugin["xep_0050"]
        adhoc.set_backend(BoundedSessions())
        adhoc.api.register(self._get_command, "get_command")
        disco = client.plugin["xep_0030"]
        self._stored_items = disco.static.get_items
        self._stored_info = disco.static.get_info
        disco.api.register(self._disco_items, "get_items")
        disco.api.register(self._disco_info, "get_info")

    # -- discovery -----------------------------------------------------------------------

    def _menu(self, requester: JID | None) -> Sequence[MenuEntry] | None:
        if self._desk is None or requester is None:
            return None
        return self._desk.menu(JID(requester).bare)

    def _disco_items(self, jid: JID, node: str | None, ifrom: JID | None, data: Any) -> Any:
        if node != COMMANDS:
            return self._stored_items(jid, node, ifrom, data)
        return command_items(jid, self._menu(ifrom) or ())

    def _disco_info(self, jid: JID, node: str | None, ifrom: JID | None, data: Any) -> Any:
        menu = self._menu(ifrom) or ()
        if node == COMMANDS and menu:
            return command_info(COMMANDS, "command-list", "Commands")
        entry = next((e for e in menu if e.command == node), None)
        if entry is not None:
            return command_info(entry.command, "command-node", entry.title)
        return self._stored_info(jid, node, ifrom, data)

    def _get_command(self, jid: JID, node: str | None, ifrom: JID | None, args: Any
                     ) -> tuple[str, Any, None, float] | None:
        """Every node is handed to `_start`, which refuses what the requester may not run:
        a stranger hears "forbidden" rather than which commands exist."""
        if self._desk is None or not node:
            return None
        return (node, self._start, None, 0)

    # -- a command's steps -----------------------------------------------------------------

    def _desk_for(self, address: str) -> tuple[CommandDesk, Sequence[MenuEntry]]:
        menu = self._desk.menu(address) if self._desk is not None else None
        if self._desk is None or menu is None:
            log.info("xmpp: %s may not run ad-hoc commands", address)
            raise XMPPError("forbidden", text="Only the support agents may run these commands.")
        return self._desk, menu

    async def _start(self, iq: Iq, session: Session) -> Session:
        """`execute`: the form to fill in; a form without fields runs at once."""
        address = iq["from"].bare
        desk, menu = self._desk_for(address)
        node = session["node"]
        if node not in {e.command for e in menu}:
            raise XMPPError("item-not-found", text=f"No command {node!r}.")
        form = desk.form(address, node)
        if isinstance(form, Outcome):
            return finish(session, form)
        if not form.fields:
            return finish(session, await desk.submit(address, node, {}, session_key(session)))
        session["payload"] = data_form(form)
        session["next"] = self._submit
        session["has_next"] = False  # one page: the client offers to complete it
        return session

    async def _submit(self, payload: Any, session: Session) -> Session:
        """`complete` (or `execute` on the open session): the desk runs the values."""
        address = JID(session["from"]).bare
        desk, _ = self._desk_for(address)
        values = submitted_values(payload)
        return finish(session, await desk.submit(address, session["node"], values,
                                                 session_key(session)))


def session_key(session: Session) -> str:
    """What makes a submitted form run once: its session's id (random, per execution)."""
    return f"adhoc-{session['id']}"


def finish(session: Session, outcome: Outcome) -> Session:
    """The session completed, the outcome as its only note."""
    session["payload"] = None
    session["next"] = None
    session["has_next"] = False
    session["notes"] = [("error" if outcome.failed else "info", outcome.text)]
    return session


def data_form(form: Form) -> DataForm:
    """A form as XEP-0004 renders it: a list-single per choice, the default preselected."""
    rendered = DataForm()
    rendered["type"] = "form"
    rendered["title"] = form.title
    rendered["instructions"] = form.instructions
    for field in form.fields:
        options = [{"label": c.label, "value": c.value} for c in field.choices]
        rendered.add_field(var=field.name, ftype=FIELD_TYPES[field.kind], label=field.label,
                           required=field.required, value=field.default or None,
                           options=options or None)
    return rendered


def submitted_values(payload: Any) -> dict[str, str]:
    """The values of a submitted form, one text per field: several values (a text-multi's
    lines) joined by newlines. Clients leave out field types in a submission, so the values
    are read from the elements rather than by type."""
    forms = payload if isinstance(payload, list) else [payload]
    values: dict[str, str] = {}
    for form in forms:
        if not isinstance(form, DataForm) or form["type"] not in ("submit", ""):
            continue
        for field in form.xml.findall(f"{{{DATA_FORMS}}}field"):
            texts = [v.text or "" for v in field.findall(f"{{{DATA_FORMS}}}value")]
            values[field.get("var", "")] = "\n".join(texts)
    return values


def command_items(jid: JID, menu: Sequence[MenuEntry]) -> DiscoItems:
    items = DiscoItems()
    items["node"] = COMMANDS
    for entry in menu:
        items.add_item(jid, node=entry.command, name=entry.title)
    return items


def command_info(node: str, kind: str, name: str) -> DiscoInfo:
    info = DiscoInfo()
    info["node"] = node
    info.add_identity("automation", kind, name=name)
    info.add_feature(COMMANDS)
    info.add_feature(DATA_FORMS)
    return info
