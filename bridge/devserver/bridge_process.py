"""The bridge as its own process (`python -m bridge run -c FILE`), as in production: for tests
that must kill it mid-stream and benchmarks that keep its work off their own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import aiohttp

# The directory that holds the `bridge` package, so `-m bridge` runs this very checkout.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
READY_POLL_S = 0.05
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # for an orderly shutdown, then SIGKILL


class BridgeExited(RuntimeError):
    """The bridge process ended before it was ready; the message ends with its log."""


class BridgeProcess:
    """One `python -m bridge run`; `start` returns once `/healthz` answers."""

    def __init__(self, config: Path, port: int, log: Path, *, log_level: str | None = None
                 ) -> None:
        self.config, self.port, self.log = config, port, log
        self.log_level = log_level
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        level = ["--log-level", self.log_level] if self.log_level else []
        with self.log.open("ab") as log:  # appended: a restarted bridge keeps the story
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", *level, "run", "-c", str(self.config),
                cwd=str(SOURCE_ROOT), stdout=log, stderr=log)
        async with asyncio.timeout(READY_TIMEOUT_S), aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    raise BridgeExited(f"the bridge exited ({self.proc.returncode}): "
                                       f"{self.log.read_text(errors='replace')[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base_url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(READY_POLL_S)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, as a crash or a power cut would leave it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM (an orderly shutdown), SIGKILL after STOP_TIMEOUT_S."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill()
