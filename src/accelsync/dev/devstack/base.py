"""The shape every devstack service shares: reuse a healthy server or start one, track it, stop it.

A service subclass declares its name, port, Debian package and Airflow connection, and
implements three things: a real protocol health check, how to launch the server, and the
connection it offers. This base owns the rest: pid files, logs, locking, waiting for health,
and telling apart servers devstack started from servers it merely reused.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from accelsync.dev.devstack.process import (DevstackError, apt_install, exit_text, find_binary,
                                        killed_by_signal, pid_alive, port_open, read_pid, tail,
                                        terminate, wait_port_closed)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def devstack_home() -> Path:
    """Where services keep data, logs and pid files: `$ACCELSYNC_DEVSTACK_HOME` if set, else
    `$ACCELSYNC_HOME/devstack`, where ACCELSYNC_HOME defaults to `./.accelsync` (git-ignored)."""
    explicit = os.environ.get("ACCELSYNC_DEVSTACK_HOME")
    if explicit:
        return Path(explicit).absolute()
    return Path(os.environ.get("ACCELSYNC_HOME") or ".accelsync").absolute() / "devstack"


def start_timeout() -> float:
    """Seconds to wait for a started server to become healthy (`ACCELSYNC_DEVSTACK_TIMEOUT`, 120)."""
    return float(os.environ.get("ACCELSYNC_DEVSTACK_TIMEOUT") or 120)


@dataclass
class ServiceStatus:
    """One service as devstack sees it: whether it answers, where, and whether devstack started it."""

    name: str
    address: str
    up: bool
    started_by_us: bool
    detail: str = ""
    version: str = ""

    def line(self) -> str:
        """One aligned line for the terminal, e.g. `mysql   up    127.0.0.1:3306  MariaDB 10.11.14  (reused)`."""
        state = "up" if self.up else "down"
        detail = f"  ({self.detail})" if self.detail else ""
        version = f"  {self.version}" if self.version else ""
        return f"{self.name:<8} {state:<5} {self.address:<14}{version}{detail}"


class Service(ABC):
    """A local server devstack can check, start and stop on host:port.

    Host and port come from `ACCELSYNC_<NAME>_HOST` / `ACCELSYNC_<NAME>_PORT` unless given.
    Data, logs and the pid file live in `devstack_home()/<name>/`.
    """

    name: ClassVar[str]                 # registry key, e.g. "mysql"
    label: ClassVar[str]                # what users call it, e.g. "MariaDB"
    default_port: ClassVar[int]
    conn_id: ClassVar[str]              # the Airflow connection id it serves
    process_name: ClassVar[str]         # found in the server's command line (guards stale pid files)
    package: ClassVar[str | None] = None                 # Debian package with the server binaries
    binaries: ClassVar[tuple[tuple[str, ...], ...]] = ()  # required executables, alternatives per entry
    requires: ClassVar[tuple[str, ...]] = ()   # services `up` starts first (by name)
    on_demand: ClassVar[bool] = False   # True: started only when named (`up airflow`), not by a bare `up`
    stop_signal: ClassVar[int] = signal.SIGTERM           # what `down` sends first
    stop_timeout: ClassVar[float] = 30.0                  # seconds before `down` sends SIGKILL
    # Log text after which a starting server never becomes healthy, even when its process lingers
    # (Kafka logs a fatal fault, then may hang in its shutdown hooks instead of exiting).
    fatal_marks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: str | None = None, port: int | None = None, home: Path | None = None):
        prefix = f"ACCELSYNC_{self.name.upper()}_"
        self.host = host or os.environ.get(prefix + "HOST") or "127.0.0.1"
        raw_port = port or os.environ.get(prefix + "PORT") or self.default_port
        try:
            self.port = int(raw_port)
        except ValueError:
            raise DevstackError(f"{prefix}PORT={raw_port!r} is not a port number") from None
        self.dir = (home or devstack_home()) / self.name

    # -- what a service implements -------------------------------------------------------------

    @abstractmethod
    def check(self, timeout: float) -> bool:
        """One real protocol round trip against host:port; True when the server answers correctly."""

    @abstractmethod
    def start(self) -> None:
        """Launch the server in the background (binaries are installed; `self.dir` exists)."""

    @abstractmethod
    def connection(self) -> str:
        """The Airflow connection (URI or JSON form) for this server."""

    def prepare(self) -> None:
        """Make a healthy server ready for accelsync (e.g. create its database). Idempotent."""

    def version(self) -> str:
        """The server's name and version as the running server reports them ("" when unknown)."""
        return ""

    def _version(self) -> str:
        try:
            return self.version()
        except Exception:  # a version we cannot read never fails status or up
            return ""

    def ensure_installed(self) -> None:
        """Make sure the server binaries exist: install the Debian package as root, else fail."""
        if self._missing():
            self.dir.mkdir(parents=True, exist_ok=True)
            apt_install(self.package or self._missing()[0], self.dir / "install.log")
            if self._missing():
                raise DevstackError(f"{self.package} is installed but {self._missing()[0]} is still "
                                    f"not found on PATH or in /usr/sbin")

    # -- shared behaviour ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def healthy(self, timeout: float = 2.0) -> bool:
        """A cheap port probe first (no client noise when nothing listens), then the protocol check."""
        return port_open(self.host, self.port) and self.check(timeout)

    def our_pid(self) -> int | None:
        """The pid of the server devstack started, if its pid file points to a live server."""
        pid = read_pid(self.pid_file)
        return pid if pid and pid_alive(pid, self.process_name) else None

    def status(self) -> ServiceStatus:
        """Whether the server answers now, and whether devstack started it."""
        pid = self.our_pid()
        if self.healthy():
            detail = f"started by devstack, pid {pid}" if pid else "reused"
            return ServiceStatus(self.name, self.address, True, bool(pid), detail, self._version())
        detail = f"pid {pid} not answering" if pid else "not running"
        return ServiceStatus(self.name, self.address, False, bool(pid), detail)

    def up(self) -> ServiceStatus:
        """Reuse a healthy server on the port, else start one and wait until it is healthy."""
        with self._lock():
            pid = self.our_pid()
            if pid or port_open(self.host, self.port):
                # ours still starting, or someone else's: give it a moment, never start a second one
                if not self._wait_healthy(start_timeout() if pid else 10.0):
                    raise DevstackError(self._busy_message(pid))
                return self._ready("reused", pid)
            if self.host not in LOCAL_HOSTS:
                raise DevstackError(f"{self.label} does not answer on {self.address}, and devstack "
                                    f"only starts services on this machine (127.0.0.1)")
            self.ensure_installed()
            if self.healthy():  # installing a package may have started the distribution's server
                return self._ready("reused", None)
            self.dir.mkdir(parents=True, exist_ok=True)
            # Another attempt when a server died or hung without a word in its log, or was killed
            # by a signal: seen in CI (pids recycle fast under pid_max 32768, and a
            # stale kill meant for another process can hit a new one); a real problem (bad
            # config, port taken) always logs and fails at once.
            attempts = 3
            for attempt in range(1, attempts + 1):
                self.pid_file.unlink(missing_ok=True)
                logged = self.log_file.stat().st_size if self.log_file.exists() else 0
                self.start()
                launched = read_pid(self.pid_file)  # servers may delete their pid file when they die
                if self._wait_healthy(start_timeout(), launched, logged):
                    return self._ready("started", self.our_pid())
                pid = read_pid(self.pid_file) or launched
                fatal = self._logged_fatal(logged)
                hung = bool(pid) and pid_alive(pid, self.process_name)
                if pid:
                    terminate(pid, self.process_name, timeout=10)
                self.pid_file.unlink(missing_ok=True)
                silent = (self.log_file.stat().st_size if self.log_file.exists() else 0) == logged
                # A logged fatal error is never retried; the signal that stopped such a server is ours.
                if fatal or not (silent or killed_by_signal(launched)) or attempt == attempts:
                    how = (f" (it logged {fatal!r} and was stopped)" if fatal and hung
                           else exit_text(launched) or (f" (it logged {fatal!r})" if fatal else ""))
                    raise DevstackError(f"{self.label} did not become healthy on {self.address} within "
                                        f"{start_timeout():.0f}s{how}; {self.log_file} ends:\n"
                                        f"{tail(self.log_file)}")
            raise AssertionError("unreachable")

    def down(self) -> str:
        """Stop the server if devstack started it; leave any other server alone. Says what it did."""
        with self._lock():
            pid = self.our_pid()
            if pid:
                terminate(pid, self.process_name, self.stop_timeout, self.stop_signal)
                wait_port_closed(self.host, self.port, timeout=10)
                self.pid_file.unlink(missing_ok=True)
                return f"stopped {self.name} on {self.address} (pid {pid})"
            self.pid_file.unlink(missing_ok=True)
            if port_open(self.host, self.port):
                return f"left {self.name} on {self.address} running (not started by devstack)"
            return f"{self.name} was not running on {self.address}"

    def _ready(self, how: str, pid: int | None) -> ServiceStatus:
        self.prepare()
        if how == "started":
            detail = f"started by devstack, pid {pid}"
        else:
            detail = f"reused, started by devstack, pid {pid}" if pid else "reused"
        return ServiceStatus(self.name, self.address, True, bool(pid), detail, self._version())

    def _wait_healthy(self, timeout: float, launched: int | None = None, logged: int | None = None) -> bool:
        """Poll until healthy; give up early when the `launched` server (or its pid file's) dies, or
        logs one of its `fatal_marks` after byte `logged` of its log."""
        deadline = time.monotonic() + timeout
        while True:
            if self.healthy():
                return True
            pid = read_pid(self.pid_file) or launched
            if pid and not pid_alive(pid, self.process_name):
                return False
            if logged is not None and self._logged_fatal(logged):
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)

    def _logged_fatal(self, offset: int) -> str:
        """The first of `fatal_marks` in the log after byte `offset`, or ""."""
        if not self.fatal_marks or not self.log_file.exists():
            return ""
        with open(self.log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        return next((mark for mark in self.fatal_marks if mark in text), "")

    def _busy_message(self, pid: int | None) -> str:
        if pid:
            return (f"{self.label} started by devstack (pid {pid}) does not answer on {self.address}; "
                    f"run `accelsync devstack down {self.name}` and try again. "
                    f"{self.log_file} ends:\n{tail(self.log_file)}")
        return (f"{self.address} is in use but does not answer as {self.label}: free the port or "
                f"set ACCELSYNC_{self.name.upper()}_PORT to another one")

    def _missing(self) -> list[str]:
        return [alts[0] for alts in self.binaries if not find_binary(*alts)]

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down of this service across processes (e.g. parallel test workers)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
