"""Process helpers shared by the broker and the database: pid files, liveness, stopping."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

Echo = Callable[[str], None]
"""Prints one progress line for the person running the command."""


def read_pid(path: Path) -> int | None:
    """The pid on the first line of ``path``, or None if the file is missing or unreadable."""
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def is_running(pid: int | None, marker: str) -> bool:
    """True if ``pid`` is a live, non-zombie process whose command line contains ``marker``."""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    return marker in _cmdline(proc)


def find_processes(markers: Iterable[str]) -> list[psutil.Process]:
    """Live processes whose command line contains every marker (e.g. a main class and a path)."""
    wanted = list(markers)
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        line = _cmdline(proc)
        if line and all(marker in line for marker in wanted):
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.NoSuchProcess:
                continue
    return found


def stop_process(pid: int, first_signal: signal.Signals, timeout: float) -> bool:
    """Send ``first_signal``, wait up to ``timeout`` s, then SIGKILL. True if it had to be killed.

    Children (e.g. Postgres backends) are waited for as well, so nothing is left behind.
    """
    try:
        proc = psutil.Process(pid)
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    try:
        proc.send_signal(first_signal)
    except psutil.NoSuchProcess:
        return False
    alive = _wait_gone(family, timeout)
    if not alive:
        return False
    for straggler in alive:
        try:
            straggler.kill()
        except psutil.NoSuchProcess:
            continue
    _wait_gone(alive, 10)
    return True


def _gone(proc: psutil.Process) -> bool:
    """True once ``proc`` exited. A zombie counts as gone: init may reap it late."""
    try:
        proc.wait(timeout=0)  # reaps it if it is our own child
        return True
    except psutil.TimeoutExpired:
        pass
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [proc for proc in procs if not _gone(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [proc for proc in alive if not _gone(proc)]
    return alive


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, deadline: float, alive: psutil.Process | None) -> bool:
    """Poll until ``host:port`` accepts connections; False on timeout or if ``alive`` died."""
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if alive is not None and not alive.is_running():
            return False
        time.sleep(0.2)
    return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
