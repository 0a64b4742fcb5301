"""The local engine in a process that runs more than one sync (a `dag.test()` session, a long-lived
worker, the test session): workers are forked only while the process holds no thread a fork would
copy half-way. A second two-channel MySQL sync after a first one read through ConnectorX in the
process (whose connection pool and runtime threads a forked worker would inherit without their
threads, and hang on) must finish."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from accelsync import pipeline
    from accelsync.engine import local
    from accelsync.spec import parse_spec

    import pyarrow  # what every run imports: its own threads are fork-safe
    fresh = local._start_method()

    def spec(channels):
        return parse_spec({"name": f"local_engine_{channels}",
                           "source": {"type": "mysql", "connection": "test_mysql", "table": "numbers",
                                      "split_pk": "id"},
                           "target": {"type": "redis", "connection": "test_redis", "key": "n{channels}:{id}"
                                      .replace("{channels}", str(channels)), "value": {"type": "hash"}},
                           "speed": {"channels": channels}})

    first = pipeline.run(spec(1))   # in this process: ConnectorX starts its threads here
    after = local._start_method()
    second = pipeline.run(spec(2))  # two workers, from a fork server started now
    os.environ["ACCELSYNC_PROBE"] = "set after the fork server started"
    with local._pool(1) as pool:
        probe = pool.submit(os.getenv, "ACCELSYNC_PROBE").result()
    print(json.dumps({"fresh": fresh, "after": after, "first": first["written"], "probe": probe,
                      "second": second["written"], "status": second["status"],
                      **({"reason": second["reason"]} if second["status"] != "published" else {})}))
""")


def test_a_second_sync_in_the_same_process_does_not_hang(services, mysql, redis_client):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE numbers (id INT PRIMARY KEY, label VARCHAR(10))")
    cursor.executemany("INSERT INTO numbers VALUES (%s, %s)", [(i, f"n{i}") for i in range(1, 2001)])
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"fresh": "fork", "after": "forkserver", "first": 2000, "second": 2000, "status": "published",
                     "probe": "set after the fork server started"}  # workers see this process's environment now
    assert redis_client.hget("n2:2000", "label") == b"n2000"
