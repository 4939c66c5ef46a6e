"""After the end: the survey and the transcript (download, email by the visitor or agent)."""

from __future__ import annotations

import aiohttp

from tests.integration.conftest import TestAgent, chat_with_agent, room_of
from tests.integration.test_commands import notice


def smtp_settings(port: int) -> dict:
    return {"host": "127.0.0.1", "port": port, "starttls": False,
            "from": "Support <support@example.com>", "timeout": 5.0}


async def test_the_visitor_rates_the_chat_once(make_bridge, agent: TestAgent,
                                               visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    await visitor.send({"type": "survey", "rating": 5})
    assert (await visitor.wait("error"))["code"] == "not_ended"
    await agent.say(room, "!end")
    ended = await visitor.wait("ended")
    assert ended["survey"] == {"question": "How was this chat?", "scale": 5}
    await visitor.send({"type": "survey", "rating": 4, "comment": "quick <b>and</b> kind"})
    assert (await visitor.wait("rated"))["rating"] == 4
    await notice(agent, room, "⭐ Anna rated the chat 4/5: quick <b>and</b> kind")
    before = len(visitor.frames)
    await visitor.send({"type": "survey", "rating": 1})
    assert (await visitor.wait("error", start=before))["code"] == "already_rated"
    await visitor.send({"type": "survey", "rating": 6})
    assert (await visitor.wait("error", lambda f: f["code"] == "bad_field"))
    conversation = bridge.store.conversation(started["conversation"])
    assert (conversation.rating, conversation.comment) == (4, "quick <b>and</b> kind")


async def test_transcript_download_needs_the_token(make_bridge, agent: TestAgent,
                                                   visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    await visitor.say("where is order 1234?")
    await agent.say(room, "on its way")
    await visitor.wait("message", lambda f: f["text"] == "on its way")
    await agent.say(room, "!note internal remark")
    await notice(agent, room, "Note saved")
    url = f"{bridge.base_url}/v1/transcript"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"X-Livechat-Token": started["token"]}) as response:
            assert response.status == 200
            text = await response.text()
            assert "attachment" in response.headers["Content-Disposition"]
        async with http.get(url, headers={"X-Livechat-Token": "wrong"}) as response:
            assert response.status == 401
        async with http.get(url) as response:
            assert response.status == 401
    assert "Anna: where is order 1234?" in text and "Alice: on its way" in text
    assert "internal remark" not in text


async def test_transcript_by_email_from_visitor_and_agent(make_bridge, agent: TestAgent,
                                                          visitors, start_server) -> None:
    smtp = start_server()
    bridge = await make_bridge(smtp=smtp_settings(smtp.port))
    visitor = await visitors(bridge.base_url)
    started = await visitor.start(name="Łukasz\r\nBcc: victim@example.com",
                                  email="lukasz@example.com")
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("zażółć gęślą jaźń")
    await agent.wait_text(room, "zażółć gęślą jaźń")

    await visitor.send({"type": "transcript", "email": "lukasz@example.com"})
    sent = await visitor.wait("transcript")
    assert sent == {"type": "transcript", "sent": True, "email": "lukasz@example.com"}
    mail = smtp.handler.received[0]
    assert mail.envelope.rcpt_tos == ["lukasz@example.com"]
    message = mail.message
    # The CRLF never reached a header: one recipient, no Bcc, the name only as quoted text.
    assert [a.addr_spec for a in message["To"].addresses] == ["lukasz@example.com"]
    assert "Bcc" not in message
    assert "zażółć gęślą jaźń" in message.get_content()

    before = len(visitor.frames)
    await visitor.send({"type": "transcript", "email": "x@example.com\r\nBcc: v@example.com"})
    assert (await visitor.wait("error", start=before))["code"] == "bad_email"
    await agent.say(room, "!transcript boss@example.com")
    await notice(agent, room, "Transcript sent to boss@example.com.")
    assert [m.envelope.rcpt_tos for m in smtp.handler.received] == [
        ["lukasz@example.com"], ["boss@example.com"]]


async def test_transcript_email_without_smtp_is_a_clear_error(make_bridge, agent: TestAgent,
                                                              visitors) -> None:
    _, visitor, _, room = await chat_with_agent(make_bridge, visitors, agent)
    await visitor.send({"type": "transcript", "email": "anna@example.com"})
    assert (await visitor.wait("error"))["code"] == "mail_unavailable"
    await agent.say(room, "!transcript")
    await notice(agent, room, "Transcript not sent: sending email is not set up here")
