"""Process handling shared by the private servers (Synapse, Prosody) of the dev tools."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.1


def port_accepts(port: int) -> bool:
    """Whether something already listens on this loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def terminate(proc: subprocess.Popen[bytes], timeout: float, name: str) -> None:
    """SIGTERM our child, SIGKILL it after `timeout`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing", name, proc.pid, timeout)
        proc.kill()
        proc.wait()


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def command_line(pid: int) -> list[bytes]:
    """The process's argv from /proc (empty when gone, or not on Linux; zombies too), so a
    reused PID is never mistaken for our server."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
    except OSError:
        return []


def terminate_foreign(pid: int, still_ours: Callable[[int], bool], timeout: float) -> bool:
    """SIGTERM (then SIGKILL) a process that is not our child, so cannot be waited on;
    False when it would not go."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not still_ours(pid):
                return True
            time.sleep(POLL_INTERVAL)
    return False
