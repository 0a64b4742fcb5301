"""Run several server processes as one devstack service: `python -m accelsync.dev.devstack.supervisor NAME SPEC`.

Some servers are more than one process (HBase: the master JVM and its Thrift gateway). devstack
tracks a service by one pid, so this small supervisor is that pid: it starts every process of
SPEC (a JSON file: `{"processes": [{"name", "cmd", "log", "stop_timeout"}, ...]}`) at once, each
writing its own log, and then

- on SIGTERM or SIGINT stops them in reverse order (SIGTERM, SIGKILL after `stop_timeout` s) and
  exits 0: `devstack down` stops the whole service by stopping this process;
- when one of them ends on its own, stops the others, writes which one ended, how, and the end of
  its log to its own output (the service log devstack shows when a start fails), and exits 1.

Children get SIGKILL if the supervisor itself dies (Linux parent-death signal), so no server is
left running without the pid devstack knows.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_TAIL = 15        # log lines shown for a process that ended
_POLL = 0.2       # seconds between looks at the children


@dataclass
class Child:
    name: str
    cmd: list[str]
    log: Path
    stop_timeout: float
    proc: subprocess.Popen | None = None


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: children may outlive a killed supervisor
        pass


def say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} accelsync supervisor: {text}", flush=True)


def log_tail(path: Path, lines: int = _TAIL) -> str:
    """The last `lines` lines of a Java log without stack frames (`\\tat ...`, `... N more`),
    which would otherwise push the error message itself out of view."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 256 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    kept = [line for line in text.splitlines()
            if not line.lstrip().startswith(("at ", "... ")) and line.strip()]
    return "\n".join(kept[-lines:]) or f"(empty log at {path})"


def how(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


def stop(children: list[Child]) -> None:
    """SIGTERM each running child, last started first; SIGKILL one that outlives its timeout."""
    for child in reversed(children):
        proc = child.proc
        if proc is None or proc.poll() is not None:
            continue
        say(f"stopping {child.name} (pid {proc.pid})")
        proc.terminate()
        try:
            proc.wait(child.stop_timeout)
        except subprocess.TimeoutExpired:
            say(f"{child.name} (pid {proc.pid}) still runs after {child.stop_timeout:.0f}s: killing it")
            proc.kill()
            proc.wait()


def run(children: list[Child]) -> int:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    for child in children:
        with open(child.log, "ab") as log:
            child.proc = subprocess.Popen(child.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        say(f"started {child.name} (pid {child.proc.pid}), log {child.log}")
    while not stopping:
        for child in children:
            code = child.proc.poll()
            if code is not None:
                stop(children)
                say(f"{child.name} (pid {child.proc.pid}) {how(code)}; {child.log} ends:\n"
                    f"{log_tail(child.log)}")
                return 1
        time.sleep(_POLL)
    stop(children)
    say("stopped")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m accelsync.dev.devstack.supervisor NAME SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    children = [Child(p["name"], p["cmd"], Path(p["log"]), float(p.get("stop_timeout", 20)))
                for p in spec["processes"]]
    return run(children)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
