"""Run several server processes as one devstack service: `python -m accelsync.dev.devstack.supervisor NAME SPEC`.

Some servers are more than one process (HBase: the master JVM and its Thrift gateway). devstack
tracks a service by one pid, so this small supervisor is that pid: it starts every process of
SPEC (a JSON file: `{"processes": [{"name", "cmd", "log", "stop_timeout", "restart", "env"}, ...]}`)
at once, each writing its own log (`env`: variables added to the supervisor's own), and then

- on SIGTERM or SIGINT stops them in reverse order (SIGTERM, SIGKILL after `stop_timeout` s) and
  exits 0: `devstack down` stops the whole service by stopping this process;
- when one of them ends on its own, stops the others, writes which one ended, how, and the end of
  its log to its own output (the service log devstack shows when a start fails), and exits 1;
- except a process marked `"restart": true` (an Airflow Celery worker, as systemd or Kubernetes
  would restart one): it is started again, unless it ended within `_QUICK` s of its start
  `_QUICK_LIMIT` times in a row (a real fault, handled as above).

Each process runs in its own process group, and a process that outlives its `stop_timeout` is
killed with its whole group (a Celery worker's pool and task processes with it).

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
_QUICK = 10.0     # a restartable process that ends sooner than this after its start ...
_QUICK_LIMIT = 3  # ... this many times in a row is not restarted again


@dataclass
class Child:
    name: str
    cmd: list[str]
    log: Path
    stop_timeout: float
    restart: bool = False
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    quick_exits: int = 0

    def launch(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_child_setup, env={**os.environ, **(self.env or {})})
        self.started = time.monotonic()


def _child_setup() -> None:
    os.setpgid(0, 0)  # its own process group, killed whole when it does not stop in time
    _die_with_parent()


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: children may outlive a killed supervisor
        pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
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
            _kill_group(proc.pid)
            proc.wait()
        _kill_group(proc.pid)  # what it started and left behind (its group outlives it)


def run(children: list[Child]) -> int:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    for child in children:
        child.launch()
        say(f"started {child.name} (pid {child.proc.pid}), log {child.log}")
    while not stopping:
        for child in children:
            code = child.proc.poll()
            if code is not None and child.restart:
                quick = time.monotonic() - child.started < _QUICK
                child.quick_exits = child.quick_exits + 1 if quick else 0
                if child.quick_exits < _QUICK_LIMIT:
                    _kill_group(child.proc.pid)
                    old = child.proc.pid
                    child.launch()
                    say(f"{child.name} (pid {old}) {how(code)}: restarted it (pid {child.proc.pid})")
                    continue
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
    children = [Child(p["name"], p["cmd"], Path(p["log"]), float(p.get("stop_timeout", 20)),
                      bool(p.get("restart")), p.get("env")) for p in spec["processes"]]
    return run(children)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
