"""MySQL -> HBase and logs -> Druid, each as one DAG run through Airflow itself, on the devstack's
Apache HBase and Apache Druid, checked through Airflow's task states and clients that are not
accelsync's own (HBase's REST server; Druid SQL through the router with plain HTTP)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATABASE = "accelsync_test_airflow_targets"
HBASE_PORT = int(os.environ.get("ACCELSYNC_HBASE_PORT") or 9090)


@pytest.fixture(scope="module")
def airflow(services, hbase_server, druid_server):
    from accelsync.dev import airflow_env

    os.environ["AIRFLOW_CONN_AFT_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    os.environ["AIRFLOW_CONN_AFT_HBASE"] = f"hbase://127.0.0.1:{HBASE_PORT}"
    host, port = druid_server.address.split(":")
    os.environ["AIRFLOW_CONN_AFT_DRUID"] = json.dumps(
        {"conn_type": "druid", "host": host, "port": int(port), "schema": "http"})
    airflow_env.migrate()
    return airflow_env


def write_spec(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_mysql_to_hbase_dag_run(airflow, hbase_rest, tmp_path, run_id):
    import happybase
    import pymysql

    db = pymysql.connect(host="127.0.0.1", user="root", password="", charset="utf8mb4", autocommit=True)
    cursor = db.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    cursor.execute(f"CREATE DATABASE {DATABASE} DEFAULT CHARSET utf8mb4")
    cursor.execute(f"CREATE TABLE {DATABASE}.users (id INT PRIMARY KEY, name VARCHAR(40), city VARCHAR(40))")
    cursor.executemany(f"INSERT INTO {DATABASE}.users VALUES (%s, %s, %s)",
                       [(1, "Zoë", "Berlin"), (2, "李娜", None), (3, "Ana", "Lisbon")])
    table = f"aft_users_{run_id.replace('-', '_')}"
    spec = write_spec(tmp_path / "syncs", "aft_hbase", f"""
name: aft_hbase
source: {{type: mysql, connection: aft_mysql, table: users, split_pk: id}}
target: {{type: hbase, connection: aft_hbase, table: {table}, row_key: "user:{{id}}",
         columns: {{"p:name": name, "p:city": city}}, create_table: true}}
speed: {{channels: 2}}
""")
    try:
        result = airflow.run_dag(spec)
        assert (result.state, result.tasks) == ("success", {"sync": "success", "gate": "success",
                                                           "publish": "success", "report": "success"})
        rows = {key: {column: [value for value, _ in versions] for column, versions in row.items()}
                for key, row in hbase_rest.cells(table).items()}
        assert rows == {b"user:1": {b"p:name": ["Zoë".encode()], b"p:city": [b"Berlin"]},
                        b"user:2": {b"p:name": ["李娜".encode()]},
                        b"user:3": {b"p:name": [b"Ana"], b"p:city": [b"Lisbon"]}}
        connection = happybase.Connection("127.0.0.1", HBASE_PORT)
        connection.delete_table(table, disable=True)
        connection.close()
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        db.close()


def test_logs_to_druid_dag_run(airflow, druid, druid_datasource, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [{"ts": "2024-05-01T10:00:00Z", "city": "Paris", "amount": 2.5},
             {"ts": "2024-05-01T11:00:00Z", "city": "Paris", "amount": 1.5},
             {"ts": "2024-05-02T09:30:00Z", "city": "Tokyo", "amount": 4.0}]
    (logs / "a.log").write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    datasource = druid_datasource("aft_sales")
    spec = write_spec(tmp_path / "syncs", "aft_druid", f"""
name: aft_druid
source: {{type: logs, path: "{logs}", format: json, schema: {{ts: timestamp, city: string, amount: double}}}}
target: {{type: druid, connection: aft_druid, datasource: {datasource}, timestamp: {{column: ts}},
         dimensions: [city], metrics: [{{type: doubleSum, name: amount, field: amount}}, {{type: count, name: rows}}],
         granularity: {{segment: day, query: day, rollup: true}}}}
error_limit: {{records: 1}}
""")
    result = airflow.run_dag(spec)
    assert (result.state, result.tasks) == ("success", {"sync": "success", "gate": "success",
                                                       "publish": "success", "report": "success"})
    rows = druid.sql(f'SELECT __time, city, amount, "rows" FROM "{datasource}" ORDER BY __time')
    assert rows == [{"__time": "2024-05-01T00:00:00.000Z", "city": "Paris", "amount": 4.0, "rows": 2},
                    {"__time": "2024-05-02T00:00:00.000Z", "city": "Tokyo", "amount": 4.0, "rows": 1}]
