"""Bad visitor input gets a clear error and changes nothing else."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.conftest import TestAgent, room_of


async def test_malformed_frames_get_errors_and_the_socket_survives(make_matrix_bridge,
                                                                   visitors) -> None:
    bridge = await make_matrix_bridge()
    visitor = await visitors(bridge.base_url)
    cases = [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "message", "client_id": "x1", "text": "hi"}', "no_conversation"),
        ('{"type": "start", "visitor": {"email": "a@example.com"}}', "missing_field"),
        ('{"type": "start", "visitor": {"name": "A", "email": "not-an-email"}}', "bad_email"),
        ('{"type": "start", "visitor": {"name": "A", "email": "a@example.com"}, "topic": "x"}',
         "unknown_topic"),
        ('{"type": "resume", "token": "forged-token-value", "after": 0}', "bad_token"),
        ('{"type": "typing", "active": "yes"}', "bad_field"),
        # Inputs Python's json module takes but later code would choke on.
        ("[" * 5000 + "]" * 5000, "bad_frame"),
        ('{"type": "ping", "x": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}", "bad_frame"),
        ('{"type": "read", "seq": NaN}', "bad_json"),
        ('{"type": "resume", "token": "t", "after": ' + "9" * 5000 + "}", "bad_field"),
        ('{"type": "resume", "token": "t", "after": 18446744073709551616}', "bad_field"),
        ('{"type": "resume", "token": "\\ud800", "after": 0}', "bad_token"),
        ('{"type": "start", "visitor": {"name": "A", "email": "a@example.com"}, '
         '"topic": "\\udfff"}', "unknown_topic"),
    ]
    for raw, code in cases:
        before = len(visitor.frames)
        await visitor.send_raw(raw)
        error = await visitor.wait("error", start=before)
        assert error["code"] == code, (raw, error)
    await visitor.send({"type": "ping"})
    await visitor.wait("pong")
    assert bridge.store.open_conversations() == []


async def test_a_failed_resume_keeps_the_current_chat(make_matrix_bridge,
                                                      matrix_agent: TestAgent,
                                                      visitors) -> None:
    bridge = await make_matrix_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await visitor.send({"type": "resume", "token": "not-a-token", "after": 0})
    assert (await visitor.wait("error"))["code"] == "bad_token"
    await visitor.ws.send_bytes(b"\x00\x01")
    assert (await visitor.wait("error", lambda f: f["code"] == "bad_frame"))
    await matrix_agent.join(room)
    await matrix_agent.say(room, "still connected?")
    answer = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert answer["text"] == "still connected?"


async def test_bad_messages_change_nothing(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge(max_text=100)
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    conversation_id = started["conversation"]
    seq_before = bridge.store.conversation(conversation_id).last_seq
    for text, code in [("x" * 101, "too_long"), ("   \n ", "empty"), ("\u202e\u200b", "empty")]:
        before = len(visitor.frames)
        await visitor.send({"type": "message", "client_id": "bad1", "text": text})
        error = await visitor.wait("error", start=before)
        assert (error["code"], error["client_id"]) == (code, "bad1")
    assert bridge.store.conversation(conversation_id).last_seq == seq_before
    ok = await visitor.say("x" * 100)
    assert ok["seq"] == seq_before + 1


async def test_a_foreign_token_cannot_open_someone_elses_chat(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge()
    anna = await visitors(bridge.base_url)
    await anna.start(name="Anna")
    await anna.say("my secret order number is 42")
    mallory = await visitors(bridge.base_url)
    started = await mallory.start(name="Mallory")
    await mallory.send({"type": "resume", "token": started["token"][:-2] + "xx", "after": 0})
    assert (await mallory.wait("error"))["code"] == "bad_token"
    assert all("42" not in f.get("text", "") for f in mallory.frames)


async def test_foreign_origin_is_refused(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await visitors(bridge.base_url, origin="https://evil.example.net")
    assert refused.value.status == 403
    allowed = await visitors(bridge.base_url, origin="https://shop.example.com")
    await allowed.send({"type": "ping"})
    await allowed.wait("pong")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bridge.base_url}/v1/status",
                            headers={"Origin": "https://evil.example.net"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
        async with http.get(f"{bridge.base_url}/v1/status",
                            headers={"Origin": "https://shop.example.com"}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"


async def test_flooding_is_limited_then_closed(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge(frames_per_10s=10)
    visitor = await visitors(bridge.base_url)
    for _ in range(12):
        await visitor.send({"type": "ping"})
    error = await visitor.wait("error")
    assert error["code"] == "rate_limited"
    assert len(visitor.of("pong")) == 10
    for _ in range(60):
        await visitor.send({"type": "ping"})
    await visitor.closed()
    assert visitor.ws.close_code == 1008
    assert len(visitor.of("error")) == 1


async def test_html_is_text_on_both_sides(make_bridge, agent: TestAgent, visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    name = '<img src=x onerror="alert(1)">'
    started = await visitor.start(name=name)
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("<script>alert('x')</script> <b>bold</b>")
    await agent.wait_text(room, "<script>alert('x')</script> <b>bold</b>")
    assert await agent.room_title(room) == f"💬 {name} · Support"
    await agent.say(room, "plain <i>words</i> & more")
    reply = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert reply["text"] == "plain <i>words</i> & more"


async def test_matrix_html_never_leaves_as_html(make_matrix_bridge, matrix_agent: TestAgent,
                                                visitors) -> None:
    bridge = await make_matrix_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await matrix_agent.join(room)
    await visitor.say("<script>alert('x')</script>")
    await matrix_agent.wait_text(room, "<script>alert('x')</script>")
    event = next(e for e in (await matrix_agent.client.room_messages(room, limit=20)).chunk
                 if getattr(e, "body", "").startswith("<script>"))
    assert "formatted_body" not in event.source["content"]
    await matrix_agent.client.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": "plain <i>words</i>",
        "format": "org.matrix.custom.html", "formatted_body": "<b>rich</b> <img src=x>",
    })
    reply = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert reply["text"] == "plain <i>words</i>"


async def test_a_non_hex_identity_hash_starts_the_chat_unverified(make_matrix_bridge,
                                                                  visitors) -> None:
    bridge = await make_matrix_bridge(identity="a-site-secret")
    visitor = await visitors(bridge.base_url)
    for bad_hash in ["é" * 64, "\ud800"]:
        before = len(visitor.frames)
        await visitor.send({"type": "start", "identity": {
            "id": "cust-42", "name": "Anna", "email": "anna@example.com", "hash": bad_hash}})
        started = await visitor.wait("started", start=before)
        assert not visitor.of("error")
        visitor_info = bridge.store.conversation(started["conversation"]).visitor
        assert (visitor_info.identity_id, visitor_info.verified) == ("cust-42", False)


async def test_hostile_offline_bodies_get_400_with_a_documented_code(make_matrix_bridge
                                                                     ) -> None:
    bridge = await make_matrix_bridge()
    cases = [
        (b"[" * 50_000 + b"]" * 10_000, "bad_frame"),
        (b'{"name": "A", "email": "a@example.com", "text": "hi", "x": NaN}', "bad_json"),
        (b'{"name": "A", "email": "a@example.com", "text": "hi", "topic": ' + b"9" * 5000
         + b"}", "bad_field"),
        (b'{"name": "A", "email": "a@example.com", "text": "hi", "topic": "\\udfff"}',
         "unknown_topic"),
        (b"\xff\xfe{}", "bad_json"),
    ]
    async with aiohttp.ClientSession() as http:
        for body, code in cases:
            async with http.post(f"{bridge.base_url}/v1/offline", data=body,
                                 headers={"Content-Type": "application/json"}) as response:
                assert response.status == 400, body[:80]
                assert (await response.json())["error"]["code"] == code, body[:80]
