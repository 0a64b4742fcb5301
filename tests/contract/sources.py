"""How the contract suite puts the dataset into each source, and what each source promises on
a second run. A harness stores rows in the real server with its own client, never accelsync's."""

from __future__ import annotations

import uuid
from pathlib import Path

from dataset import MYSQL_TABLE, SCHEMA, json_line

# Text records every text source must refuse, with the reason the shared parser gives.
BAD_TEXT = [('{"id": "x1"}', "cast failed: field 'id' (long): 'x1'"),
            ("[1, 2]", "bad JSON: an array where an object was expected"),
            ('{"id": 7, "day": "2026-02-30"}', "cast failed: field 'day' (date): '2026-02-30'")]


class SourceHarness:
    """One source type: `source(rows)` stores rows and returns the spec's `source:` block."""

    type = ""
    fixtures: tuple[str, ...] = ()
    # Records that must be dirty, with their reasons (None: the source cannot hold a malformed record).
    bad = None
    # After a published run with nothing new: the ids the next run reads again (None: a full read).
    reread_after_publish: list[int] | None = None

    def __init__(self, fixtures: dict):
        self.f = fixtures

    def block(self, rows: list[dict], bad: list[str] = ()) -> dict:
        raise NotImplementedError


class MysqlHarness(SourceHarness):
    """A MariaDB table written with pymysql; read in full (split on `id`), or incrementally by `ts`."""

    type = "mysql"
    fixtures = ("mysql", "test_database")

    def block(self, rows, bad=()):
        cursor = self.f["mysql"].cursor()
        cursor.execute("DROP TABLE IF EXISTS contract_rows")
        cursor.execute(MYSQL_TABLE)
        columns = list(SCHEMA)
        cursor.executemany(f"INSERT INTO contract_rows ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                           [[row[c] for c in columns] for row in rows])
        return {"type": "mysql", "connection": "test_mysql", "table": "contract_rows", "split_pk": "id"}


class MysqlIncrementalHarness(MysqlHarness):
    """The same table read incrementally by `ts`: the watermark's own rows are read again."""

    type = "mysql_incremental"
    # read again by design: the row at the watermark (the newest `ts`), and the row whose `ts` is NULL
    reread_after_publish = [4, 5]

    def block(self, rows, bad=()):
        return dict(super().block(rows, bad), incremental={"column": "ts"})


class KafkaHarness(SourceHarness):
    """A topic of JSON messages produced with kafka-python, over 3 partitions."""

    type = "kafka"
    fixtures = ("kafka_server",)
    bad = BAD_TEXT
    reread_after_publish = []

    def block(self, rows, bad=()):
        from kafka import KafkaAdminClient, KafkaProducer
        from kafka.admin import NewTopic

        topic = "contract_" + uuid.uuid4().hex[:10]
        admin = KafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers="127.0.0.1:9092")
        for index, text in enumerate([json_line(row) for row in rows] + list(bad)):
            producer.send(topic, value=text.encode("utf-8"), partition=index % 3)
        producer.flush()
        producer.close()
        return {"type": "kafka", "connection": "kafka_default", "topic": topic, "format": "json",
                "group": "contract." + uuid.uuid4().hex[:8], "schema": SCHEMA}


class LogsHarness(SourceHarness):
    """JSON lines in two files, one plain and one gzip, read in full every run."""

    type = "logs"
    fixtures = ("tmp_path",)
    bad = BAD_TEXT

    def block(self, rows, bad=()):
        import gzip

        folder: Path = self.f["tmp_path"] / ("logs_" + uuid.uuid4().hex[:6])
        folder.mkdir()
        lines = [json_line(row) for row in rows] + list(bad)
        half = len(lines) // 2
        (folder / "a.log").write_text("".join(line + "\n" for line in lines[:half]), encoding="utf-8")
        (folder / "b.log.gz").write_bytes(gzip.compress("".join(line + "\n" for line in lines[half:]).encode()))
        return {"type": "logs", "path": str(folder), "format": "json", "schema": SCHEMA}


class LogsIncrementalHarness(LogsHarness):
    type = "logs_incremental"
    reread_after_publish = []

    def block(self, rows, bad=()):
        return dict(super().block(rows, bad), incremental=True)
