"""DataX job files converted into specs: the mapping of each documented option, the comments,
the list of what is not carried over, bad job files, and the starter specs of `accelsync new`.

The job files follow DataX's plugin docs (mysqlreader.md, txtfilereader.md, hbase11xwriter.md)
and Addax's kafkareader template."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from accelsync import cli
from accelsync.datax import convert_file, load_spec_from_job, render
from accelsync.datax.readers import select_names
from accelsync.errors import SpecError
from accelsync.spec import parse_spec

MYSQL_HBASE = {
    "job": {
        "setting": {"speed": {"channel": 3}, "errorLimit": {"record": 0, "percentage": 0.02}},
        "content": [{
            "reader": {"name": "mysqlreader", "parameter": {
                "username": "datax", "password": "Pa55-word!",
                "column": ["id", "`name`", "city", "updated_at"], "splitPk": "id", "where": "id < 1000",
                "connection": [{"table": ["users"],
                                "jdbcUrl": ["jdbc:mysql://db.example:3307/shop?useUnicode=true",
                                            "jdbc:mysql://db2.example:3307/shop"]}]}},
            "writer": {"name": "hbase11xwriter", "parameter": {
                "hbaseConfig": {"hbase.zookeeper.quorum": "zk1,zk2"}, "table": "users", "mode": "normal",
                "rowkeyColumn": [{"index": 2, "type": "string"}, {"index": -1, "type": "string", "value": "#"},
                                 {"index": 0, "type": "string"}],
                "column": [{"index": 1, "name": "cf:name", "type": "string"},
                           {"index": 2, "name": "cf:city", "type": "string"}],
                "versionColumn": {"index": 3}, "encoding": "utf-8", "walFlag": False,
                "writeBufferSize": 8388608}},
        }],
    },
}


def job_file(tmp_path, job, name="users_job.json"):
    path = tmp_path / name
    path.write_text(json.dumps(job) if not isinstance(job, str) else job, encoding="utf-8")
    return path


def unmapped(conversion):
    return {item.path: item for item in conversion.unmapped}


def test_mysqlreader_to_hbase11xwriter(tmp_path):
    conversion = convert_file(job_file(tmp_path, MYSQL_HBASE))

    assert conversion.spec["source"] == {
        "type": "mysql", "connection": "mysql_db_example_3307_shop_datax", "table": "users",
        "columns": ["id", "name", "city", "updated_at"], "where": "id < 1000", "split_pk": "id"}
    assert conversion.spec["target"] == {
        "type": "hbase", "connection": "hbase_default", "table": "users", "row_key": "{city}#{id}",
        "columns": {"cf:name": "name", "cf:city": "city"}, "version_column": "updated_at", "create_table": False}
    assert conversion.spec["speed"] == {"channels": 3}
    assert conversion.spec["error_limit"] == {"records": 0}  # record wins over percentage, as in DataX
    at = "job.content[0]"
    assert sorted(unmapped(conversion)) == sorted([
        f"{at}.reader.parameter.connection[0].jdbcUrl[1]",
        f"{at}.reader.parameter.connection[0].jdbcUrl[0]?useUnicode",
        f"{at}.writer.parameter.hbaseConfig", f"{at}.writer.parameter.walFlag",
        f"{at}.writer.parameter.writeBufferSize", "job.setting.errorLimit.percentage"])
    assert not conversion.blocking()
    [connection] = conversion.connections
    assert connection.export_line() == ("export AIRFLOW_CONN_MYSQL_DB_EXAMPLE_3307_SHOP_DATAX="
                                        "'mysql://datax:PASSWORD@db.example:3307/shop'")
    assert (connection.connection.host, connection.connection.port, connection.connection.login,
            connection.connection.password, connection.connection.schema) == (
        "db.example", 3307, "datax", "Pa55-word!", "shop")


def test_rendered_spec_validates_keeps_every_value_and_never_holds_the_password(tmp_path):
    conversion = convert_file(job_file(tmp_path, MYSQL_HBASE), name="users_to_hbase")
    text = render(conversion)

    assert "Pa55-word!" not in text
    assert yaml.safe_load(text) == conversion.spec
    spec = parse_spec(yaml.safe_load(text))
    assert spec.name == "users_to_hbase" and spec.target.row_key.text == "{city}#{id}"
    assert ("#   job.setting.errorLimit.percentage: DataX ignores the percentage when record is set (record wins); "
            in text)
    assert "  # DataX splitPk: one range per channel\n  split_pk: id\n" in text
    assert ("#   export AIRFLOW_CONN_MYSQL_DB_EXAMPLE_3307_SHOP_DATAX='mysql://datax:PASSWORD@db.example:3307/shop'"
            in text)


def test_import_datax_command_writes_the_spec_and_prints_the_connection_line(tmp_path, capsys):
    out = tmp_path / "specs" / "users.yaml"
    assert cli.main(["import-datax", str(job_file(tmp_path, MYSQL_HBASE)), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Pa55-word!" not in captured.out + captured.err + out.read_text()
    assert ("  export AIRFLOW_CONN_MYSQL_DB_EXAMPLE_3307_SHOP_DATAX='mysql://datax:PASSWORD@db.example:3307/shop'"
            in captured.err.splitlines())
    assert "Not carried over (6):" in captured.err
    assert cli.main(["validate", str(out)]) == 0
    assert cli.main(["validate", str(job_file(tmp_path, MYSQL_HBASE))]) == 0
    assert "Pa55-word!" not in capsys.readouterr().out


def test_column_expressions_become_a_query_with_names(tmp_path):
    job = copy.deepcopy(MYSQL_HBASE)
    reader = job["job"]["content"][0]["reader"]["parameter"]
    reader["column"] = ["id", "'vip'", "upper(name)", "updated_at"]
    conversion = convert_file(job_file(tmp_path, job))

    assert conversion.spec["source"]["query"] == (
        "SELECT id, 'vip' AS c1, upper(name) AS c2, updated_at FROM users WHERE id < 1000")
    assert conversion.spec["target"]["columns"] == {"cf:name": "c1", "cf:city": "c2"}
    assert conversion.spec["target"]["row_key"] == "{c2}#{id}"
    assert "split_pk" not in conversion.spec["source"]
    assert "job.content[0].reader.parameter.splitPk" in unmapped(conversion)


def test_query_sql_names_and_ignored_table(tmp_path):
    job = copy.deepcopy(MYSQL_HBASE)
    reader = job["job"]["content"][0]["reader"]["parameter"]
    reader["connection"][0]["querySql"] = ["select u.id, u.name AS name, `city`, max(o.ts) last_ts "
                                           "from users u join orders o on o.uid = u.id group by u.id;"]
    conversion = convert_file(job_file(tmp_path, job))

    assert conversion.spec["source"]["query"] == ("select u.id, u.name AS name, `city`, max(o.ts) last_ts from users "
                                                  "u join orders o on o.uid = u.id group by u.id")
    assert conversion.spec["target"]["version_column"] == "last_ts"
    ignored = unmapped(conversion)
    for key in ("connection[0].table", "column", "where", "splitPk"):
        assert ignored[f"job.content[0].reader.parameter.{key}"].why.startswith("DataX ignores it when querySql")


@pytest.mark.parametrize("sql, names", [
    ("SELECT a, b.c, `d` FROM t", ["a", "c", "d"]),
    ("select count(*) as n, concat(a, ',', b) AS ab from t", ["n", "ab"]),
    ("select distinct x from t where y = 'a, from b'", ["x"]),
    ("select count(*) from t", "select item 1 (count(*)) has no column name; give it one (... AS name) so the "
                               "writer's index can name it"),
    ("select * from t", "select item 1 (*) has no column name; give it one (... AS name) so the writer's index "
                        "can name it"),
])
def test_select_names(sql, names):
    assert select_names(sql) == names


TXT_HBASE = {
    "job": {
        "setting": {"speed": {"channel": 2, "record": 5000}},
        "content": [{
            "reader": {"name": "txtfilereader", "parameter": {
                "path": ["/data/in/*.csv.gz"], "encoding": "UTF-8", "compress": "gzip", "skipHeader": True,
                "fieldDelimiter": "|", "nullFormat": "\\N",
                "column": [{"index": 0, "type": "long"}, {"index": 3, "type": "string"},
                           {"index": 1, "type": "date", "format": "yyyy-MM-dd HH:mm:ss"},
                           {"type": "string", "value": "cn"}, {"index": 4, "type": "double"}]}},
            "writer": {"name": "hbase11xwriter", "parameter": {
                "hbaseConfig": {"hbase.zookeeper.quorum": "zk"}, "table": "events", "mode": "normal",
                "rowkeyColumn": [{"index": -1, "type": "string", "value": "ev_"}, {"index": 3, "type": "string"},
                                 {"index": -1, "type": "string", "value": "_"}, {"index": 0, "type": "string"}],
                "column": [{"index": 1, "name": "d:name", "type": "string"},
                           {"index": 2, "name": "d:ts", "type": "string"},
                           {"index": 4, "name": "d:amount", "type": "double"}],
                "versionColumn": {"index": -1, "value": "123456789"}}},
        }],
    },
}


def test_txtfilereader_to_hbase11xwriter(tmp_path):
    conversion = convert_file(job_file(tmp_path, TXT_HBASE))

    assert conversion.spec["source"] == {
        "type": "logs", "format": "csv", "path": "/data/in/*.csv.gz",
        "schema": {"col0": "long", "col3": "string", "col1": "timestamp", "col4": "double"},
        "positions": [0, 3, 1, 4], "delimiter": "|", "header": True, "null_value": "\\N"}
    assert conversion.spec["target"]["row_key"] == "ev_cn_{col0}"  # the reader's constant, inlined
    assert conversion.spec["target"]["columns"] == {"d:name": "col3", "d:ts": "col1", "d:amount": "col4"}
    assert conversion.spec["target"]["version"] == 123456789
    assert conversion.spec["speed"] == {"channels": 2, "records_per_second": 5000}
    assert conversion.spec["error_limit"] == {"percentage": 1.0}  # DataX without errorLimit never fails
    [binary] = conversion.blocking()
    assert binary.path == "job.content[0].writer.parameter.column[2].type"
    assert binary.why.startswith("double: DataX stores the cell as HBase Bytes.toBytes(double) (binary)")
    spec = parse_spec(conversion.spec)
    assert spec.source.positions == [0, 3, 1, 4]


def test_speed_record_sets_the_channels_as_datax_does(tmp_path):
    job = copy.deepcopy(TXT_HBASE)
    job["core"] = {"transport": {"channel": {"speed": {"record": 1000, "byte": 1048576}}}}
    job["job"]["setting"]["speed"] = {"channel": 8, "record": 5000, "byte": 2097152}
    conversion = convert_file(job_file(tmp_path, job))

    # record: 5000 / 1000 = 5 channels, byte: 2 MiB / 1 MiB = 2; DataX takes the smaller
    assert conversion.spec["speed"] == {"channels": 2, "records_per_second": 5000}
    ignored = unmapped(conversion)
    assert ignored["job.setting.speed.channel"].why == ("DataX ignores it when speed.record or speed.byte sets the "
                                                         "channels (2)")
    assert ignored["job.setting.speed.byte"].why == "accelsync limits records per second, not bytes"


def test_error_limit_percentage_alone(tmp_path):
    job = copy.deepcopy(TXT_HBASE)
    job["job"]["setting"]["errorLimit"] = {"percentage": 0.05}
    assert convert_file(job_file(tmp_path, job)).spec["error_limit"] == {"percentage": 0.05}


def test_txtfile_options_accelsync_cannot_read_are_listed_as_changing_data(tmp_path):
    job = copy.deepcopy(TXT_HBASE)
    reader = job["job"]["content"][0]["reader"]["parameter"]
    reader.update(compress="bzip2", encoding="GBK", path=["/a/*.txt", "/b/*.txt"], csvReaderConfig={})
    reader["column"][2]["format"] = "yyyy.MM.dd"
    conversion = convert_file(job_file(tmp_path, job))

    at = "job.content[0].reader.parameter"
    blocking = {item.path: item.why for item in conversion.blocking()}
    assert blocking[f"{at}.compress"].startswith("accelsync reads plain and gzip files, not bzip2")
    assert blocking[f"{at}.encoding"] == "accelsync reads UTF-8 only, not GBK"
    assert blocking[f"{at}.path[1]"].startswith("a spec reads one path")
    assert blocking[f"{at}.column[2].format"].startswith("date format 'yyyy.MM.dd' is not one accelsync parses")
    assert not unmapped(conversion)[f"{at}.csvReaderConfig"].changes_data
    with pytest.raises(SpecError) as error:
        load_spec_from_job(job_file(tmp_path, job))
    assert error.value.lines()[-1].endswith(": this job cannot run unchanged; convert it (accelsync import-datax) "
                                            "and edit the spec")


KAFKA_HBASE = {
    "job": {
        "setting": {"speed": {"channel": 1}},
        "content": [{
            "reader": {"name": "kafkareader", "parameter": {
                "brokerList": "127.0.0.1:9092,127.0.0.1:9093", "topic": "clicks", "column": ["uid", "page", "ts"],
                "properties": {"auto.offset.reset": "earliest", "group.id": "g1",
                               "sasl.jaas.config": "org.apache... password=\"hunter2\";"}}},
            "writer": {"name": "hbase11xwriter", "parameter": {
                "table": "clicks", "mode": "normal", "rowkeyColumn": [{"index": 0, "type": "string"}],
                "column": [{"index": 1, "name": "c:page", "type": "string"}], "versionColumn": {"index": 2}}},
        }],
    },
}


def test_addax_kafkareader(tmp_path):
    conversion = convert_file(job_file(tmp_path, KAFKA_HBASE))

    assert conversion.spec["source"] == {
        "type": "kafka", "connection": "kafka_127_0_0_1_9092", "topic": "clicks", "start": "earliest",
        "group": "g1", "format": "json", "schema": {"uid": "string", "page": "string", "ts": "long"}}
    assert conversion.spec["target"]["version_column"] == "ts"
    [connection] = conversion.connections
    assert connection.connection.extra == {"bootstrap.servers": "127.0.0.1:9092,127.0.0.1:9093"}
    secret = unmapped(conversion)["job.content[0].reader.parameter.properties.sasl.jaas.config"]
    assert "hunter2" not in secret.why + render(conversion)
    parse_spec(conversion.spec)


def test_unsupported_writer_leaves_a_target_that_validate_refuses(tmp_path, capsys):
    job = copy.deepcopy(MYSQL_HBASE)
    job["job"]["content"][0]["writer"] = {"name": "mysqlwriter", "parameter": {"table": ["t"]}}
    out = tmp_path / "spec.yaml"
    assert cli.main(["import-datax", str(job_file(tmp_path, job)), "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["target"] == {
        "todo": "DataX writer 'mysqlwriter' has no accelsync target: replace this block with a redis, hbase or "
                "druid target (see the README, Targets)"}
    capsys.readouterr()
    assert cli.main(["validate", str(out)]) == 1
    assert capsys.readouterr().out == (
        f"{out}: target: to fill in: DataX writer 'mysqlwriter' has no accelsync target: replace this block with "
        f"a redis, hbase or druid target (see the README, Targets)\n")


@pytest.mark.parametrize("job, message", [
    ("{not json", "not a DataX job file: not valid JSON (line 1, column 2: Expecting property name enclosed in "
                  "double quotes)"),
    ({"content": []}, "job: not a DataX job file: the top level needs a `job` object with `content` and `setting`"),
    ({"job": {"content": [MYSQL_HBASE["job"]["content"][0]] * 2}},
     "job.content: has 2 entries; a sync spec is one reader and one writer: split the job into 2 job files"),
    ({"job": {"content": [{"reader": {"name": "oraclereader", "parameter": {}},
                           "writer": MYSQL_HBASE["job"]["content"][0]["writer"]}]}},
     "job.content[0].reader.name: unknown reader 'oraclereader': accelsync converts mysqlreader, txtfilereader, "
     "kafkareader"),
    ({"job": {"content": [{"reader": MYSQL_HBASE["job"]["content"][0]["reader"],
                           "writer": {"name": "hbase11xwriter", "parameter": {
                               "table": "t", "mode": "normal", "rowkeyColumn": [{"index": 0, "type": "string"}],
                               "column": [{"index": 4, "name": "cf:x", "type": "string"}]}}}]}},
     "job.content[0].writer.parameter.column[0].index: is 4, past the reader's record, which has 4 columns "
     "(indexes 0 to 3)"),
    ({"job": {"content": [{"reader": {"name": "mysqlreader", "parameter": {
        "username": "u", "password": "p", "column": ["*"],
        "connection": [{"table": ["t"], "jdbcUrl": ["jdbc:mysql://h/db"]}]}},
        "writer": MYSQL_HBASE["job"]["content"][0]["writer"]}]}},
     "job.content[0].writer.parameter.rowkeyColumn[0].index: cannot be converted: "
     "job.content[0].reader.parameter.column is [\"*\"]: the record's column order is the table's, which a job "
     "file does not say; list the columns"),
    ({"job": {"content": [{"reader": MYSQL_HBASE["job"]["content"][0]["reader"],
                           "writer": {"name": "hbase11xwriter", "parameter": {
                               "table": "t", "mode": "normal",
                               "rowkeyColumn": [{"index": -1, "type": "string", "value": "k"}],
                               "column": [{"index": 1, "name": "cf:x", "type": "string"}]}}}]}},
     "job.content[0].writer.parameter.rowkeyColumn: has only constants: every row would get the same key "
     "(DataX refuses it too)"),
])
def test_bad_job_files_get_clear_errors(tmp_path, capsys, job, message):
    path = job_file(tmp_path, job)
    with pytest.raises(SpecError) as error:
        convert_file(path)
    assert error.value.lines() == [f"{path}: {message}"]
    assert cli.main(["run", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: {message}\n"


# ---------------------------------------------------------------- accelsync new

@pytest.mark.parametrize("source", ["mysql", "kafka", "logs"])
@pytest.mark.parametrize("target", ["redis", "hbase", "druid"])
def test_new_writes_a_starter_that_validates(tmp_path, capsys, monkeypatch, source, target):
    monkeypatch.chdir(tmp_path)
    name = f"{source}_to_{target}"
    assert cli.main(["new", name, "--source", source, "--target", target]) == 0
    spec_path = tmp_path / "dags" / "syncs" / f"{name}.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {spec_path.relative_to(tmp_path)}", f"wrote expectations/{name}.json",
        f"next: accelsync validate {spec_path.relative_to(tmp_path)}"]
    assert cli.main(["validate", str(spec_path)]) == 0
    assert f"dags/syncs/{name}.yaml: ok ({name}: {source} -> {target})" in capsys.readouterr().out
    assert cli.main(["new", name, "--source", source, "--target", target]) == 1  # never overwrites
    assert capsys.readouterr().err == f"accelsync new: dags/syncs/{name}.yaml exists; choose another name or remove it\n"


def test_addax_layout_connection_object_and_plain_strings(tmp_path):
    """Addax writes `connection` as one object and `jdbcUrl` / `table` as plain strings."""
    job = copy.deepcopy(MYSQL_HBASE)
    reader = job["job"]["content"][0]["reader"]["parameter"]
    reader["connection"] = {"table": "users", "jdbcUrl": "jdbc:mysql://db.example:3307/shop"}
    conversion = convert_file(job_file(tmp_path, job))
    assert conversion.spec["source"]["table"] == "users"
    assert conversion.spec["source"]["connection"] == "mysql_db_example_3307_shop_datax"


@pytest.mark.parametrize("job", [MYSQL_HBASE, TXT_HBASE, KAFKA_HBASE], ids=["mysql", "txtfile", "kafka"])
@pytest.mark.parametrize("delimiter", ["|", "\t", ","])
def test_rendered_yaml_reads_back_as_the_converted_spec(tmp_path, job, delimiter):
    job = copy.deepcopy(job)
    reader = job["job"]["content"][0]["reader"]["parameter"]
    if "fieldDelimiter" in reader:
        reader["fieldDelimiter"] = delimiter
    conversion = convert_file(job_file(tmp_path, job))
    assert yaml.safe_load(render(conversion)) == conversion.spec
