"""The admin's translations reach visitors in their language: widget texts, queue names and
topics, and the welcome line."""

from __future__ import annotations

from typing import Any

import aiohttp

QUEUES = [{"id": "support", "name": "Support", "agents": ["alice"],
           "welcome": "Hi {visitor}, {agent} will be with you shortly.",
           "translations": {"de": {"name": "Kundendienst",
                                   "welcome": "Hallo {visitor}, {agent} ist gleich da."}}},
          {"id": "sales", "name": "Sales", "topic": "Buying", "agents": ["bob"]}]
WIDGET_STRINGS = {"start": "Start chat", "de": {"start": "Chat starten", "title": "Fragen?",
                                                "someone": "jemand"}}


async def get(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_widget_texts_and_queues_in_the_visitors_language(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge(queues=QUEUES, widget={"strings": WIDGET_STRINGS})
    german = await get(f"{bridge.base_url}/v1/config?lang=de-AT")
    assert german["title"] == "Fragen?" and german["strings"]["start"] == "Chat starten"
    assert german["strings"]["end"] == "Chat beenden"  # not the admin's: the built-in German
    assert (german["lang"], german["dir"]) == ("de", "ltr")
    assert german["queues"][0] == {"id": "support", "name": "Kundendienst",
                                   "topic": "Kundendienst", "peek": False}
    assert german["queues"][1]["topic"] == "Buying"
    english = await get(f"{bridge.base_url}/v1/config")
    assert english["strings"]["start"] == "Start chat" and english["title"] == "Chat with us"
    assert english["queues"][0]["name"] == "Support"
    status = await get(f"{bridge.base_url}/v1/status?lang=de")
    assert status["queues"][0]["name"] == "Kundendienst"
    unknown = await get(f"{bridge.base_url}/v1/status?lang=xx-<script>")
    assert unknown["queues"][0]["name"] == "Support"


async def test_the_welcome_line_is_in_the_visitors_language(make_matrix_bridge, visitors
                                                            ) -> None:
    bridge = await make_matrix_bridge(queues=QUEUES, widget={"strings": WIDGET_STRINGS})
    german = await visitors(bridge.base_url)
    await german.start(name="Jana", lang="de-DE")
    welcome = await german.wait("message", lambda f: f["from"] == "system")
    assert welcome["text"] == "Hallo Jana, jemand ist gleich da."
    english = await visitors(bridge.base_url)
    await english.start(name="Anna", lang="en")
    welcome = await english.wait("message", lambda f: f["from"] == "system")
    assert welcome["text"] == "Hi Anna, an agent will be with you shortly."
