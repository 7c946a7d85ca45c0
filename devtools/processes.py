"""``modstream`` child processes for benchmarks: start, wait until ready, stop, restart on exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Settings


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child process load exactly these settings."""
    env = {**os.environ, **settings.as_env()}
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


async def http_ready(port: int, path: str = "/readyz") -> bool | None:
    """True on 200, False on another status, None when nothing answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), 2)
        writer.close()
    except (OSError, TimeoutError):
        return None
    return b" 200 " in status


@dataclass
class Child:
    """One ``modstream <args>`` process, restarted by :meth:`revive` if it exited."""

    name: str
    args: list[str]
    settings: Settings
    log_dir: Path
    ready_port: int
    ready_path: str = "/readyz"
    env: dict[str, str] = field(default_factory=dict)  # on top of child_env(settings)
    exits: list[int] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        executable = str(Path(sys.executable).with_name("modstream"))
        with (self.log_dir / f"{self.name}.log").open("ab") as log_file:
            self._proc = subprocess.Popen(
                [executable, *self.args],
                env={**child_env(self.settings), **self.env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def revive(self) -> bool:
        """Count and restart an exited process (as Kubernetes would); True if it had exited."""
        if self._proc is None or self._proc.poll() is None:
            return False
        self.exits.append(self._proc.returncode)
        self.start()
        return True

    async def wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited; see {self.log_dir / self.name}.log")
            if await http_ready(self.ready_port, self.ready_path):
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {within:.0f} s")

    def stop(self, within: float = 60) -> int | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(within)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    def log_text(self) -> str:
        path = self.log_dir / f"{self.name}.log"
        return path.read_text("utf-8", errors="replace") if path.exists() else ""
