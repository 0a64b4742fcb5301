"""HBase for the `hbase_default` connection: accelsync's Thrift emulator on 127.0.0.1:9090.

HBase cannot be installed on these machines, so devstack runs `accelsync.devstack.hbase_emulator`
(happybase's own Hbase.thrift served by thriftpy2) as a background process. Its tables are kept
in `$ACCELSYNC_DEVSTACK_HOME/hbase/data/` and survive `down` / `up`. `docker/` has the real server.
"""

from __future__ import annotations

import sys

from accelsync.devstack.base import Service
from accelsync.devstack.process import spawn_detached

EMULATOR_MODULE = "accelsync.devstack.hbase_emulator"


class HbaseEmulator(Service):
    """The HBase Thrift (v1) emulator, started detached with this interpreter."""

    name = "hbase"
    label = "HBase (Thrift emulator)"
    default_port = 9090
    conn_id = "hbase_default"
    process_name = EMULATOR_MODULE

    def check(self, timeout: float) -> bool:
        """happybase's `Connection.tables()` answered (a getTableNames round trip)."""
        import happybase
        from thriftpy2.thrift import TException

        try:
            connection = happybase.Connection(self.host, self.port, timeout=int(timeout * 1000))
        except (TException, OSError):
            return False
        try:
            return isinstance(connection.tables(), list)
        except (TException, OSError, EOFError):
            return False
        finally:
            connection.close()

    def ensure_installed(self) -> None:
        """Nothing to install: the emulator is part of accelsync (happybase and thriftpy2 are dependencies)."""

    def start(self) -> None:
        cmd = [sys.executable, "-m", EMULATOR_MODULE, "--host", self.host, "--port", str(self.port),
               "--data-dir", str(self.dir / "data")]
        spawn_detached(cmd, self.log_file, self.pid_file, cwd=self.dir)

    def connection(self) -> str:
        return f"hbase://{self.host}:{self.port}"
