"""Kafka for the `kafka_default` connection: Apache Kafka, one KRaft node, on 127.0.0.1:9092.

The broker and its controller run in one JVM (`process.roles=broker,controller`), from the jars
of `org.apache.kafka:kafka_2.13` on Maven Central (fetched once into the Maven cache, then used
offline; see `maven.py`). The controller listens on the next port (9093 by default); it serves
only the broker inside the same process.

Everything lives under `$ACCELSYNC_DEVSTACK_HOME/kafka/`: `server.properties` and
`log4j2.properties` (written at each start), `data/` (the log directory, formatted once by
Kafka's StorageTool) and `kafka.log` (the server's output). `down` stops the broker and keeps
`data/`, so topics, messages and committed offsets survive `down` / `up`, as with MariaDB; delete
`data/` to start empty.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import uuid
from pathlib import Path

from accelsync.dev.devstack.base import Service
from accelsync.dev.devstack.java import SMALL_JVM, ensure_jars, java_binary, spawn_java
from accelsync.dev.devstack.maven import Artifact, Bundle
from accelsync.dev.devstack.process import DevstackError, tail

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
# Kafka logs through SLF4J 1.7 and ships log4j2 as its backend; the binding between them is a
# separate artifact (its version follows the log4j-core that kafka_2.13 depends on).
LOG4J_VERSION = "2.25.5"
BUNDLE = Bundle("kafka", KAFKA_VERSION, (
    Artifact(f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}"),
    Artifact(f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}"),
))
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1
# Sized for a 2-core machine shared with Spark and other servers: a small heap, the serial GC
# (no parallel GC threads), and no heap dump on OOM, just an exit that `up` reports.
BROKER_JVM = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Xss1m",
              "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true"]

LOG4J2 = """\
# Written by accelsync devstack at each start: Kafka's output goes to stdout, i.e. kafka.log.
status = warn
# Kafka stops log4j itself; log4j's own shutdown hook would only lose the last lines.
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
# One line per partition state change and per request at INFO/DEBUG: too chatty for a dev log.
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
# Each component prints its whole configuration (6 times 400 lines at a start); it is in
# server.properties beside the log. Warnings (e.g. unknown settings) still show.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
"""


class Kafka(Service):
    """Apache Kafka in KRaft combined mode (broker + controller), started detached."""

    name = "kafka"
    label = "Kafka"
    default_port = 9092
    conn_id = "kafka_default"
    process_name = MAIN_CLASS
    # ProcessTerminatingFaultHandler's line; the JVM it should end sometimes hangs in shutdown hooks
    fatal_marks = ("Encountered fatal fault", "Exiting Kafka due to fatal exception")

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def check(self, timeout: float) -> bool:
        """A metadata request (`AdminClient.list_topics`) answered by a registered broker."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": int(timeout * 1000),
                             "logger": log})
        try:
            return bool(admin.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    def ensure_installed(self) -> None:
        """The jars in the Maven cache (downloaded on the first start), and the storage formatted."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_jars(BUNDLE, self.dir / "fetch.log")
        if not (self.data_dir / "meta.properties").exists():
            self._format(self._write_config())

    def start(self) -> None:
        properties = self._write_config()
        spawn_java(BUNDLE, MAIN_CLASS, [str(properties)], [*BROKER_JVM, *self._logging()], self.log_file,
                   self.pid_file, cwd=self.dir)

    def connection(self) -> str:
        return json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": self.address}})

    def version(self) -> str:
        """"Apache Kafka X.Y.Z", from the kafka_2.13 jar on the command line of the broker devstack
        started (the Kafka protocol does not carry the server's version)."""
        pid = self.our_pid()
        if not pid:
            return ""
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        found = re.search(r"kafka_[\d.]+-([\w.\-]+?)\.jar", cmdline)
        return f"Apache Kafka {found.group(1)}" if found else ""

    def server_properties(self) -> str:
        """One node that is both broker and controller, on host:port and host:port+1."""
        plain, controller = f"{self.host}:{self.port}", f"{self.host}:{self.controller_port}"
        return f"""\
# Written by accelsync devstack at each start (edits are overwritten).
process.roles=broker,controller
node.id={NODE_ID}
# A static quorum of this one node (as in docker/compose.yaml), so the ports may change between
# starts: nothing in data/ records them.
controller.quorum.voters={NODE_ID}@{controller}
listeners=PLAINTEXT://{plain},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{plain}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.data_dir}

# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Internal topics with few partitions (the defaults, 50, only spread load over many brokers):
# fewer files and a faster first group or transaction.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
# A consumer group forms at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0

# Kafka's defaults, stated: new topics get 1 partition; producing to (or a metadata request
# that asks for) an unknown topic creates it. accelsync itself never creates topics: its
# consumers do not ask for it, so a spec naming a missing topic fails.
num.partitions=1
auto.create.topics.enable=true

# Few threads on a 2-core machine (defaults: 3 network, 8 I/O, 10 background).
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
num.replica.fetchers=1
"""

    def _write_config(self) -> Path:
        properties = self.dir / "server.properties"
        properties.write_text(self.server_properties())
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        return properties

    def _logging(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir}"]

    def _format(self, properties: Path) -> None:
        """`kafka-storage format` once: a new cluster id and the node's meta.properties in data/."""
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # `=`: an id that starts with "-" (one in 32) would read as an option
        cmd = [java_binary(), *SMALL_JVM, "-Xmx256m", *self._logging(), "-cp", BUNDLE.classpath(), STORAGE_TOOL,
               "format", "--config", str(properties), f"--cluster-id={cluster_id}", "--ignore-formatted"]
        with open(self.log_file, "ab") as out:
            out.write(f"$ {' '.join(cmd[:1] + cmd[-6:])}\n".encode())
            out.flush()
            done = subprocess.run(cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        if done.returncode:
            raise DevstackError(f"formatting Kafka's storage in {self.data_dir} failed (exit {done.returncode}); "
                                f"{self.log_file} ends:\n{tail(self.log_file)}")
