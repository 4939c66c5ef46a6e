"""A visitor connection that keeps the frames it is sent in a list."""

from __future__ import annotations

from bridge.core.frames import Frame


class ListSink:
    """A `VisitorSink` for tests: `frames` in the order they were sent."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.drains = 0

    async def send(self, frame: Frame) -> None:
        self.frames.append(frame)

    async def drain(self) -> None:
        self.drains += 1

    def of(self, frame_type: str) -> list[Frame]:
        """The frames of one `type`, in order."""
        return [f for f in self.frames if f.get("type") == frame_type]

    def last(self, frame_type: str) -> Frame:
        """The latest frame of one `type`; fails the test when there is none."""
        found = self.of(frame_type)
        assert found, f"no {frame_type!r} frame among {self.types()}"
        return found[-1]

    def types(self) -> list[str]:
        return [str(f.get("type")) for f in self.frames]

    def texts(self, sender: str | None = None) -> list[str]:
        """The texts of the `message` frames, from one sender (visitor, agent, system)."""
        return [f["text"] for f in self.of("message") if sender in (None, f["from"])]

    def clear(self) -> None:
        self.frames.clear()
