"""Spec loading: every kind of mistake is named with its file and field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from accelsync.errors import SpecError
from accelsync.spec import json_schema, load_spec, parse_spec

GOOD = """\
name: users_to_redis
owner: growth-data
priority: high
timeout: 20m
source: {type: mysql, table: users, columns: [id, name, city], split_pk: id}
target: {type: redis, key: "user:{id}", value: {type: hash, fields: [name, city]}, ttl: 7d}
speed: {channels: 4}
error_limit: {records: 100, percentage: 0.001}
"""


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as failure:
        load_spec(path)
    return [line.removeprefix(f"{path}: ") for line in failure.value.lines()]


def test_good_spec_loads_with_types(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.name == "users_to_redis" and spec.timeout == timedelta(minutes=20)
    assert spec.target.ttl == timedelta(days=7) and spec.target.key.columns == ["id"]
    assert spec.speed.channels == 4 and spec.error_limit.percentage == 0.001
    assert spec.source.connection == "mysql_default" and spec.target.mode == "upsert"


@pytest.mark.parametrize("change, expected", [
    (("target: {type: redis, key: \"user:{id}\"", "target: {type: redis, key: \"user:{uid}\""),
     "target.key: template uses 'uid', which is not a source column (columns: id, name, city)"),
    (("owner: growth-data", "owner: growth-data\nownr: typo"), "ownr: unknown field"),
    (("split_pk: id}", "split_pk: id, fetchsize: 3}"), "source.fetchsize: unknown field"),
    (("name: users_to_redis", "name: Users-To-Redis"),
     "name: must be lower-case letters, digits and _, starting with a letter"),
    (("timeout: 20m", "timeout: 20 minutes"),
     "timeout: '20 minutes' is not a duration; use a number with a unit: 30s, 20m, 2h, 7d"),
    (("type: mysql,", "type: oracle,"),
     "source.type: unknown type 'oracle'; expected one of 'mysql', 'kafka', 'logs'"),
    (("priority: high", "priority: urgent"), "priority: must be one of 'high', 'medium' or 'low' (got 'urgent')"),
    (("table: users,", "table: \"users; DROP TABLE x\","),
     "source.table: 'users; DROP TABLE x' is not a valid table name (letters, digits, _ and $; no quotes or spaces)"),
    (("columns: [id, name, city]", "columns: [id, \"name`\", city]"),
     "source.columns: 'name`' is not a valid column name (letters, digits, _ and $; no quotes or spaces)"),
    (("table: users,", "table: users, query: select 1,"), "source: give exactly one of `table` and `query`"),
    (("speed: {channels: 4}", "speed: {channels: 0}"), "speed.channels: Input should be greater than or equal to 1"),
    (("percentage: 0.001", "percentage: 2"), "error_limit.percentage: Input should be less than or equal to 1"),
    (("ttl: 7d}", "ttl: 7d, compression: zstd}"), "target: compression applies to string and json values, not hash"),
    (("value: {type: hash, fields: [name, city]}", "value: {type: hash, fields: [name, cty]}"),
     "target.value: names 'cty', which is not a source column (columns: id, name, city)"),
])
def test_each_mistake_names_its_field(tmp_path, change, expected):
    old, new = change
    assert old in GOOD
    assert expected in problems(tmp_path, GOOD.replace(old, new))


@pytest.mark.parametrize("source, reads", [
    ({"type": "kafka", "topic": "t", "schema": {"id": "long"}}, "a kafka source reads only the messages since"),
    ({"type": "mysql", "table": "t", "incremental": {"column": "id"}}, "`source.incremental` reads only what is new"),
    ({"type": "logs", "path": "/x", "incremental": True, "schema": {"id": "long"}},
     "`source.incremental` reads only what is new"),
])
def test_swap_needs_a_source_read_in_full(source, reads):
    spec = {"name": "s", "source": source,
            "target": {"type": "redis", "key": "k:{id}", "mode": "swap", "value": {"type": "json"}}}
    with pytest.raises(SpecError) as failure:
        parse_spec(spec)
    assert f"target.mode: swap serves each run's rows as the whole new version, and {reads}" in str(failure.value)
    assert parse_spec(dict(spec, target=dict(spec["target"], mode="upsert"))).target.mode == "upsert"


DRUID = {"type": "druid", "datasource": "d", "timestamp": {"column": "id"}}
DELTA_SOURCES = [
    ({"type": "kafka", "topic": "t", "schema": {"id": "long"}}, "a kafka source reads only the messages since the last run"),
    # (an incremental MySQL source is refused into Druid in any mode: test_incremental_mysql_into_druid_is_refused)
    ({"type": "logs", "path": "/x", "incremental": True, "schema": {"id": "long"}},
     "`source.incremental` reads only what is new since the last run"),
]


@pytest.mark.parametrize("source, reads", DELTA_SOURCES)
def test_druid_appends_a_delta_source_and_refuses_to_replace_with_it(source, reads):
    spec = {"name": "s", "source": source, "target": DRUID}
    assert parse_spec(spec).target.mode == "append"
    with pytest.raises(SpecError) as failure:
        parse_spec(dict(spec, target=dict(DRUID, mode="replace")))
    assert str(failure.value).endswith(
        f"target.mode: replace makes the datasource hold exactly each run's rows, and {reads}, so a run would "
        f"remove the rows earlier runs published; use mode: append (the default for this source)")


@pytest.mark.parametrize("source", [{"type": "mysql", "table": "t"},
                                    {"type": "logs", "path": "/x", "schema": {"id": "long"}}])
def test_druid_replaces_by_default_for_a_full_read_and_may_append(source):
    spec = {"name": "s", "source": source, "target": DRUID}
    assert parse_spec(spec).target.mode == "replace"
    assert parse_spec(dict(spec, target=dict(DRUID, mode="append"))).target.mode == "append"
    # The resolved mode survives the round trip to the Spark tasks (the spec as JSON).
    assert parse_spec(json.loads(parse_spec(spec).model_dump_json(by_alias=True))).target.mode == "replace"


def test_missing_required_fields(tmp_path):
    found = problems(tmp_path, "name: x\nsource: {type: kafka}\n")
    assert "source.topic: required field is missing" in found
    assert "target: required field is missing" in found


def test_yaml_syntax_error_names_line(tmp_path):
    [line] = problems(tmp_path, "name: x\nsource: {type: mysql\n")
    assert "line" in line and "not valid YAML" in line


def test_not_a_mapping_and_unreadable(tmp_path):
    assert problems(tmp_path, "- a\n- b\n") == ["a spec is a mapping of fields (name, source, target, ...)"]
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("source", [
    {"type": "kafka", "topic": "orders", "format": "json", "schema": {"order_id": "long", "amount": "decimal(10,2)"}},
    {"type": "logs", "path": "/var/log/*.log.gz", "format": "regex",
     "pattern": r"^(?P<ip>\S+) (?P<status>\d{3})", "schema": {"ip": "string", "status": "int"}},
])
def test_every_source_type_is_declared(source):
    spec = parse_spec({"name": "x", "source": source, "target": {"type": "redis", "key": "k:{_offset}" if
                       source["type"] == "kafka" else "k:{_file}:{_line}"}})
    assert spec.source.type == source["type"]


def test_kafka_group_defaults_from_name():
    spec = parse_spec({"name": "orders_sync", "source": {"type": "kafka", "topic": "t", "format": "raw"},
                       "target": {"type": "redis", "key": "k:{_offset}"}})
    assert spec.source.group_of(spec.name) == "accelsync.orders_sync"


def test_regex_pattern_checked():
    with pytest.raises(SpecError, match="pattern has no named groups"):
        parse_spec({"name": "x", "source": {"type": "logs", "path": "/x", "format": "regex", "pattern": "(a)"},
                    "target": {"type": "redis", "key": "k:{_line}"}})


@pytest.mark.parametrize("target, message", [
    ({"type": "hbase", "table": "t", "row_key": "{id}"}, "give exactly one of `columns`"),
    ({"type": "hbase", "table": "t", "row_key": "{id}", "columns": {"nofamily": "id"}}, "is not family:qualifier"),
    ({"type": "druid", "datasource": "d", "timestamp": {"column": "id"},
      "metrics": [{"type": "doubleSum", "name": "m"}]}, "needs a `field`"),
])
def test_hbase_and_druid_targets_are_checked(target, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "x", "source": {"type": "mysql", "table": "t", "columns": ["id"]}, "target": target})


def test_schema_covers_every_type():
    schema = json.dumps(json_schema())
    for name in ("mysql", "kafka", "logs", "redis", "hbase", "druid", "error_limit", "records_per_second"):
        assert f'"{name}"' in schema


def test_relative_suite_resolves_from_the_spec_folder_upwards(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "expectations").mkdir(parents=True)
    (project / "expectations" / "s.json").write_text('{"name": "s", "expectations": []}')
    (project / "dags" / "syncs").mkdir(parents=True)
    path = project / "dags" / "syncs" / "x.yaml"
    path.write_text(GOOD + "quality: {suite: expectations/s.json}\n")
    monkeypatch.chdir(tmp_path)
    assert load_spec(path).quality.suite == str(project / "expectations" / "s.json")


@pytest.mark.parametrize("text, seconds, shown", [("250ms", 0.25, "250ms"), (0.001, 0.001, "1ms"),
                                                  ("90s", 90, "90s"), ("120m", 7200, "2h")])
def test_durations_round_trip_through_their_text(text, seconds, shown):
    from accelsync.spec import format_duration, parse_duration

    value = parse_duration(text)
    assert value.total_seconds() == seconds
    assert format_duration(value) == shown and parse_duration(shown) == value


# ---------------------------------------------------------------- what `validate` catches before a run

def _spec(**parts) -> dict:
    spec = {"name": "x", "source": {"type": "mysql", "table": "t", "columns": ["id", "ts"]},
            "target": {"type": "redis", "key": "k:{id}"}}
    spec.update(parts)
    return spec


def _problem_lines(data: dict) -> list[str]:
    with pytest.raises(SpecError) as failure:
        parse_spec(data, "x.yaml")
    return failure.value.lines()


@pytest.mark.parametrize("schedule, message", [
    ("0 25 * * *", "x.yaml: schedule: '0 25 * * *' is not a cron expression"),
    ("every hour", "x.yaml: schedule: 'every hour' is not a cron expression"),
    ("@hourlyy", "x.yaml: schedule: '@hourlyy' is not an Airflow preset; use one of @once, @continuous"),
])
def test_a_bad_schedule_is_caught(schedule, message):
    [line] = _problem_lines(_spec(schedule=schedule))
    assert line.startswith(message)


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 3 * * 1-5", "@daily", "@once", "@quarterly", None])
def test_good_schedules_pass(schedule):
    assert parse_spec(_spec(schedule=schedule)).schedule == schedule


def test_a_key_given_twice_is_caught_with_its_lines(tmp_path):
    found = problems(tmp_path, GOOD + "speed: {channels: 2}\n")
    assert found == ["speed: given twice (lines 7 and 9); YAML would silently keep the last"]
    nested = GOOD.replace("split_pk: id}", "split_pk: id, table: other}")
    assert problems(tmp_path, nested) == ["source.table: given twice (lines 5 and 5); YAML would silently keep the last"]


def test_a_missing_suite_or_a_file_that_is_not_a_suite_is_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert problems(tmp_path, GOOD + "quality: {suite: expectations/none.json}\n") == [
        "quality.suite: no suite file expectations/none.json (looked in the current folder and every folder "
        "above the spec)"]
    (tmp_path / "notes.json").write_text('{"rows": [1, 2]}')
    [line] = problems(tmp_path, GOOD + "quality: {suite: notes.json}\n")
    assert line == (f"quality.suite: {tmp_path / 'notes.json'}: not a Great Expectations suite (a JSON object "
                    "with `name` and a list of `expectations`)")
    (tmp_path / "bad.json").write_text("{not json")
    [line] = problems(tmp_path, GOOD + "quality: {suite: bad.json}\n")
    assert line.startswith(f"quality.suite: {tmp_path / 'bad.json'}: not JSON:")


@pytest.mark.parametrize("target, message", [
    ({"type": "hbase", "table": "t", "row_key": "{id}", "family": ""},
     "x.yaml: target.family: '' is not a column family name"),
    ({"type": "hbase", "table": "t", "row_key": "{id}", "family": "c f"},
     "x.yaml: target.family: 'c f' is not a column family name"),
    ({"type": "hbase", "table": "t", "row_key": "{id}", "columns": {}},
     "x.yaml: target.columns: name at least one family:qualifier"),
])
def test_hbase_family_must_be_a_name(target, message):
    [line] = _problem_lines(_spec(target=target))
    assert line.startswith(message)


@pytest.mark.parametrize("name", ["_file", "_line", "_key", "_partition", "_offset", "_timestamp"])
@pytest.mark.parametrize("source", ["kafka", "logs"])
def test_schema_fields_may_not_shadow_meta_columns(source, name):
    options = {"type": source, "schema": {name: "string", "id": "long"}}
    options.update({"topic": "t"} if source == "kafka" else {"path": "/x"})
    [line] = _problem_lines(_spec(source=options, target={"type": "redis", "key": "k:{id}"}))
    assert line.startswith(f"x.yaml: source.schema: field {name!r} has the name of a column every record "
                           "carries (_key, _partition, _offset, _timestamp, _file, _line); rename it")


def test_regex_groups_may_not_shadow_meta_columns():
    source = {"type": "logs", "path": "/x", "format": "regex", "pattern": r"^(?P<_line>\d+) (?P<id>\d+)"}
    [line] = _problem_lines(_spec(source=source))
    assert line.startswith("x.yaml: source: field '_line' has the name of a column every record carries")


@pytest.mark.parametrize("kind, message", [
    ("decimal(40,2)", "field 'amount': decimal(40,2) has precision 40; decimal precision is 1 to 38"),
    ("decimal(0,0)", "field 'amount': decimal(0,0) has precision 0; decimal precision is 1 to 38"),
    ("decimal(5,7)", "field 'amount': decimal(5,7) has a scale above its precision"),
])
def test_decimal_precision_is_checked(kind, message):
    source = {"type": "kafka", "topic": "t", "schema": {"id": "long", "amount": kind}}
    [line] = _problem_lines(_spec(source=source))
    assert line == f"x.yaml: source.schema: {message}"
    ok = dict(source, schema={"id": "long", "amount": "decimal(38,10)"})
    assert parse_spec(_spec(source=ok)).source.schema_["amount"] == "decimal(38,10)"


def test_incremental_mysql_into_druid_is_refused():
    source = {"type": "mysql", "table": "t", "columns": ["id", "ts"], "incremental": {"column": "ts"}}
    target = {"type": "druid", "datasource": "d", "timestamp": {"column": "ts"}}
    [line] = _problem_lines(_spec(source=source, target=target))
    assert line.startswith("x.yaml: source.incremental: an incremental MySQL source reads the rows at its "
                           "watermark (and within `lookback`) again")
    assert "a druid target keeps every row it is given, so those rows would count twice" in line
    full = dict(source)
    del full["incremental"]
    assert parse_spec(_spec(source=full, target=target)).target.type == "druid"
    assert parse_spec(_spec(source=source)).source.incremental.column == "ts"  # keyed Redis: fine


@pytest.mark.parametrize("lookback, value", [("5m", timedelta(minutes=5)), (1000, 1000), (None, None)])
def test_incremental_lookback_is_a_duration_or_a_number(lookback, value):
    source = {"type": "mysql", "table": "t", "incremental": {"column": "ts", "lookback": lookback}}
    assert parse_spec(_spec(source=source)).source.incremental.lookback == value


def test_upsert_targets_say_their_rows_are_live_before_the_gate():
    upsert = parse_spec(_spec())
    assert upsert.visible_before_gate
    assert upsert.notes()[0][0] == "target.mode"
    assert "rows written in upsert mode stay live" in upsert.notes()[0][1]
    swap = parse_spec(_spec(target={"type": "redis", "key": "k:{id}", "mode": "swap"}))
    assert not swap.visible_before_gate and swap.notes() == []
    hbase = parse_spec(_spec(target={"type": "hbase", "table": "t", "row_key": "{id}", "family": "cf"}))
    assert hbase.visible_before_gate and hbase.notes()[0][0] == "target.type"
