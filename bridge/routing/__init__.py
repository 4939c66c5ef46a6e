"""Routing's effects, by concern: who can take a chat (availability), who is invited and
who owns it (assignment), the waiting line and /v1/status (waiting_line), and the queues'
lobby rooms (lobbies). The decisions themselves are pure, in bridge/core/routing.py."""
