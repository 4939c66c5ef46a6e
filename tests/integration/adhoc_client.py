"""An agent's client driving ad-hoc commands (XEP-0050) the way Gajim does: disco#items on
the commands node of the bot's full JID, execute a command, fill in the data form it
returns (keeping the preselected values), complete it, show the notes."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.xmpp_agent import XmppAgent

COMMANDS = "http://jabber.org/protocol/commands"
C = f"{{{COMMANDS}}}"
X = "{jabber:x:data}"


@dataclass
class FormField:
    kind: str
    label: str
    value: list[str]
    options: dict[str, str]  # value -> label


@dataclass
class Step:
    """The bot's answer to one request: a form to fill in, or the completed command."""

    status: str  # "executing", "completed", "canceled"; "error" when the iq was refused
    session: str = ""
    fields: dict[str, FormField] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    error: str = ""  # the error condition of a refused iq

    @property
    def note(self) -> tuple[str, str]:
        [note] = self.notes
        return note


class AdhocClient:
    def __init__(self, agent: XmppAgent) -> None:
        self.client = agent.client

    async def bot_jid(self, bare: str, timeout: float = 10.0) -> str:
        """The bot's full JID, from its presence in the roster (what Gajim offers)."""
        async with asyncio.timeout(timeout):
            while not (resources := list(self.client.client_roster.presence(JID(bare)))):
                await asyncio.sleep(0.05)
        return f"{bare}/{resources[0]}"

    async def commands(self, bot: str) -> list[tuple[str, str]]:
        """(node, name) of each command the bot lists for us."""
        answer = await self.client.plugin["xep_0030"].get_items(jid=JID(bot), node=COMMANDS,
                                                                timeout=10)
        return [(item.get("node", ""), item.get("name", "")) for item in answer.xml.iter(
            "{http://jabber.org/protocol/disco#items}item")]  # in the bot's order

    async def execute(self, bot: str, node: str) -> Step:
        return await self._send(bot, node, "execute")

    async def complete(self, bot: str, step: Step, node: str, values: dict[str, str]
                       ) -> Step:
        """Submit the form with `values` over what it showed, as a user pressing Finish."""
        form = ET.Element(f"{X}x", {"type": "submit"})
        for var, shown in step.fields.items():
            given = values.get(var)
            texts = given.split("\n") if given is not None else shown.value
            submitted = ET.SubElement(form, f"{X}field", {"var": var})
            for text in texts:
                ET.SubElement(submitted, f"{X}value").text = text
        return await self._send(bot, node, "complete", step.session, form)

    async def run(self, bot: str, node: str, values: dict[str, str] | None = None) -> Step:
        """Execute, and complete the form if there is one."""
        step = await self.execute(bot, node)
        if step.status != "executing":
            return step
        return await self.complete(bot, step, node, values or {})

    async def _send(self, bot: str, node: str, action: str, session: str = "",
                    form: ET.Element | None = None) -> Step:
        iq = self.client.make_iq_set(ito=JID(bot))
        command = ET.SubElement(iq.xml, f"{C}command", {"node": node, "action": action})
        if session:
            command.set("sessionid", session)
        if form is not None:
            command.append(form)
        try:
            answer = await iq.send(timeout=10)
        except IqError as exc:
            return Step("error", error=str(exc.iq["error"]["condition"]))
        return read_step(answer.xml)


def read_step(xml: ET.Element) -> Step:
    command = xml.find(f"{C}command")
    assert command is not None, ET.tostring(xml)
    fields: dict[str, FormField] = {}
    for f in command.findall(f"{X}x/{X}field"):
        fields[f.get("var", "")] = FormField(
            kind=f.get("type", ""), label=f.get("label", ""),
            value=[v.text or "" for v in f.findall(f"{X}value")],
            options={o.findtext(f"{X}value", ""): o.get("label", "")
                     for o in f.findall(f"{X}option")})
    return Step(command.get("status", ""), command.get("sessionid", ""), fields,
                [(n.get("type", "info"), n.text or "") for n in command.findall(f"{C}note")])
