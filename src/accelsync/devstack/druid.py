"""Druid for the `druid_default` connection: accelsync's HTTP emulator of Druid's router, on 127.0.0.1:8888.

Druid cannot be installed on these machines, so devstack runs `accelsync.devstack.druid_emulator`
(task API, coordinator API and SQL, see its docstring) as a background process, keeping its
datasources under the service folder. `docker/` carries the real Druid for users.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from accelsync.devstack.base import Service
from accelsync.devstack.process import spawn_detached


class DruidEmulator(Service):
    """The Druid emulator started detached, one port for the overlord, coordinator and broker paths."""

    name = "druid"
    label = "Druid (emulator)"
    default_port = 8888
    conn_id = "druid_default"
    process_name = "accelsync.devstack.druid_emulator"

    def check(self, timeout: float) -> bool:
        """`GET /status/health` answered with `true`."""
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/status/health", timeout=timeout) as reply:
                return reply.status == 200 and json.loads(reply.read()) is True
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def ensure_installed(self) -> None:
        """Nothing to install: the emulator is part of accelsync."""

    def start(self) -> None:
        cmd = [sys.executable, "-m", self.process_name, "--host", self.host, "--port", str(self.port),
               "--data-dir", str(self.dir / "data")]
        spawn_detached(cmd, self.log_file, self.pid_file, cwd=self.dir)

    def connection(self) -> str:
        """Airflow's Druid provider form: host, port, and `schema` http or https."""
        return json.dumps({"conn_type": "druid", "host": self.host, "port": self.port, "schema": "http"})
