"""`accelsync demo` end to end, as a user runs it: a subprocess with its own ACCELSYNC_HOME.

It loads the demo tables into the `accelsync` database and writes the demo keys (`user:*`,
`order:*`) into the devstack Redis: that is the demo's product, so it is left in place.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelsync.demo import expected_keys, user_row

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = 500


def test_demo_runs_every_dag_and_fills_redis(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and k not in ("ACCELSYNC_SPECS", "ACCELSYNC_HOME")}
    env["ACCELSYNC_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "accelsync.cli", "demo", "--rows", str(ROWS)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = tmp_path / "home" / "demo.log"
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:],
                                  log.read_text(errors="replace")[-6000:] if log.exists() else "")
    out = done.stdout
    assert "accelsync job summary: users_to_redis (mysql -> redis)" in out
    assert "accelsync job summary: orders_to_redis (mysql -> redis)" in out
    for dag_id in ("users_to_redis", "orders_to_redis"):
        assert any(line.startswith(dag_id) and " success " in line for line in out.splitlines()), out
    assert "demo succeeded" in out.splitlines()

    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        keys = expected_keys(ROWS)
        users, _ = keys["users_to_redis"]
        orders, cancelled = keys["orders_to_redis"]
        assert client.exists(*users) == ROWS
        assert client.exists(*orders) == len(orders) and 0 < len(orders) < 2 * ROWS
        assert client.exists(*cancelled) == 0
        user_id, name, city, score, updated_at = user_row(7)
        assert client.hgetall("user:7") == {b"name": name.encode(), b"city": city.encode(),
                                            b"score": f"{score:.2f}".encode(),
                                            b"updated_at": updated_at.strftime("%Y-%m-%d %H:%M:%S").encode()}
        assert client.ttl(orders[0]) > 6 * 86400
    finally:
        client.close()
