"""Process plumbing for devstack: detached spawning, pid files, ports, logs, Debian packages.

Nothing here knows about a particular service; `base.Service` composes these helpers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from accelsync.errors import AccelsyncError


class DevstackError(AccelsyncError):
    """A local service could not be started, stopped or checked; the message says why and what to do."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(host: str, port: int, timeout: float) -> bool:
    """Wait until nothing listens on host:port; True if it closed in time."""
    deadline = time.monotonic() + timeout
    while port_open(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in a pid file, or None when absent or unreadable."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


# Exit codes of our own children reaped by pid_alive (negative: killed by that signal).
EXITED: dict[int, int] = {}


def killed_by_signal(pid: int | None) -> bool:
    return (EXITED.get(pid) or 0) < 0 if pid else False


def exit_text(pid: int | None) -> str:
    """How our child `pid` ended, when pid_alive reaped it: for error messages."""
    code = EXITED.get(pid) if pid else None
    if code is None:
        return ""
    return f" (it was killed by signal {-code})" if code < 0 else f" (it exited with status {code})"


def pid_alive(pid: int, expect: str | None = None) -> bool:
    """True when `pid` runs (and is not a zombie); with `expect`, its command line must contain it.

    The `expect` check guards against a stale pid file whose pid was reused by another program.
    """
    try:  # reap it if it is our own exited child, or it lingers as a zombie
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            EXITED[pid] = os.waitstatus_to_exitcode(status)
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs: trust kill(0)
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return expect is None or expect in cmdline


def spawn_detached(cmd: list[str], log_file: Path, pid_file: Path, cwd: Path,
                   env: dict[str, str] | None = None) -> int:
    """Start `cmd` in its own session, output appended to `log_file`; record and return its pid.

    The process outlives the caller (new session, no inherited terminal), like a daemon.
    """
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    _wait_exec_done(proc.pid)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_exec_done(pid: int, timeout: float = 2.0) -> None:
    """Wait until the new program's command line shows in /proc (at most `timeout` seconds).

    Popen returns while the kernel is still finishing execve: for a moment /proc/<pid>/cmdline
    reads empty, and `pid_alive(pid, expect)` would call a server that just started dead (and
    `up` would stop it before it logged a word).
    """
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cmdline.read_bytes():
                return
        except OSError:  # no procfs, or the program already exited: nothing to wait for
            return
        time.sleep(0.001)


def terminate(pid: int, expect: str | None = None, timeout: float = 30.0,
              sig: int = signal.SIGTERM) -> None:
    """Send `sig` (SIGTERM) to `pid`, wait for it to exit, SIGKILL it after `timeout` seconds."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid, expect):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5
            while pid_alive(pid, expect) and time.monotonic() < deadline:
                time.sleep(0.1)
            return
        time.sleep(0.1)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


def find_binary(*names: str) -> str | None:
    """Locate an executable on PATH or in the sbin folders (often missing from a user's PATH)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def apt_install(package: str, log_file: Path) -> None:
    """Install a Debian package when running as root; otherwise fail saying what to install."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DevstackError(f"the Debian package {package} is not installed: run "
                            f"`sudo apt-get install -y {package}` and try again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log_file, "ab") as log:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode:
                raise DevstackError(f"`{' '.join(cmd)}` failed; its output ends:\n{tail(log_file)}")
