"""DataX job files, written in DataX's documented format, converted and run unchanged on the
devstack (`accelsync run JOB.json` in a fresh process, as a user runs it): MariaDB or gzip'd CSV
files into Apache HBase, every cell and timestamp compared through HBase's REST server.

The MySQL jobs log in as a user with a password, which must not appear in the command's output
nor anywhere in the run's files."""

from __future__ import annotations

import calendar
import gzip
import json
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from accelsync import cli

pytestmark = pytest.mark.integration

PREFIX = "accelsync_dx"
HBASE_PORT = int(os.environ.get("ACCELSYNC_HBASE_PORT") or 9090)
USER = "accelsync_datax"
PASSWORD = "Dx-s3cret-7f3a!"  # unusual enough to be found by a grep of the run folder
USERS = [
    (1, "Zoë Müller", "Berlin", datetime(2024, 1, 1, 10, 0, 0)),
    (2, "李娜", None, datetime(2024, 1, 2, 11, 30, 0)),
    (3, "José", "São Paulo", datetime(2024, 2, 3, 12, 0, 1)),
    (4, "Ana", "Lisbon", datetime(2024, 3, 4, 13, 0, 0)),
    (5, "Bo", "Tokyo", datetime(2024, 4, 5, 14, 0, 0)),
]
ORDERS = [(100, 1, Decimal("12.50")), (101, 3, Decimal("8.00")), (102, 3, Decimal("99.99")), (103, 5, Decimal("10.01"))]


def millis(value: datetime) -> int:
    return calendar.timegm(value.timetuple()) * 1000


@pytest.fixture()
def datax_db(mysql, test_database):
    """dx_users and dx_orders, readable by a MySQL user with a password."""
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE dx_users (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, city VARCHAR(50), "
                   "updated_at DATETIME NOT NULL) DEFAULT CHARSET utf8mb4")
    cursor.executemany("INSERT INTO dx_users VALUES (%s, %s, %s, %s)", USERS + [(6, "Out", "Paris", datetime(2024, 5, 1))])
    cursor.execute("CREATE TABLE dx_orders (order_id BIGINT PRIMARY KEY, user_id INT, amount DECIMAL(10,2))")
    cursor.executemany("INSERT INTO dx_orders VALUES (%s, %s, %s)", ORDERS)
    hosts = ("127.0.0.1", "localhost", "%")
    for host in hosts:
        cursor.execute(f"CREATE OR REPLACE USER '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
        cursor.execute(f"GRANT SELECT ON `{test_database}`.* TO '{USER}'@'{host}'")
    yield test_database
    for host in hosts:
        cursor.execute(f"DROP USER IF EXISTS '{USER}'@'{host}'")


@pytest.fixture()
def hbase(hbase_server):
    """A happybase connection to the tables under the test prefix, none left over."""
    import happybase

    connection = happybase.Connection("127.0.0.1", HBASE_PORT, table_prefix=PREFIX)
    for name in connection.tables():
        connection.delete_table(name, disable=True)
    yield connection
    connection.close()


def mysql_reader(database: str, **parameter) -> dict:
    return {"name": "mysqlreader", "parameter": {
        "username": USER, "password": PASSWORD,
        "connection": [{"jdbcUrl": [f"jdbc:mysql://127.0.0.1:3306/{database}?useUnicode=true&characterEncoding=utf8"],
                        **parameter.pop("connection")}],
        **parameter}}


def hbase_writer(table: str, rowkey: list, column: list, **more) -> dict:
    return {"name": "hbase11xwriter", "parameter": {
        "hbaseConfig": {"hbase.zookeeper.quorum": "127.0.0.1:2182"}, "table": table, "mode": "normal",
        "rowkeyColumn": rowkey, "column": column, "encoding": "utf-8", **more}}


def write_job(folder: Path, name: str, reader: dict, writer: dict, setting: dict) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"job": {"setting": setting, "content": [{"reader": reader, "writer": writer}]}},
                               indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def run_job(job: Path, home: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`accelsync run JOB.json --json` in a fresh process; its summary (None when it printed none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_") or k == "AIRFLOW_CONN_HBASE_DEFAULT"}
    env.update(ACCELSYNC_HOME=str(home), AIRFLOW_CONN_HBASE_DEFAULT=f"hbase://127.0.0.1:{HBASE_PORT}?table_prefix={PREFIX}")
    done = subprocess.run([sys.executable, "-m", "accelsync.cli", "run", str(job), "--json"], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return done, summary


def assert_no_password(done: subprocess.CompletedProcess, home: Path) -> None:
    assert PASSWORD not in done.stdout + done.stderr
    found = [str(p) for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert found == [], found


def converted(job: Path, tmp_path: Path, capsys) -> dict:
    """import-datax's spec (validated), with the export line it prints for the MySQL connection."""
    out = tmp_path / f"{job.stem}.yaml"
    assert cli.main(["import-datax", str(job), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert PASSWORD not in printed.out + printed.err + out.read_text()
    assert cli.main(["validate", str(out)]) == 0
    capsys.readouterr()
    return yaml.safe_load(out.read_text())


def test_mysqlreader_to_hbase11xwriter(datax_db, hbase, hbase_rest, tmp_path, capsys):
    hbase.create_table("dx_users", {"cf": {"max_versions": 3}})
    job = write_job(tmp_path, "users_to_hbase", mysql_reader(
        datax_db, column=["id", "name", "city", "updated_at"], splitPk="id", where="id <= 5",
        connection={"table": ["dx_users"]}),
        hbase_writer("dx_users", [{"index": -1, "type": "string", "value": "user_"}, {"index": 0, "type": "string"}],
                     [{"index": 1, "name": "cf:name", "type": "string"},
                      {"index": 2, "name": "cf:city", "type": "string"}],
                     versionColumn={"index": 3}),
        {"speed": {"channel": 2}, "errorLimit": {"record": 0, "percentage": 0.02}})

    spec = converted(job, tmp_path, capsys)
    assert spec["source"]["connection"] == f"mysql_127_0_0_1_3306_{datax_db}_{USER}"
    assert spec["target"]["row_key"] == "user_{id}" and spec["speed"] == {"channels": 2}
    home = tmp_path / "home"
    done, summary = run_job(job, home)

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (summary["status"], summary["read"], summary["written"], summary["dirty"]) == ("published", 5, 5, 0)
    assert hbase_rest.cells(f"{PREFIX}_dx_users") == {
        f"user_{i}".encode(): {b"cf:name": [(name.encode(), millis(at))],
                               **({b"cf:city": [(city.encode(), millis(at))]} if city else {})}
        for i, name, city, at in USERS}
    assert_no_password(done, home)


def test_txtfilereader_gzip_to_hbase11xwriter_with_constant_row_key_parts(hbase, hbase_rest, tmp_path, capsys):
    hbase.create_table("dx_events", {"d": {"max_versions": 3}})
    folder = tmp_path / "in"
    folder.mkdir()
    lines = ["id|ts|name|amount|note",                       # the header, skipped
             "1|2024-05-01 10:00:00|Zoë|12.5|x",
             "2|2024-05-01 10:00:01|\\N|3|y",                 # nullFormat: no d:name cell
             "3|2024-05-02 00:00:00|\"a|b\"|0|z|extra",       # a quoted delimiter, one field more
             "4|2024-05-02",                                  # too few fields: dirty
             "5|2024-05-03 23:59:59|Ngozi|7.25|w"]
    with gzip.open(folder / "events.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    job = write_job(tmp_path, "events_to_hbase", {"name": "txtfilereader", "parameter": {
        "path": [str(folder / "*.gz")], "encoding": "UTF-8", "compress": "gzip", "skipHeader": True,
        "fieldDelimiter": "|", "nullFormat": "\\N",
        "column": [{"index": 0, "type": "long"}, {"index": 2, "type": "string"},
                   {"index": 1, "type": "date", "format": "yyyy-MM-dd HH:mm:ss"}, {"type": "string", "value": "cn"}]}},
        hbase_writer("dx_events", [{"index": -1, "type": "string", "value": "ev"}, {"index": 3, "type": "string"},
                                   {"index": -1, "type": "string", "value": "_"}, {"index": 0, "type": "string"}],
                     [{"index": 1, "name": "d:name", "type": "string"}, {"index": 2, "name": "d:ts", "type": "string"}],
                     versionColumn={"index": -1, "value": "123456789"}),
        {"speed": {"channel": 1}, "errorLimit": {"record": 1}})

    spec = converted(job, tmp_path, capsys)
    assert spec["source"]["positions"] == [0, 2, 1] and spec["target"]["row_key"] == "evcn_{col0}"
    done, summary = run_job(job, tmp_path / "home")

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (summary["status"], summary["read"], summary["written"], summary["dirty"]) == ("published", 5, 4, 1)
    assert summary["dirty_reasons"] == {"bad CSV": 1}
    [dirty] = [json.loads(line) for path in (tmp_path / "home").rglob("dirty/*.jsonl")
               for line in path.read_text().splitlines()]
    assert (dirty["reason"], dirty["location"]["line"]) == ("bad CSV: expected at least 3 columns, got 2", 5)
    stamp = 123456789
    assert hbase_rest.cells(f"{PREFIX}_dx_events") == {
        b"evcn_1": {b"d:name": [("Zoë".encode(), stamp)], b"d:ts": [(b"2024-05-01 10:00:00", stamp)]},
        b"evcn_2": {b"d:ts": [(b"2024-05-01 10:00:01", stamp)]},
        b"evcn_3": {b"d:name": [(b"a|b", stamp)], b"d:ts": [(b"2024-05-02 00:00:00", stamp)]},
        b"evcn_5": {b"d:name": [(b"Ngozi", stamp)], b"d:ts": [(b"2024-05-03 23:59:59", stamp)]}}


def test_query_sql_job(datax_db, hbase, hbase_rest, tmp_path, capsys):
    hbase.create_table("dx_orders", {"o": {"max_versions": 1}})
    job = write_job(tmp_path, "orders_query", mysql_reader(datax_db, connection={"querySql": [
        "select o.order_id, u.name AS buyer, o.amount from dx_orders o join dx_users u on u.id = o.user_id "
        "where o.amount > 10;"]}),
        hbase_writer("dx_orders", [{"index": 0, "type": "string"}],
                     [{"index": 1, "name": "o:buyer", "type": "string"},
                      {"index": 2, "name": "o:amount", "type": "string"}]),
        {"speed": {"channel": 1}, "errorLimit": {"record": 0}})

    spec = converted(job, tmp_path, capsys)
    assert spec["source"]["query"].endswith("where o.amount > 10")  # without DataX's closing ';'
    home = tmp_path / "home"
    done, summary = run_job(job, home)

    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (summary["status"], summary["read"], summary["written"]) == ("published", 3, 3)
    names = {user[0]: user[1] for user in USERS}
    cells = hbase_rest.cells(f"{PREFIX}_dx_orders")
    assert {key: {cell: versions[0][0] for cell, versions in row.items()} for key, row in cells.items()} == {
        str(order).encode(): {b"o:buyer": names[user].encode(), b"o:amount": str(amount).encode()}
        for order, user, amount in ORDERS if amount > 10}
    assert_no_password(done, home)


def test_job_with_an_unsupported_writer(datax_db, tmp_path, capsys):
    job = write_job(tmp_path, "to_mysql", mysql_reader(datax_db, column=["id", "name"], connection={"table": ["dx_users"]}),
                    {"name": "mysqlwriter", "parameter": {"writeMode": "insert", "column": ["id", "name"]}},
                    {"speed": {"channel": 1}})
    out = tmp_path / "to_mysql.yaml"
    assert cli.main(["import-datax", str(job), "-o", str(out)]) == 0
    printed = capsys.readouterr().err
    assert ("  job.content[0].writer.parameter: writer 'mysqlwriter': no accelsync target; fill in `target` "
            "[changes what is written]") in printed.splitlines()
    message = ("target: to fill in: DataX writer 'mysqlwriter' has no accelsync target: replace this block with a "
               "redis, hbase or druid target (see the README, Targets)")
    assert cli.main(["validate", str(out)]) == 1
    assert capsys.readouterr().out == f"{out}: {message}\n"
    done, summary = run_job(job, tmp_path / "home")
    assert (done.returncode, summary) == (1, None)
    assert done.stderr.splitlines() == [
        f"{job}: job.content[0].writer.parameter: writer 'mysqlwriter': no accelsync target; fill in `target`",
        f"{job}: this job cannot run unchanged; convert it (accelsync import-datax) and edit the spec"]


def test_addax_kafkareader_job(kafka_server, hbase, hbase_rest, tmp_path, run_id):
    """Addax's kafkareader: JSON messages by key into HBase, the broker list a connection made in
    memory; a second run reads only what was produced since (offsets committed at publish)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"dx_clicks_{run_id.replace('-', '_')}"
    brokers = f"127.0.0.1:{os.environ.get('ACCELSYNC_KAFKA_PORT') or 9092}"
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": brokers})
    clicks = [{"uid": "u1", "page": "/home", "ts": 1714557600000}, {"uid": "u2", "page": "/cart", "ts": 1714557601000},
              {"uid": "u1", "page": "/pay", "ts": 1714557602500}]
    for click in clicks[:2]:
        producer.produce(topic, json.dumps(click).encode())
    producer.flush(30)
    hbase.create_table("dx_clicks", {"c": {"max_versions": 3}})
    job = write_job(tmp_path, "clicks", {"name": "kafkareader", "parameter": {
        "brokerList": brokers, "topic": topic, "column": ["uid", "page", "ts"],
        "properties": {"auto.offset.reset": "earliest"}}},
        hbase_writer("dx_clicks", [{"index": 0, "type": "string"}], [{"index": 1, "name": "c:page", "type": "string"}],
                     versionColumn={"index": 2}),
        {"speed": {"channel": 1}, "errorLimit": {"record": 0}})

    done, summary = run_job(job, tmp_path / "home")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (summary["status"], summary["read"], summary["written"]) == ("published", 2, 2)
    producer.produce(topic, json.dumps(clicks[2]).encode())
    producer.flush(30)
    done, summary = run_job(job, tmp_path / "home")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert (summary["status"], summary["read"], summary["written"]) == ("published", 1, 1)
    assert hbase_rest.cells(f"{PREFIX}_dx_clicks") == {
        b"u1": {b"c:page": [(b"/pay", 1714557602500), (b"/home", 1714557600000)]},
        b"u2": {b"c:page": [(b"/cart", 1714557601000)]}}
