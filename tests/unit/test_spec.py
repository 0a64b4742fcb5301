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
    ({"type": "mysql", "table": "t", "incremental": {"column": "id"}},
     "`source.incremental` reads only what is new since the last run"),
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
    assert spec.kafka_group == "accelsync.orders_sync"


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
    (project / "expectations" / "s.json").write_text("{}")
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
