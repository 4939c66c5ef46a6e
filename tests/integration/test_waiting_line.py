"""The waiting line as the visitor lives it: an honest estimate, the offer to leave a
message instead, and unanswered chats that become help-desk tickets (real SMTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from bridge.core.models import Status
from tests.integration.conftest import TestAgent, room_of
from tests.integration.helpers import seed_answered


def smtp_config(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "starttls": False,
            "from": "Support <support@example.com>"}


async def queue_status(base_url: str, queue: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/v1/status") as response:
        answer = await response.json()
    return next(q for q in answer["queues"] if q["id"] == queue)


async def test_a_waiting_visitor_gets_an_estimate_then_leaves_a_message(
    make_matrix_bridge, visitors, start_server
) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp=smtp_config(smtp.port), queues=[{
        "id": "support", "name": "Support", "agents": ["alice"],
        "helpdesk_email": "helpdesk@example.com", "offer_message_after_minutes": 0.02}])
    seed_answered(bridge, "support", [60, 120, 180])
    visitor = await visitors(bridge.base_url)
    await visitor.start()
    first = await visitor.wait("queue")
    # alice is invited but has not joined: one agent on duty, median answer after 120 s
    assert first["position"] == 1 and 110 <= first["wait_s"] <= 120
    assert first["offer_message"] is False
    status = await queue_status(bridge.base_url, "support")
    assert status["waiting"] == 1 and 230 <= status["wait_s"] <= 240  # the next one is second

    await visitor.say("Where is my parcel?")
    offer = await visitor.wait("queue", lambda f: f["offer_message"])  # after 1.2 s of waiting
    assert offer["position"] == 1

    await visitor.send({"type": "leave_message"})
    ticket = (await visitor.wait("ticket"))["ticket"]
    assert ticket.startswith("T-")
    await visitor.wait("ended")
    conversation = bridge.store.open_conversations()
    assert conversation == []
    async with asyncio.timeout(15):
        while not smtp.handler.received:
            await asyncio.sleep(0.1)
    mail = smtp.handler.received[0].message
    assert f"[{ticket}] Unanswered chat: Support" == mail["Subject"]
    assert [a.addr_spec for a in mail["Reply-To"].addresses] == ["anna@example.com"]
    assert "Anna: Where is my parcel?" in mail.get_content()

    await visitor.send({"type": "leave_message"})  # a retry gets the same ticket, no new one
    assert (await visitor.wait("ticket", lambda f: len(visitor.of("ticket")) == 2))[
        "ticket"] == ticket
    await asyncio.sleep(0.3)
    assert len(smtp.handler.received) == 1


async def test_there_is_no_estimate_without_enough_answers(make_matrix_bridge, visitors
                                                           ) -> None:
    bridge = await make_matrix_bridge()
    seed_answered(bridge, "support", [60, 120])  # two answers are not a basis
    visitor = await visitors(bridge.base_url)
    await visitor.start()
    assert (await visitor.wait("queue"))["wait_s"] is None
    assert (await queue_status(bridge.base_url, "support"))["wait_s"] is None


async def test_leaving_a_message_needs_something_written_and_no_answer_yet(
    make_matrix_bridge, visitors, matrix_agent: TestAgent
) -> None:
    bridge = await make_matrix_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    await visitor.send({"type": "leave_message"})
    assert (await visitor.wait("error"))["code"] == "nothing_written"
    assert bridge.store.conversation(started["conversation"]).status is Status.WAITING

    room = await room_of(bridge, started["conversation"])
    await matrix_agent.join(room)
    await matrix_agent.say(room, "Hello, Alice here")
    await visitor.wait("message", lambda f: f["text"] == "Hello, Alice here")
    await visitor.say("Thanks")
    await visitor.send({"type": "leave_message"})
    assert (await visitor.wait("error", lambda f: f["code"] != "nothing_written"))[
        "code"] == "answered"
    await visitor.send({"type": "end"})
    await visitor.wait("ended")
    assert visitor.of("ticket") == []  # an answered chat is no ticket
    assert bridge.store.ticket_of_conversation(started["conversation"]) is None


async def test_a_chat_that_ends_unanswered_becomes_a_ticket(
    make_matrix_bridge, visitors, start_server
) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp=smtp_config(smtp.port), queues=[
        {"id": "support", "name": "Support", "agents": ["alice"],
         "helpdesk_email": "helpdesk@example.com"},
        {"id": "sales", "name": "Sales", "agents": ["bob"],
         "helpdesk_email": "sales@example.com", "unanswered_to_ticket": False}])
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    await visitor.say("Is anybody there?")
    await visitor.send({"type": "end"})
    ticket = (await visitor.wait("ticket"))["ticket"]
    ended = await visitor.wait("ended")
    assert visitor.of("ticket")[0]["ticket"] == ticket and ended["by"] == "visitor"
    stored = bridge.store.ticket_of_conversation(started["conversation"])
    assert stored is not None and stored.id == ticket and "Is anybody there?" in stored.text
    async with asyncio.timeout(15):
        while not smtp.handler.received:
            await asyncio.sleep(0.1)
    assert smtp.handler.received[0].envelope.rcpt_tos == ["helpdesk@example.com"]

    other = await visitors(bridge.base_url)
    started = await other.start(topic="sales")  # this queue keeps unanswered chats as they are
    await other.say("Hello?")
    await other.send({"type": "end"})
    await other.wait("ended")
    assert other.of("ticket") == []
    assert bridge.store.ticket_of_conversation(started["conversation"]) is None
