"""How the contract suite reads each target back, with a client that is not accelsync's own, and
what each target must hold for the dataset (written out by hand from the README's value rules)."""

from __future__ import annotations

import uuid

from dataset import VALUE_COLUMNS

# The text of every value (README, "text of a value"): what Redis and HBase hold.
TEXT = {
    1: {"code": "a", "name": "plain", "amount": "12.5000", "score": "1.5", "big": "9223372036854775807",
        "at": "2026-11-30 10:00:00.123456", "day": "2026-11-30", "note": "first", "ts": "2026-11-30 10:00:00"},
    2: {"code": "b", "name": "中文 Ελληνικά 😀", "amount": "-0.0001", "score": "-1.7976931348623157e+308",
        "big": "-9223372036854775808", "at": "1970-01-01 00:00:00", "day": "1970-01-01", "ts": "2026-12-01 00:00:00"},
    3: {"code": "c", "name": "", "amount": "9999999999999999.9999", "score": "2.2250738585072014e-308", "big": "0",
        "at": "9999-12-31 23:59:59.999999", "day": "9999-12-31", "note": "", "ts": "2026-12-02 23:59:59"},
    4: {"code": "d", "name": 'q"uote \\ back\ttab, comma', "amount": "0.0000", "score": "0", "big": "1",
        "ts": "2026-12-03 12:00:00"},
}


class TargetHarness:
    """One target type: `block()` is the spec's `target:` block (fresh names per test), `stored()`
    what the target holds, `expected()` what it must hold after the dataset was synced."""

    type = ""
    fixtures: tuple[str, ...] = ()
    bad_reason = ""          # why the dataset's bad row is refused
    unseen_mode: dict | None = None   # target settings under which nothing is visible before publish
    live_before_gate = False  # the target shows rows as they are written (upsert): the README says so

    def __init__(self, fixtures: dict):
        self.f = fixtures
        self.name = "ct_" + uuid.uuid4().hex[:8]

    def block(self, **overrides) -> dict:
        raise NotImplementedError

    def stored(self) -> dict:
        raise NotImplementedError

    def expected(self) -> dict:
        raise NotImplementedError

    def leftovers(self) -> list:
        """What a run that did not publish left where a reader could find it (besides live data)."""
        return []


class RedisHarness(TargetHarness):
    type = "redis"
    fixtures = ("redis_client",)
    bad_reason = "all hash fields are NULL; Redis cannot store an empty hash"
    unseen_mode = {"mode": "swap"}
    live_before_gate = True  # in the default mode, upsert

    def block(self, **overrides):
        self.mode = overrides.get("mode", "upsert")
        return {"type": "redis", "connection": "test_redis", "key": self.name + ":{id}",
                "value": {"type": "hash", "fields": VALUE_COLUMNS}, **overrides}

    def _prefix(self) -> str:
        if getattr(self, "mode", "upsert") != "swap":
            return ""
        live = self.f["redis_client"].get(f"accelsync:live:{self.sync}")
        return live.decode() if live else "(nothing published)"

    def stored(self):
        client, prefix = self.f["redis_client"], self._prefix()
        found = {}
        for key in client.scan_iter(match=f"{prefix}{self.name}:*"):
            found[key.decode()[len(prefix):]] = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        return found

    def expected(self):
        return {f"{self.name}:{row_id}": fields for row_id, fields in TEXT.items()}

    def leftovers(self):
        client = self.f["redis_client"]
        live = (client.get(f"accelsync:live:{self.sync}") or b"").decode()
        return [k.decode() for k in client.scan_iter(match=f"{self.sync}:*")
                if not (live and k.decode().startswith(live))]


class HbaseHarness(TargetHarness):
    """Cells read through HBase's REST server; every non-key column in family `cf`."""

    type = "hbase"
    fixtures = ("hbase_rest",)
    bad_reason = "row key column 'code' is NULL"
    live_before_gate = True

    def block(self, **overrides):
        return {"type": "hbase", "connection": "hbase_default", "table": self.name, "row_key": "{code}:{id}",
                "family": "cf", "create_table": True, **overrides}

    def stored(self):
        if self.name not in self.f["hbase_rest"].tables():
            return {}
        return {key.decode(): {column.decode().split(":", 1)[1]: versions[0][0].decode()
                               for column, versions in cells.items()}
                for key, cells in self.f["hbase_rest"].cells(self.name).items()}

    def expected(self):
        return {f"{fields['code']}:{row_id}": {k: v for k, v in fields.items() if k != "code"}
                for row_id, fields in TEXT.items()}


class DruidHarness(TargetHarness):
    """Rows read with Druid SQL through the router (plain HTTP); event time `ts`, day segments."""

    type = "druid"
    fixtures = ("druid", "druid_datasource")
    bad_reason = "timestamp column 'ts' is NULL"
    unseen_mode = {}  # the default, replace: staged in a datasource of its own until publish

    def block(self, **overrides):
        self.datasource = self.f["druid_datasource"](self.name)
        return {"type": "druid", "connection": "druid_default", "datasource": self.datasource,
                "timestamp": {"column": "ts"},
                "dimensions": ["id", "code", "name", "amount", "score", "big", "at", "day", "note"], **overrides}

    def stored(self):
        if self.datasource not in self.f["druid"].datasources():
            return {}
        rows = self.f["druid"].sql(f'SELECT __time, id, code, name, amount, score, big, "at", "day", note '
                                   f'FROM "{self.datasource}"')
        return {row["id"]: {k: v for k, v in row.items() if k != "id"} for row in rows}

    def expected(self):
        doubles = {1: 1.5, 2: -1.7976931348623157e308, 3: 2.2250738585072014e-308, 4: 0.0}
        found = {}
        for row_id, text in TEXT.items():
            found[row_id] = {"__time": text["ts"].replace(" ", "T") + ".000Z", "code": text["code"],
                             "name": text["name"], "amount": text["amount"], "score": doubles[row_id],
                             "big": int(text["big"]), "at": text.get("at"), "day": text.get("day"),
                             "note": text.get("note")}
        return found

    def leftovers(self):
        """Staging datasources of the sync still served (the coordinator's list converges within
        seconds of a drop, so this waits up to a minute for it)."""
        import time

        deadline = time.monotonic() + 60
        while True:
            staged = [d for d in self.f["druid"].datasources() if d.startswith(self.datasource + "__accelsync_")]
            if not staged or time.monotonic() > deadline:
                return staged
            time.sleep(1)
