"""Swap mode's versions in Redis: each run's key prefix, the live pointer readers follow, the
set of versions written and the retired ones with the time their grace ends; retiring a
version (its keys given at most `grace` to live) and removing one (UNLINK)."""

from __future__ import annotations

from accelsync.runs import safe_run_id


def live_key(sync_name: str) -> str:
    return f"accelsync:live:{sync_name}"


def versions_key(sync_name: str) -> str:
    """A set of every version prefix written and not yet removed."""
    return f"accelsync:versions:{sync_name}"


def retired_key(sync_name: str) -> str:
    """A hash of superseded version prefixes to the time (epoch seconds) their grace ends."""
    return f"accelsync:retired:{sync_name}"


def version_prefix(sync_name: str, run_id: str) -> str:
    return f"{sync_name}:{safe_run_id(run_id)}:"


def expire_prefix(client, prefix: str, milliseconds: int) -> int:
    """Give every key under a version prefix at most `milliseconds` to live (a key whose own TTL
    is shorter keeps it: PEXPIRE ... LT, Redis 7; older servers get a plain PEXPIRE)."""
    count = 0
    batch: list[bytes] = []

    def send() -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.execute_command("PEXPIRE", key, milliseconds, *(("LT",) if lt else ()))
        pipe.execute()
        batch.clear()

    lt = int(str(client.info("server").get("redis_version", "0")).split(".")[0]) >= 7
    for key in client.scan_iter(match=_match(prefix), count=10_000):
        batch.append(key)
        count += 1
        if len(batch) == 10_000:
            send()
    if batch:
        send()
    return count


def _match(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[") + "*"


def unlink_prefix(client, prefix: str) -> int:
    """Delete every key under a version prefix, in batches (UNLINK frees memory in background)."""
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=_match(prefix), count=10_000):
        batch.append(key)
        if len(batch) == 10_000:
            removed += client.unlink(*batch)
            batch.clear()
    if batch:
        removed += client.unlink(*batch)
    return removed
