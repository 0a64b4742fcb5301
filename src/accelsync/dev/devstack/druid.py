"""Druid for the `druid_default` connection: a single-machine Apache Druid, its router on 127.0.0.1:8888.

Apache Druid from Maven Central (`org.apache.druid:druid-services`, DRUID_VERSION), run as six
JVMs that devstack starts and stops together as the one service `druid`:

| process | port (router port + n) | what it does |
| --- | --- | --- |
| zookeeper | 2181 (`ACCELSYNC_DRUID_ZOOKEEPER_PORT`) | Druid's service discovery (ZooKeeperServerMain from Druid's own jars) |
| coordinator | +1 | coordinator *and* overlord (`druid.coordinator.asOverlord.enabled`); hosts the Derby metadata store (+5) |
| broker | +2 | SQL and native queries |
| historical | +3 | serves published segments |
| indexer | +4 | runs ingestion tasks as threads (no peon JVM per task) |
| router | 8888 (`ACCELSYNC_DRUID_PORT`) | the one address clients use: proxies queries to the broker and `/druid/coordinator`, `/druid/indexer` to the coordinator-overlord |

Deep storage is a local folder, metadata Derby, everything under `$ACCELSYNC_DEVSTACK_HOME/druid/`
(`var/`), so datasources survive `down` / `up`. Each process writes its own log
(`druid/<process>.log`) and pid file; `up` starts ZooKeeper, then the five Druid JVMs at once,
and fails with the log of the process that did not come up. The settings are sized for a 2-core
machine (small heaps and processing buffers, a coordinator that runs every 2 s so a freshly
ingested segment is served within seconds).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from accelsync.dev.devstack.base import LOCAL_HOSTS, Service, ServiceStatus
from accelsync.dev.devstack.java import OPENS, ensure_jars, java_binary
from accelsync.dev.devstack.maven import Artifact, Bundle
from accelsync.dev.devstack.process import (DevstackError, exit_text, pid_alive, port_open, read_pid,
                                        spawn_detached, tail, terminate, wait_port_closed)

DRUID_VERSION = "33.0.0"
BUNDLE = Bundle("druid", DRUID_VERSION, (
    # sigar (host metrics) is published only in a repository these machines cannot reach and is
    # used by no process here.
    Artifact(f"org.apache.druid:druid-services:{DRUID_VERSION}", ("org.hyperic:sigar",)),
))
MAIN = "org.apache.druid.cli.Main"
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
MB = 1_000_000

# Flags of Druid's own jvm.config for Java 17, beside java.OPENS.
DRUID_JVM = ["-server", "-Duser.timezone=UTC", "-Dfile.encoding=UTF-8", "-Djava.net.preferIPv4Stack=true",
             "-Djava.util.logging.manager=org.apache.logging.log4j.jul.LogManager",
             "-Dlog4j.shutdownHookEnabled=true", "-XX:+ExitOnOutOfMemoryError",
             "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED", "--add-opens=java.base/java.nio=ALL-UNNAMED"]
# Quick start on two shared cores: C1 only and the serial collector. Measured on 2 cores: 25-34 s
# of CPU for the six JVMs to come up, 40-75 s with the JVM's defaults (C2, G1).
FAST_START = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m"]

LOG4J2 = """<?xml version="1.0" encoding="UTF-8" ?>
<Configuration status="WARN">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %p [%t] %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="Console"/></Root>
    <Logger name="org.apache.zookeeper" level="warn"/>
    <Logger name="org.apache.curator" level="warn"/>
    <Logger name="org.apache.druid.server.coordinator" level="warn"/>
    <Logger name="org.apache.druid.server.coordinator.duty" level="warn"/>
    <Logger name="org.apache.druid.metadata.SqlSegmentsMetadataManager" level="warn"/>
    <Logger name="org.apache.druid.indexing.overlord.TaskQueue" level="warn"/>
  </Loggers>
</Configuration>
"""


@dataclass(frozen=True)
class Process:
    """One JVM of the cluster: its name, port, heap and direct memory, and its runtime.properties."""

    name: str
    port: int
    heap: str
    direct: str | None
    properties: dict[str, str]


class Druid(Service):
    """ZooKeeper and the five Druid processes of a single-machine cluster, as one service."""

    name = "druid"
    label = "Apache Druid"
    default_port = 8888
    conn_id = "druid_default"
    process_name = MAIN

    def __init__(self, host: str | None = None, port: int | None = None, home: Path | None = None):
        super().__init__(host, port, home)
        raw = os.environ.get("ACCELSYNC_DRUID_ZOOKEEPER_PORT") or "2181"
        try:
            self.zk_port = int(raw)
        except ValueError:
            raise DevstackError(f"ACCELSYNC_DRUID_ZOOKEEPER_PORT={raw!r} is not a port number") from None
        self.var = self.dir / "var"

    # -- the processes -------------------------------------------------------------------------

    def processes(self) -> list[Process]:
        """The Druid JVMs in start order (ZooKeeper is started before them, apart)."""
        p = self.port
        processing = {"druid.processing.buffer.sizeBytes": str(50 * MB), "druid.processing.numThreads": "1",
                      "druid.processing.numMergeBuffers": "2"}
        return [
            Process("coordinator", p + 1, "384m", None, {
                "druid.service": "druid/coordinator",
                "druid.coordinator.asOverlord.enabled": "true",
                "druid.coordinator.asOverlord.overlordService": "druid/overlord",
                "druid.coordinator.startDelay": "PT1S",
                "druid.coordinator.period": "PT2S",
                "druid.coordinator.period.indexingPeriod": "PT60S",
                "druid.manager.segments.pollDuration": "PT2S",
                "druid.manager.rules.pollDuration": "PT5S",
                "druid.manager.config.pollDuration": "PT5S",
                "druid.coordinator.kill.on": "false",
                "druid.indexer.queue.startDelay": "PT1S",
                "druid.indexer.runner.type": "httpRemote",
                "druid.indexer.storage.type": "metadata",
                "druid.server.http.numThreads": "12",
            }),
            Process("broker", p + 2, "512m", "256m", {
                "druid.service": "druid/broker",
                "druid.broker.http.numConnections": "8",
                "druid.server.http.numThreads": "12",
                "druid.broker.cache.useCache": "false",
                "druid.broker.cache.populateCache": "false",
                # New datasources and columns reach SQL's schema within seconds, not a minute.
                "druid.sql.planner.metadataRefreshPeriod": "PT2S",
                "druid.sql.planner.metadataSegmentPollPeriod": "2000",
                **processing,
            }),
            Process("historical", p + 3, "256m", "256m", {
                "druid.service": "druid/historical",
                "druid.server.http.numThreads": "12",
                "druid.segmentCache.locations": json.dumps(
                    [{"path": str(self.var / "segment-cache"), "maxSize": "50g"}]),
                "druid.segmentCache.numLoadingThreads": "2",
                "druid.historical.cache.useCache": "false",
                "druid.historical.cache.populateCache": "false",
                **processing,
            }),
            Process("indexer", p + 4, "512m", "256m", {
                "druid.service": "druid/indexer",
                "druid.worker.capacity": "3",
                "druid.indexer.task.baseTaskDir": str(self.var / "tasks"),
                "druid.indexer.task.restoreTasksOnRestart": "false",
                # A task that ignores a graceful stop (a `noop`) is interrupted after 10 s, not 5 min.
                "druid.indexer.task.gracefulShutdownTimeout": "PT10S",
                "druid.server.http.numThreads": "16",
                **processing,
            }),
            Process("router", p, "128m", None, {
                "druid.service": "druid/router",
                "druid.router.managementProxy.enabled": "true",
                "druid.router.defaultBrokerServiceName": "druid/broker",
                "druid.router.coordinatorServiceName": "druid/coordinator",
                "druid.router.http.numConnections": "8",
                "druid.router.http.readTimeout": "PT5M",
                "druid.router.http.numMaxThreads": "16",
                "druid.server.http.numThreads": "12",
            }),
        ]

    def common_properties(self) -> dict[str, str]:
        derby_port = self.port + 5
        return {
            "druid.host": "127.0.0.1",
            "druid.extensions.loadList": "[]",
            "druid.extensions.directory": str(self.var / "extensions"),
            "druid.extensions.hadoopDependenciesDir": str(self.var / "hadoop-dependencies"),
            "druid.startup.logging.logProperties": "false",
            "druid.zk.service.host": f"127.0.0.1:{self.zk_port}",
            "druid.zk.paths.base": "/druid",
            "druid.metadata.storage.type": "derby",
            "druid.metadata.storage.connector.connectURI":
                f"jdbc:derby://127.0.0.1:{derby_port}/{self.var / 'metadata' / 'druid'};create=true",
            "druid.metadata.storage.connector.host": "127.0.0.1",
            "druid.metadata.storage.connector.port": str(derby_port),
            "druid.storage.type": "local",
            "druid.storage.storageDirectory": str(self.var / "segments"),
            "druid.indexer.logs.type": "file",
            "druid.indexer.logs.directory": str(self.var / "task-logs"),
            "druid.selectors.indexing.serviceName": "druid/overlord",
            "druid.selectors.coordinator.serviceName": "druid/coordinator",
            "druid.emitter": "noop",
            "druid.monitoring.monitors": "[]",
            "druid.indexing.doubleStorage": "double",
            "druid.lookup.enableLookupSyncOnStartup": "false",
            "druid.sql.enable": "true",
            "druid.server.hiddenProperties": '["druid.metadata.storage.connector.password"]',
        }

    # -- what a service implements -------------------------------------------------------------

    def check(self, timeout: float) -> bool:
        """The cluster serves: the router is healthy, the broker answers `SELECT 1`, the
        coordinator and overlord leaders are known, an indexer and a historical have joined."""
        try:
            if self._get("/status/health", timeout) is not True:
                return False
            if self._post("/druid/v2/sql", {"query": "SELECT 1 AS x"}, timeout) != [{"x": 1}]:
                return False
            for leader in ("/druid/coordinator/v1/leader", "/druid/indexer/v1/leader"):
                if not str(self._get(leader, timeout) or "").startswith("http"):
                    return False
            if not self._get("/druid/indexer/v1/workers", timeout):
                return False
            servers = self._get("/druid/coordinator/v1/servers?simple", timeout) or []
            return any(s.get("type") == "historical" for s in servers)
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def start(self) -> None:
        """Not used: `up` starts each process itself (see `_start_all`)."""
        raise NotImplementedError

    def connection(self) -> str:
        """Airflow's Druid provider form: host, port, and `schema` http or https."""
        return json.dumps({"conn_type": "druid", "host": self.host, "port": self.port, "schema": "http"})

    def version(self) -> str:
        """`Apache Druid 33.0.0`, from the router's `GET /status`."""
        reply = self._get("/status", 2.0)
        return f"Apache Druid {reply['version']}" if isinstance(reply, dict) and reply.get("version") else ""

    def ensure_installed(self) -> None:
        """Java 17 and Druid's jars (fetched from Maven Central on the first start)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_jars(BUNDLE, self.dir / "install.log")

    def prepare(self) -> None:
        """One replica per segment (the default rule asks for two, and there is one historical)."""
        rule = [{"type": "loadForever", "tieredReplicants": {"_default_tier": 1}}]
        if self._get("/druid/coordinator/v1/rules/_default", 10) != rule:
            self._post("/druid/coordinator/v1/rules/_default", rule, 10)

    # -- up, down, status ----------------------------------------------------------------------

    def our_pid(self) -> int | None:
        """The router's pid when devstack started this cluster and the router runs."""
        return self._pid("router")

    def running(self) -> dict[str, int]:
        """Our processes that run now, by name (zookeeper included)."""
        names = ["zookeeper"] + [p.name for p in self.processes()]
        return {name: pid for name in names if (pid := self._pid(name))}

    def status(self) -> ServiceStatus:
        ours = self.running()
        if self.healthy():
            detail = (f"started by devstack, {len(ours)} processes, router pid {ours['router']}"
                      if "router" in ours else "reused")
            return ServiceStatus(self.name, self.address, True, "router" in ours, detail, self._version())
        detail = f"{', '.join(ours)} running, not answering" if ours else "not running"
        return ServiceStatus(self.name, self.address, False, bool(ours), detail)

    def up(self) -> ServiceStatus:
        """Reuse a healthy Druid on the router's port, else start what is missing and wait for it."""
        with self._lock():
            ours = self.running()
            if self.healthy():
                return self._ready("reused", ours.get("router"))
            if not ours and port_open(self.host, self.port):
                if self._wait(10.0, lambda: self.healthy()):
                    return self._ready("reused", None)
                raise DevstackError(self._busy_message(None))
            if self.host not in LOCAL_HOSTS:
                raise DevstackError(f"{self.label} does not answer on {self.address}, and devstack "
                                    f"only starts services on this machine (127.0.0.1)")
            self.ensure_installed()
            self._write_config()
            started = time.monotonic()
            self._start_zookeeper(ours)
            launched = {name: pid for name in [p.name for p in self.processes()]
                        if (pid := ours.get(name) or self._launch(name))}
            self._wait_processes(launched, started)
            if not self._wait(self._timeout() - (time.monotonic() - started), lambda: self.healthy(5.0)):
                self._stop_all({"zookeeper": self._pid("zookeeper") or 0, **launched})
                raise DevstackError(f"{self.label}: every process answers, but the cluster did not become "
                                    f"ready within {self._timeout():.0f}s (leaders, an indexer, a historical and "
                                    f"SQL); the coordinator's log ends:\n{tail(self._log('coordinator'))}")
            return self._ready("started", self._pid("router"))

    def down(self) -> str:
        """Stop every process devstack started (Druid's five at once, then ZooKeeper)."""
        with self._lock():
            ours = self.running()
            if not ours:
                if port_open(self.host, self.port):
                    return f"left {self.name} on {self.address} running (not started by devstack)"
                return f"{self.name} was not running on {self.address}"
            druid = {name: pid for name, pid in ours.items() if name != "zookeeper"}
            for pid in druid.values():
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            for name, pid in druid.items():
                terminate(pid, self._expect(name), timeout=30)
                self._pid_file(name).unlink(missing_ok=True)
            if "zookeeper" in ours:
                terminate(ours["zookeeper"], self._expect("zookeeper"), timeout=15)
                self._pid_file("zookeeper").unlink(missing_ok=True)
            wait_port_closed(self.host, self.port, timeout=10)
            pids = ", ".join(f"{name} {pid}" for name, pid in ours.items())
            return f"stopped {self.name} on {self.address} ({pids})"

    # -- starting ------------------------------------------------------------------------------

    def _timeout(self) -> float:
        """Seconds for the whole cluster to come up: `ACCELSYNC_DEVSTACK_TIMEOUT` when set, else 300
        (five JVMs starting at once on two cores take a minute or two)."""
        return float(os.environ.get("ACCELSYNC_DEVSTACK_TIMEOUT") or 300)

    def _write_config(self) -> None:
        for folder in ("conf", "var/tmp", "var/zookeeper", "var/metadata", "var/segments"):
            (self.dir / folder).mkdir(parents=True, exist_ok=True)
        common = self.dir / "conf" / "_common"
        common.mkdir(exist_ok=True)
        _write_properties(common / "common.runtime.properties", self.common_properties())
        (common / "log4j2.xml").write_text(LOG4J2)
        for process in self.processes():
            folder = self.dir / "conf" / process.name
            folder.mkdir(exist_ok=True)
            _write_properties(folder / "runtime.properties",
                              {**process.properties, "druid.plaintextPort": str(process.port)})
        (self.dir / "conf" / "zookeeper").mkdir(exist_ok=True)
        _write_properties(self.dir / "conf" / "zookeeper" / "zoo.cfg", {
            "tickTime": "2000", "dataDir": str(self.var / "zookeeper"), "clientPort": str(self.zk_port),
            "clientPortAddress": "127.0.0.1", "admin.enableServer": "false", "maxClientCnxns": "0",
            "4lw.commands.whitelist": "ruok,srvr", "autopurge.purgeInterval": "1"})

    def _start_zookeeper(self, ours: dict[str, int]) -> None:
        """Ours, or a ZooKeeper already answering on the port (then Druid shares it)."""
        if "zookeeper" not in ours:
            if port_open("127.0.0.1", self.zk_port):
                if _zookeeper_ok(self.zk_port):
                    return
                raise DevstackError(f"127.0.0.1:{self.zk_port} is in use but does not answer as ZooKeeper: free "
                                    f"the port or set ACCELSYNC_DRUID_ZOOKEEPER_PORT to another one")
            ours["zookeeper"] = self._launch("zookeeper")
        self._wait_processes({"zookeeper": ours["zookeeper"]}, time.monotonic(), 60.0)

    def _launch(self, name: str) -> int:
        """Start one process detached, its output in `<name>.log`; returns its pid."""
        conf = self.dir / "conf"
        classpath = os.pathsep.join([str(conf / "_common"), str(conf / name), BUNDLE.classpath()])
        if name == "zookeeper":
            jvm = ["-Xms32m", "-Xmx128m", "-Dzookeeper.jmx.log4j.disable=true"]
            args = [ZOOKEEPER_MAIN, str(conf / "zookeeper" / "zoo.cfg")]
        else:
            process = next(p for p in self.processes() if p.name == name)
            jvm = [f"-Xms{process.heap}", f"-Xmx{process.heap}"]
            if process.direct:
                jvm.append(f"-XX:MaxDirectMemorySize={process.direct}")
            args = [MAIN, "server", name]
        cmd = [java_binary(), *jvm, *FAST_START, *DRUID_JVM, *OPENS,
               f"-Djava.io.tmpdir={self.var / 'tmp'}", "-cp", classpath, *args]
        log = self._log(name)
        with open(log, "ab") as handle:
            handle.write(f"\n--- accelsync devstack: starting {name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        return spawn_detached(cmd, log, self._pid_file(name), cwd=self.dir)

    def _wait_processes(self, launched: dict[str, int], started: float, limit: float | None = None) -> None:
        """Wait until each process answers on its own port; fail naming the first that died or hung."""
        limit = limit or self._timeout()
        pending = dict(launched)
        while pending:
            for name, pid in list(pending.items()):
                if self._answers(name):
                    del pending[name]
                elif not pid_alive(pid):  # launched by this call (or checked by running()): ours
                    self._stop_all(launched)
                    raise DevstackError(f"{self.label}: the {name} process{exit_text(pid)} stopped before it "
                                        f"answered; {self._log(name)} ends:\n{tail(self._log(name), 30)}")
            if pending and time.monotonic() - started > limit:
                name = next(iter(pending))
                self._stop_all(launched)
                raise DevstackError(f"{self.label}: the {name} process did not answer on port {self._port(name)} "
                                    f"within {limit:.0f}s; {self._log(name)} ends:\n{tail(self._log(name), 30)}")
            time.sleep(0.5)

    def _stop_all(self, launched: dict[str, int]) -> None:
        for name, pid in launched.items():
            if not pid:
                continue
            terminate(pid, self._expect(name), timeout=15)
            self._pid_file(name).unlink(missing_ok=True)

    def _answers(self, name: str) -> bool:
        if name == "zookeeper":
            return _zookeeper_ok(self.zk_port)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self._port(name)}/status/health", timeout=2) as reply:
                return json.loads(reply.read()) is True
        except (OSError, ValueError, urllib.error.URLError):
            return False

    # -- small helpers -------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        if name == "zookeeper":
            return self.zk_port
        return next(p.port for p in self.processes() if p.name == name)

    def _log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def _pid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def _expect(self, name: str) -> str:
        """Text found only in this process's command line (its own conf folder on the classpath)."""
        return str(self.dir / "conf" / name)

    def _pid(self, name: str) -> int | None:
        pid = read_pid(self._pid_file(name))
        return pid if pid and pid_alive(pid, self._expect(name)) else None

    @staticmethod
    def _wait(timeout: float, ready) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if ready():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    def _get(self, path: str, timeout: float):
        with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=timeout) as reply:
            raw = reply.read()
        return json.loads(raw) if raw.strip().startswith((b"{", b"[", b"true", b"false", b'"')) else raw.decode()

    def _post(self, path: str, body, timeout: float):
        request = urllib.request.Request(f"http://{self.host}:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw = reply.read()
        return json.loads(raw) if raw else None


def _write_properties(path: Path, values: dict[str, str]) -> None:
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _zookeeper_ok(port: int) -> bool:
    """ZooKeeper's `ruok` four-letter word answered `imok`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"ruok")
            return sock.recv(16) == b"imok"
    except OSError:
        return False
