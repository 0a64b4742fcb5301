"""HBase's own gateways, started beside the devstack HBase for the tests, from the same jars.

- `RestGateway`: HBase's REST server (`hbase-rest`), which the tests read through with urllib:
  a client that shares nothing with accelsync's writer (happybase, thriftpy2, our Thrift
  encoder), so what the tests assert about cells, versions and timestamps is what HBase stores.
- `ThriftGateway`: a second Thrift (1) server, e.g. with the compact protocol.

Each is a JVM (small heap, C1 only) on a free port of 127.0.0.1, talking to the devstack HBase
through its ZooKeeper (127.0.0.1:2182); `stop()` ends it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ports import free_port

from accelsync.dev.devstack.hbase import BUNDLE, JVM, ZOOKEEPER_PORT, write_conf
from accelsync.dev.devstack.java import java_command


class Gateway:
    """One HBase gateway JVM; `ready()` says when it answers."""

    main: str = ""

    def __init__(self, folder: Path, args: list[str], port: int):
        self.port = port
        self.log = folder / f"{type(self).__name__}.log"
        conf = write_conf(folder / "conf", {
            "hbase.zookeeper.quorum": "127.0.0.1",
            "hbase.zookeeper.property.clientPort": str(ZOOKEEPER_PORT),
            "hbase.rest.info.port": "-1", "hbase.thrift.info.port": "-1"})
        cmd = java_command(BUNDLE, self.main, args, ["-Xmx96m", *JVM], [str(conf)])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{type(self).__name__} did not start; {self.log} ends:\n"
                                   + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:]))
            time.sleep(0.3)

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RestGateway(Gateway):
    """HBase's REST server, read with urllib and JSON (`Accept: application/json`)."""

    main = "org.apache.hadoop.hbase.rest.RESTServer"

    def __init__(self, folder: Path):
        port = free_port()
        super().__init__(folder, ["start", "-p", str(port)], port)

    def ready(self) -> bool:
        try:
            return bool(self.version())
        except (OSError, ValueError):
            return False

    def get(self, path: str):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}",
                                         headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def version(self) -> str:
        """The cluster's version, as the master reports it (`GET /version/cluster`)."""
        return self.get("version/cluster")["Version"]

    def tables(self) -> list[str]:
        return [t["name"] for t in self.get("").get("table", [])]

    def schema(self, table: str) -> dict[str, dict[str, str]]:
        """{family: its attributes as HBase shows them (VERSIONS, BLOCKCACHE, BLOOMFILTER, ...)}."""
        return {f["name"]: {k: v for k, v in f.items() if k != "name"}
                for f in self.get(f"{urllib.parse.quote(table)}/schema")["ColumnSchema"]}

    def cells(self, table: str, versions: int = 10) -> dict[bytes, dict[bytes, list[tuple[bytes, int]]]]:
        """Every row of `table` in HBase's order, with every version of every cell, newest first:
        {row: {b"family:qualifier": [(value, timestamp), ...]}}."""
        # A row glob with every family named: without columns the REST server returns only the
        # newest version of each cell, whatever `v` says.
        families = ",".join(self.schema(table))
        found = self.get(f"{urllib.parse.quote(table)}/*/{families}?v={versions}")
        rows: dict[bytes, dict[bytes, list[tuple[bytes, int]]]] = {}
        for row in found.get("Row", []):
            cells = rows.setdefault(base64.b64decode(row["key"]), {})
            for cell in row["Cell"]:
                cells.setdefault(base64.b64decode(cell["column"]), []).append(
                    (base64.b64decode(cell["$"]), cell["timestamp"]))
        return rows


class ThriftGateway(Gateway):
    """Another HBase Thrift (1) server; `compact=True` serves the compact protocol."""

    main = "org.apache.hadoop.hbase.thrift.ThriftServer"

    def __init__(self, folder: Path, compact: bool = False):
        self.compact = compact
        port = free_port()
        super().__init__(folder, ["start", "-b", "127.0.0.1", "-p", str(port), *(["-c"] if compact else [])], port)

    def ready(self) -> bool:
        from accelsync.dev.devstack.hbase import thrift_answers

        return thrift_answers("127.0.0.1", self.port, 2.0, protocol="compact" if self.compact else "binary")
