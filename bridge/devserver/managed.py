"""What Synapse and Prosody have in common as the dev servers' processes: a data directory,
a child in its own session (a demo terminal's Ctrl-C is the caller's to pass on), a wait
until the server answers, a stop by signal, and a leftover of a parent that died stopped
before a new start."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from bridge.devserver.process import port_accepts, read_pid, terminate, terminate_foreign

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
STDOUT_NAME = "stdout.log"


class ManagedServer:
    """The process side of a dev server; subclasses say how to run and probe theirs."""

    NAME: ClassVar[str]
    CONFIG_NAME: ClassVar[str]
    LOG_NAME: ClassVar[str]
    PID_NAME: ClassVar[str]
    START_TIMEOUT: ClassVar[float]
    STOP_TIMEOUT: ClassVar[float]
    POLL_INTERVAL: ClassVar[float]
    ERROR: ClassVar[type[Exception]]

    data_dir: Path
    _proc: subprocess.Popen[bytes] | None

    # -- what a subclass provides ------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        """Whether the server answers as a started one does."""
        raise NotImplementedError

    def _is_ours(self, pid: int) -> bool:
        """Whether `pid` is a server of this kind on this data dir."""
        raise NotImplementedError

    def _ports(self) -> tuple[int, ...]:
        return ()

    def _require(self) -> None:
        """Fail with the install hint when the server is not installed."""

    def _spawned(self, proc: subprocess.Popen[bytes]) -> None:
        """After the spawn (Synapse records its pid itself)."""

    def _where(self) -> str:
        return ", ".join(f"127.0.0.1:{port}" for port in self._ports())

    # -- paths -------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.data_dir / self.CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.LOG_NAME

    @property
    def pid_path(self) -> Path:
        return self.data_dir / self.PID_NAME

    # -- process lifecycle -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float | None = None) -> None:
        """Spawn the server and block until it answers."""
        if self.running:
            return
        self._require()
        self._stop_leftover()
        for port in self._ports():
            if port_accepts(port):
                # Without this check a stranger on the port could answer our probe while
                # our child dies on "address in use".
                raise self.ERROR(f"port {port} is already in use; cannot start {self.NAME}")
        started = time.monotonic()
        self._spawn()
        try:
            self._wait_ready(self.START_TIMEOUT if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("%s up on %s after %.2fs (pid %s, data %s)", self.NAME, self._where(),
                    time.monotonic() - started, self.pid, self.data_dir)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the server, SIGKILL it after `timeout`; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate(proc, self.STOP_TIMEOUT if timeout is None else timeout, self.NAME)
        # A server removes its pid file on a clean shutdown, but not after SIGKILL.
        self.pid_path.unlink(missing_ok=True)
        logger.info("%s (pid %d) stopped", self.NAME, proc.pid)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _spawn(self) -> None:
        with (self.data_dir / STDOUT_NAME).open("wb") as out:
            self._proc = subprocess.Popen(
                self._command(), cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self._spawned(self._proc)

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self.ERROR(f"{self.NAME} exited with code {code} during startup\n"
                                 f"{self._log_tail()}")
            if self._answers():
                return
            if time.monotonic() >= deadline:
                raise self.ERROR(f"{self.NAME} did not answer on {self._where()} within "
                                 f"{timeout:.0f}s\n{self._log_tail()}")
            time.sleep(self.POLL_INTERVAL)

    def _log_tail(self) -> str:
        # Config errors are printed before logging is set up, so both files are shown.
        parts = []
        for path in (self.log_path, self.data_dir / STDOUT_NAME):
            try:
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            except FileNotFoundError:
                continue
            if lines:
                parts.append(f"--- last {len(lines)} lines of {path} ---\n" + "\n".join(lines))
        return "\n".join(parts) or "(no log output)"

    def _stop_leftover(self) -> None:
        """Stop a server left running on this data dir by a parent that died."""
        pid = read_pid(self.pid_path)
        if pid is not None and self._is_ours(pid):
            logger.warning("stopping leftover %s (pid %d) on %s", self.NAME, pid, self.data_dir)
            if not terminate_foreign(pid, self._is_ours, timeout=self.STOP_TIMEOUT):
                raise self.ERROR(f"could not stop leftover {self.NAME} pid {pid}")
        self.pid_path.unlink(missing_ok=True)
