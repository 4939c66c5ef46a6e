"""Visitors the host site vouches for: HMAC-verified identity, flagged when it does not match."""

from __future__ import annotations

import hashlib
import hmac

from tests.integration.conftest import TestAgent, room_of
from tests.integration.test_commands import notice

SECRET = "shared-with-the-shop"


def signed(user_id: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def test_verified_and_forged_identities(make_matrix_bridge, matrix_agent: TestAgent,
                                              visitors) -> None:
    bridge = await make_matrix_bridge(identity=SECRET)
    agent = matrix_agent
    earlier = await visitors(bridge.base_url)
    await earlier.send({"type": "start", "identity": {
        "id": "cust-42", "name": "Anna Kovács", "email": "anna@old.example.com",
        "hash": signed("cust-42")}})  # no pre-chat form: the site vouched for her
    first = await earlier.wait("started")
    room1 = await room_of(bridge, first["conversation"])
    await agent.join(room1)
    await earlier.say("my first chat")
    await agent.say(room1, "!info")
    await notice(agent, room1, "Anna Kovács <anna@old.example.com> (verified by the site as "
                 "user cust-42)")
    await agent.say(room1, "!end")

    later = await visitors(bridge.base_url)
    await later.send({"type": "start", "identity": {
        "id": "cust-42", "email": "anna@new.example.com", "name": "Anna",
        "hash": signed("cust-42")}})
    second = await later.wait("started")
    room2 = await room_of(bridge, second["conversation"])
    await agent.join(room2)
    await agent.say(room2, "!history")  # matched by the verified id, not the new email
    await notice(agent, room2, "my first chat")

    forger = await visitors(bridge.base_url)
    await forger.send({"type": "start", "identity": {
        "id": "cust-42", "name": "Mallory", "email": "m@example.com",
        "hash": signed("cust-42", "guessed-secret")}})
    third = await forger.wait("started")  # not refused, but flagged
    room3 = await room_of(bridge, third["conversation"])
    await agent.join(room3)
    await agent.say(room3, "!info")
    await notice(agent, room3, "claims to be site user cust-42, NOT verified")
    await agent.say(room3, "!history")
    await notice(agent, room3, "No earlier chats with m@example.com.")
