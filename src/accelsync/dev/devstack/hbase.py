"""HBase for the `hbase_default` connection: Apache HBase standalone and its Thrift (1) server.

Two JVMs from Maven Central jars (`maven.Bundle`), run as one devstack service by
`accelsync.dev.devstack.supervisor` (its pid is the service's pid; `down` stops both):

- the **master** (`HMaster start` with `hbase.cluster.distributed=false`): master, one region
  server and ZooKeeper in one JVM, data on the local file system. Ports: ZooKeeper 2182 (Druid's
  ZooKeeper takes 2181), master 16000, region server 16020, master web UI 16010 on 127.0.0.1;
- the **Thrift server** (`ThriftServer start`) on 127.0.0.1:9090 (`ACCELSYNC_HBASE_PORT`), with
  the buffered transport and binary protocol, happybase's defaults.

Configuration (`conf/hbase-site.xml`, `conf/log4j.properties`) is written into the service folder
at each start; data lives in `data/` there and survives `down` / `up` (the region server flushes
its memstores when stopped, and a killed server's write-ahead log is replayed at the next start).
Logs: `master.log`, `thrift.log`, and `hbase.log` (the supervisor: which process ended and how).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.java import OPENS, ensure_jars, java_command
from accelsync.dev.devstack.maven import Artifact, Bundle
from accelsync.dev.devstack.process import spawn_detached

VERSION = "2.6.1"  # the newest 2.x whose hbase-thrift and hbase-rest Maven Central serves
# What these poms pull in but the standalone server and its gateways never load: Hadoop's
# MapReduce and YARN client stack (with its JDBC drivers and caches), distcp, the S3 and SSH file
# systems, HBase's MapReduce jobs.
_UNUSED = ("org.apache.hadoop:hadoop-client", "org.apache.hadoop:hadoop-distcp",
           "org.fusesource.leveldbjni:leveldbjni-all", "net.java.dev.jets3t:jets3t", "com.jcraft:jsch",
           "org.apache.hbase:hbase-mapreduce")
# hbase-rest is not used by devstack: the tests start HBase's REST gateway from the same jars
# to read what accelsync wrote through a client that is not accelsync's own Thrift stack.
BUNDLE = Bundle("hbase", VERSION, tuple(Artifact(f"org.apache.hbase:{name}:{VERSION}", _UNUSED)
                                        for name in ("hbase-server", "hbase-thrift", "hbase-rest")))

ZOOKEEPER_PORT = 2182
MASTER_PORT = 16000
REGIONSERVER_PORT = 16020
MASTER_INFO_PORT = 16010
MASTER_MAIN = "org.apache.hadoop.hbase.master.HMaster"
THRIFT_MAIN = "org.apache.hadoop.hbase.thrift.ThriftServer"
SUPERVISOR = "accelsync.dev.devstack.supervisor"
# Java 17 flags HBase's own bin/hbase adds, and a JVM sized for a small machine.
JVM = [*OPENS, "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
       "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m", "-Djava.net.preferIPv4Stack=true"]
LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{2}: %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.apache.hadoop=WARN
log4j.logger.org.apache.hadoop.hbase=INFO
"""


def site(data: Path, host: str = "127.0.0.1") -> dict[str, str]:
    """hbase-site.xml of the standalone server whose data is under `data` (clients read the
    ZooKeeper entries from it too)."""
    return {
        "hbase.cluster.distributed": "false",
        "hbase.rootdir": (data / "root").as_uri(),
        "hbase.tmp.dir": str(data / "tmp"),
        "hbase.zookeeper.property.dataDir": str(data / "zookeeper"),
        "hbase.zookeeper.quorum": host,
        "hbase.zookeeper.property.clientPort": str(ZOOKEEPER_PORT),
        "hbase.localcluster.assign.random.ports": "false",
        "hbase.master.hostname": host,
        "hbase.master.port": str(MASTER_PORT),
        "hbase.master.info.port": str(MASTER_INFO_PORT),
        "hbase.master.info.bindAddress": host,
        "hbase.regionserver.hostname": host,
        "hbase.regionserver.port": str(REGIONSERVER_PORT),
        "hbase.regionserver.info.port": "-1",
        "hbase.thrift.info.port": "-1",
        # The local file system has no hflush/hsync capability HBase could verify.
        "hbase.unsafe.stream.capability.enforce": "false",
        # Standalone stops ZooKeeper with the master, and on SIGTERM the master and the region
        # server stop in no fixed order: a region server stopped last retries ZooKeeper calls
        # (about 20 s by default) before the JVM exits. One quick retry is enough locally.
        "zookeeper.session.timeout": "10000",
        "zookeeper.recovery.retry": "1",
        "zookeeper.recovery.retry.intervalmill": "200",
        # Thrift 1 as happybase speaks it by default: buffered transport, binary protocol.
        "hbase.regionserver.thrift.framed": "false",
        "hbase.regionserver.thrift.compact": "false",
    }


def write_conf(folder: Path, properties: dict[str, str]) -> Path:
    """`hbase-site.xml` and `log4j.properties` in `folder` (put first on the JVM's classpath)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
                   for k, v in properties.items())
    (folder / "hbase-site.xml").write_text(f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n')
    (folder / "log4j.properties").write_text(LOG4J)
    return folder


class Hbase(Service):
    """Standalone HBase and its Thrift server, under one supervisor process."""

    name = "hbase"
    label = "HBase"
    default_port = 9090
    conn_id = "hbase_default"
    process_name = f"{SUPERVISOR} hbase"

    def check(self, timeout: float) -> bool:
        """happybase's `Connection.tables()` answered (a getTableNames round trip, which needs an
        initialised master behind the Thrift server)."""
        return thrift_answers(self.host, self.port, timeout)

    def ensure_installed(self) -> None:
        """Java 17 and the HBase jars (downloaded from Maven Central on the first start)."""
        ensure_jars(BUNDLE, self.dir / "fetch.log")

    def start(self) -> None:
        conf = write_conf(self.dir / "conf", site(self.dir / "data", self.host))
        # 384m ran out of heap compacting a million-row load (bench/mysql_to_hbase.py)
        heap = os.environ.get("ACCELSYNC_HBASE_HEAP") or "1g"
        # Stopped in reverse order, within the 30 s `down` gives the supervisor (then SIGKILL,
        # after which the write-ahead log still has every acknowledged write).
        processes = [
            {"name": "master", "log": str(self.dir / "master.log"), "stop_timeout": 25,
             "cmd": java_command(BUNDLE, MASTER_MAIN, ["start"], [f"-Xmx{heap}", *JVM], [str(conf)])},
            {"name": "thrift", "log": str(self.dir / "thrift.log"), "stop_timeout": 5,
             "cmd": java_command(BUNDLE, THRIFT_MAIN, ["start", "-b", self.host, "-p", str(self.port)],
                                 ["-Xmx128m", *JVM], [str(conf)])},
        ]
        spec = self.dir / "processes.json"
        spec.write_text(json.dumps({"processes": processes}, indent=1))
        spawn_detached([sys.executable, "-m", SUPERVISOR, "hbase", str(spec)], self.log_file, self.pid_file,
                       cwd=self.dir)

    def version(self) -> str:
        """The version the master reports on its web port (`/api/v1/admin/cluster_metrics`)."""
        url = f"http://{self.host}:{MASTER_INFO_PORT}/api/v1/admin/cluster_metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return f"Apache HBase {json.loads(reply.read())['data']['hbase_version']}"
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            return ""

    def connection(self) -> str:
        return f"hbase://{self.host}:{self.port}"


def thrift_answers(host: str, port: int, timeout: float, protocol: str = "binary") -> bool:
    """happybase's `Connection.tables()` answered by the Thrift server on host:port (a getTableNames
    round trip, which needs an initialised master behind the server)."""
    import happybase
    from thriftpy2.thrift import TException

    try:
        connection = happybase.Connection(host, port, timeout=int(timeout * 1000), protocol=protocol)
    except (TException, OSError):
        return False
    try:
        return isinstance(connection.tables(), list)
    except (TException, OSError, EOFError):
        return False
    finally:
        connection.close()
