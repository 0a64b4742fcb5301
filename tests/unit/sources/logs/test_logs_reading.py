"""The logs source read in this process, on files only (no server): planning, splitting large files
at line starts, the value rules, bisecting a block down to its bad lines, a truncated gzip."""

from __future__ import annotations

import gzip
import json


from accelsync.engine.dirty import DirtyLog
from accelsync.sources.logs import blocks, files
from accelsync.sources.logs.source import LogsSource
from accelsync.spec import parse_spec
from logfiles import write_lines


def make_spec(name: str, source: dict, key: str, **overrides) -> object:
    spec = {"name": name, "source": source, "target": {"type": "redis", "key": key}, **overrides}
    return parse_spec(spec)


def plan_and_read(spec, channels: int = 1):
    """Plan and read in this process: the plan, the rows and the dirty log."""
    source = LogsSource(spec)
    plan = source.plan(channels)
    dirty = DirtyLog(None, "test")
    rows = [row for partition in plan.partitions for batch in source.read(plan, partition, dirty)
            for row in batch.to_pylist()]
    return plan, rows, dirty


def test_no_files_plan_zero_partitions(tmp_path):
    spec = make_spec("test_logs_empty", {"type": "logs", "path": str(tmp_path / "nothing" / "*.log"),
                                         "format": "json", "schema": {"id": "long"}}, key="x:{id}")
    plan = LogsSource(spec).plan(4)
    assert plan.partitions == [] and plan.description.startswith("no files match")
    assert plan.schema.names == ["id", "_file", "_line"]


def test_large_plain_files_split_by_lines_and_balanced(tmp_path, monkeypatch):
    lines = [json.dumps({"id": i, "pad": "x" * (i % 37)}) for i in range(1, 4001)]
    lines[1000] = json.dumps({"id": 1001, "pad": "y" * 5000})  # a line longer than the blocks below
    big = tmp_path / "big.log"
    big.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    write_lines(tmp_path / "small.log.gz", ['{"id": 9001}'], zipped=True)
    monkeypatch.setattr(files, "SPLIT_MIN_BYTES", 1000)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    spec = make_spec("test_logs_split", {"type": "logs", "path": str(tmp_path), "format": "json",
                                         "schema": {"id": "long"}}, key="x:{id}")

    plan, rows, dirty = plan_and_read(spec, channels=3)

    assert len(plan.partitions) == 3
    assert sum(len(p["pieces"]) for p in plan.partitions) == 4  # big.log in 3 ranges + small.log.gz
    assert dirty.count == 0
    from_big = sorted((r["_line"], r["id"]) for r in rows if r["_file"] == str(big))
    assert from_big == [(i, i) for i in range(1, 4001)]  # every line once, with its own number
    assert [r["id"] for r in rows if r["_file"].endswith(".gz")] == [9001]


def test_timestamp_formats_accepted(tmp_path):
    values = {
        "2024-01-02": "2024-01-02 00:00:00",
        "2024-01-02T03:04:05": "2024-01-02 03:04:05",
        "2024-01-02 03:04:05.123456": "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05.123456789Z": "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05+02:00": "2024-01-02 01:04:05",
        "2024-01-02T03:04:05-0130": "2024-01-02 04:34:05",
        "10/Oct/2000:13:55:36 -0700": "2000-10-10 20:55:36",
        "1700000000": "2023-11-14 22:13:20",
        1700000000.5: "2023-11-14 22:13:20.500000",
        "  2024-01-02T03:04:05  ": "2024-01-02 03:04:05",
    }
    bad = ["yesterday", "2024-13-01", "02/01/2024", "10/Oct/2000:13:55:36"]
    write_lines(tmp_path / "ts.log", [json.dumps({"ts": v}) for v in list(values) + bad])
    spec = make_spec("test_logs_ts", {"type": "logs", "path": str(tmp_path / "ts.log"), "format": "json",
                                      "schema": {"ts": "timestamp"}}, key="x:{_line}",
                     error_limit={"records": 10})

    plan, rows, dirty = plan_and_read(spec)

    got = [r["ts"].isoformat(sep=" ") if r["ts"].microsecond else r["ts"].strftime("%Y-%m-%d %H:%M:%S")
           for r in rows]
    assert got == list(values.values())
    assert dirty.count == len(bad) and dirty.reasons == {"cast failed": len(bad)}


def test_json_blocks_fall_back_line_by_line_only_where_they_fail(tmp_path):
    lines = [json.dumps({"id": i, "n": i * 10, "tag": f"t{i}"}) for i in range(1, 301)]
    lines[0] = "null"                                          # dirty (pyarrow.json would crash on it)
    lines[99] = json.dumps({"id": 100, "n": 1000, "tag": "t100"}) + " null"  # dirty: two values
    lines[49] = json.dumps({"id": 50, "n": "500", "tag": 50})   # strings and numbers swapped: still good
    lines[149] = "{not json"                                    # dirty
    lines[249] = json.dumps({"id": 250, "n": 2.5, "tag": "t250"})  # 2.5 is not an int: dirty
    write_lines(tmp_path / "mixed.log", lines)
    spec = make_spec("test_logs_paths", {"type": "logs", "path": str(tmp_path / "mixed.log"), "format": "json",
                                         "schema": {"id": "long", "n": "int", "tag": "string"}}, key="x:{id}",
                     error_limit={"records": 10})

    plan, rows, dirty = plan_and_read(spec)

    expected = [{"id": i, "n": i * 10, "tag": f"t{i}", "_line": i} for i in range(1, 301)
                if i not in (1, 100, 150, 250)]
    expected[48]["tag"] = "50"
    assert [{k: r[k] for k in ("id", "n", "tag", "_line")} for r in rows] == expected
    assert dirty.reasons == {"bad JSON": 3, "cast failed": 1}


def test_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path, monkeypatch):
    data = gzip.compress(b"".join(b'{"id": %d}\n' % i for i in range(1, 2001)))
    (tmp_path / "cut.log.gz").write_bytes(data[:len(data) * 2 // 3])
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    spec = make_spec("test_logs_cut", {"type": "logs", "path": str(tmp_path / "cut.log.gz"), "format": "json",
                                       "schema": {"id": "long"}}, key="x:{id}", error_limit={"records": 1})

    plan, rows, dirty = plan_and_read(spec)

    assert plan.state["files"][str(tmp_path / "cut.log.gz")]["size"] == len(data) * 2 // 3
    assert len(rows) > 500 and [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    assert dirty.count == 1 and dirty.reasons == {"gzip": 1}
