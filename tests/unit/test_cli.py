"""The command line without services: validate and schema."""

from __future__ import annotations

import json

from accelsync.cli import main


def test_validate_reports_each_problem_and_exit_status(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("name: ok_sync\nsource: {type: mysql, table: t, columns: [id]}\n"
                    "target: {type: redis, key: 'k:{id}'}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad_sync\nsource: {type: mysql, table: t, columns: [id]}\n"
                   "target: {type: redis, key: 'k:{uid}'}\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.read_text() + "speed: {chanels: 2}\n")

    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: target.key: template uses 'uid', which is not a source column (columns: id)" in out
    assert f"{typo}: speed.chanels: unknown field" in out
    assert f"{good}: ok (ok_sync: mysql -> redis)" in out


def test_demo_specs_are_valid():
    assert main(["validate", "dags/syncs"]) == 0


def test_schema_is_json(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "accelsync sync spec" and "source" in schema["properties"]


def test_validate_checks_the_suite_with_great_expectations_and_prints_notes(tmp_path, capsys):
    suite = tmp_path / "s.json"
    suite.write_text('{"name": "s", "expectations": [{"type": "expect_column_values_to_be_nul", '
                     '"kwargs": {"column": "id"}}]}')
    spec = tmp_path / "x.yaml"
    spec.write_text(f"name: x\nsource: {{type: mysql, table: t, columns: [id]}}\n"
                    f"target: {{type: redis, key: 'k:{{id}}'}}\nquality: {{suite: {suite}}}\n")
    assert main(["validate", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"{spec}: quality.suite: {suite}: expectations[0].type: unknown expectation type " \
           "'expect_column_values_to_be_nul'; did you mean 'expect_column_values_to_be_null'?" in out
    suite.write_text('{"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", '
                     '"kwargs": {"column": "id"}}]}')
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{spec}: ok (x: mysql -> redis)"
    assert out[1].startswith(f"{spec}: target.mode: note: rows are written where readers see them before the gate")
    assert not any("Great Expectations computes" in line for line in out)  # the Arrow path computes it
    suite.write_text('{"name": "s", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": '
                     '{"column": "id"}}, {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "id", '
                     '"min_value": 1}}]}')
    assert main(["validate", str(spec)]) == 0
    assert f"{spec}: quality.suite: note: Great Expectations computes this suite in the gate, since expectations[1]" \
           " (expect_column_mean_to_be_between) is not one accelsync computes (importing GX adds 3 to 5 s to the" \
           " gate)" in capsys.readouterr().out.splitlines()
