"""Druid's own HTTP API through the router, with plain urllib: the tests' independent read path
(Druid SQL, the coordinator's datasources, the overlord's tasks), never accelsync's DruidClient."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

ETERNITY = "1000-01-01/3000-01-01"


class DruidApi:
    def __init__(self, address: str):
        self.base = f"http://{address}"

    def call(self, method: str, path: str, body=None, timeout: float = 60):
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def sql(self, query: str) -> list[dict]:
        status, body = self.call("POST", "/druid/v2/sql", {"query": query, "resultFormat": "object"})
        assert status == 200, body
        return body

    def datasources(self) -> list[str]:
        """Datasources with used segments, as the coordinator knows them."""
        status, body = self.call("GET", "/druid/coordinator/v1/datasources")
        assert status == 200, body
        return body

    def all_datasources(self) -> list[str]:
        """Every datasource the metadata store still has segments of, used or unused."""
        status, body = self.call("GET", "/druid/coordinator/v1/metadata/datasources?includeUnused")
        assert status == 200, body
        return body

    def wait_removed(self, name: str, timeout: float = 90) -> None:
        """Until the datasource has no segment at all: marked unused, then killed."""
        self.wait(lambda: name not in self.all_datasources(), timeout, f"datasource {name} removed")

    def task_status(self, task_id: str) -> dict:
        return self.call("GET", f"/druid/indexer/v1/task/{task_id}/status")[1]["status"]

    def wait(self, condition, timeout: float = 60, what: str = "condition"):
        """Poll `condition()` until it is truthy (Druid's views converge within seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            assert time.monotonic() < deadline, f"{what} not reached within {timeout:.0f}s"
            time.sleep(0.5)

    def wait_gone(self, prefix: str, timeout: float = 60) -> None:
        """Until no datasource starting with `prefix` has used segments."""
        self.wait(lambda: not [d for d in self.datasources() if d.startswith(prefix)], timeout,
                  f"datasources {prefix}* gone")

    def drop(self, datasource: str) -> None:
        """Mark every segment unused and kill them (the test's own cleanup)."""
        self.call("DELETE", f"/druid/coordinator/v1/datasources/{datasource}")
        self.call("POST", "/druid/indexer/v1/task", {"type": "kill", "dataSource": datasource,
                                                     "interval": ETERNITY})

    def fill_workers(self, seconds: int = 150) -> list[str]:
        """Occupy every indexer slot with a `noop` task for `seconds`, so a task submitted now
        stays pending (`shutdown` frees them sooner)."""
        status, workers = self.call("GET", "/druid/indexer/v1/workers")
        capacity = sum(w["worker"]["capacity"] for w in workers)
        ids = []
        for _ in range(capacity):
            status, body = self.call("POST", "/druid/indexer/v1/task",
                                     {"type": "noop", "runTime": seconds * 1000})
            assert status == 200, body
            ids.append(body["task"])
        self.wait(lambda: all(self.call("GET", f"/druid/indexer/v1/task/{t}/status")[1]["status"]
                              .get("runnerStatusCode") == "RUNNING" for t in ids), 120, "noop tasks running")
        return ids

    def shutdown(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.call("POST", f"/druid/indexer/v1/task/{task_id}/shutdown")
