"""The demo's data beyond MySQL: Kafka events, access log files, the HBase table of the DataX
job; and how the demo checks what each sync left in its target.

Deterministic for a given `rows`: a second demo produces the same events again (the Kafka →
HBase sync reads the new copies and rewrites the same cells) and rewrites the same log files.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

EVENTS_TOPIC = "demo_events"
EVENTS_TABLE = "demo_events"
KINDS = ["view", "click", "view", "cart", "view", "purchase"]
LOG_FOLDER = Path(".accelsync") / "demo" / "logs"  # relative to the project root, as in the spec
ACCESS_DATASOURCE = "demo_access_logs"
PATHS = ["/", "/products", "/products/42", "/cart", "/checkout", "/api/search?q=tea", "/static/app.js"]
METHODS = ["GET", "GET", "GET", "POST", "GET", "HEAD"]
STATUSES = ["200", "200", "200", "304", "404", "200", "500", "301"]
DATAX_JOB = Path("examples") / "datax" / "users_to_hbase.json"
DATAX_TABLE = "datax_users"
START = datetime(2024, 5, 1, tzinfo=timezone.utc)


def event(i: int, users: int) -> dict:
    kind = KINDS[i % len(KINDS)]
    amount = Decimal((i * 7919) % 20000) / 100 if kind in ("cart", "purchase") else Decimal("0.00")
    ts = START + timedelta(seconds=i * 37)
    return {"event_id": i, "user_id": (i * 13) % users + 1, "kind": kind, "amount": str(amount),
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ")}


def event_keys(rows: int) -> list[bytes]:
    return [f"{e['user_id']}_{e['event_id']}".encode() for e in (event(i, rows) for i in range(1, rows + 1))]


def produce_events(rows: int, conn_id: str = "kafka_default") -> int:
    """Send `rows` JSON events to the demo topic (created when missing) and wait for every ack."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from accelsync.connections import get_connection

    settings = {k: str(v) for k, v in get_connection(conn_id).extra.items()}
    admin = AdminClient(settings)
    if EVENTS_TOPIC not in admin.list_topics(timeout=30).topics:
        for future in admin.create_topics([NewTopic(EVENTS_TOPIC, num_partitions=2, replication_factor=1)]).values():
            try:
                future.result(30)
            except Exception as exc:  # created meanwhile by another producer
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    producer = Producer({**settings, "linger.ms": 20})
    failed = []
    for i in range(1, rows + 1):
        item = event(i, rows)
        producer.produce(EVENTS_TOPIC, key=str(item["user_id"]).encode(), value=json.dumps(item).encode(),
                         on_delivery=lambda err, _msg: failed.append(err) if err else None)
        producer.poll(0)
    producer.flush(60)
    if failed:
        raise RuntimeError(f"{len(failed)} demo events were not delivered: {failed[0]}")
    return rows


def access_line(i: int) -> str:
    ts = START + timedelta(seconds=i * 11)
    size = "-" if i % 50 == 0 else str((i * 4099) % 90000 + 120)
    return (f"10.0.{i % 7}.{i % 251} - - [{ts:%d/%b/%Y:%H:%M:%S} +0000] "
            f'"{METHODS[i % len(METHODS)]} {PATHS[i % len(PATHS)]} HTTP/1.1" {STATUSES[i % len(STATUSES)]} {size}')


def write_logs(rows: int, root: Path) -> list[Path]:
    """`rows` access log lines: the first half in a plain file, the rest in a gzip file."""
    folder = root / LOG_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    half = rows // 2
    plain, zipped = folder / "access.log.1", folder / "access.log.2.gz"
    plain.write_text("".join(access_line(i) + "\n" for i in range(1, half + 1)), encoding="utf-8")
    with gzip.open(zipped, "wt", encoding="utf-8") as handle:
        handle.write("".join(access_line(i) + "\n" for i in range(half + 1, rows + 1)))
    return [plain, zipped]


def ensure_datax_table(conn_id: str = "hbase_default") -> None:
    """The DataX job's table: hbase11xwriter writes to an existing table, as the job says."""
    from accelsync.connections import get_connection
    from accelsync.targets.hbase.client import hbase_connection

    client = hbase_connection(get_connection(conn_id))
    try:
        if DATAX_TABLE.encode() not in client.tables():
            client.create_table(DATAX_TABLE, {"cf": {"max_versions": 3}})
    finally:
        client.close()


def hbase_present(table: str, keys: list[bytes], conn_id: str = "hbase_default") -> int:
    """How many of `keys` are rows of the HBase table."""
    from accelsync.connections import get_connection
    from accelsync.targets.hbase.client import hbase_connection

    client = hbase_connection(get_connection(conn_id))
    try:
        handle = client.table(table)
        return sum(len(handle.rows(keys[start:start + 1000], columns=None)) for start in range(0, len(keys), 1000))
    finally:
        client.close()


def druid_requests(rows: int, conn_id: str = "druid_default") -> int:
    """The requests (a count metric) in the demo datasource over the time the demo's lines span,
    through Druid SQL (a bigger earlier demo may have left later days)."""
    from accelsync.connections import get_connection
    from accelsync.targets.druid.client import DruidClient

    from accelsync.errors import TerminalError

    end = START + timedelta(seconds=rows * 11 + 1)
    client = DruidClient(get_connection(conn_id))
    try:
        client.sql(f'SELECT 1 FROM "{ACCESS_DATASOURCE}" LIMIT 1')
    except TerminalError:  # no such datasource yet: nothing was published
        return 0
    found = client.sql(
        f'SELECT SUM("requests") AS n FROM "{ACCESS_DATASOURCE}" WHERE __time >= TIMESTAMP '
        f"'{START:%Y-%m-%d %H:%M:%S}' AND __time < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'")
    return int(found[0]["n"] or 0) if found else 0
