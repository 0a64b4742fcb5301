"""DataX `job.setting` (speed, errorLimit) as the spec's `speed` and `error_limit`.

DataX's semantics, from its core (JobContainer.adjustChannelNumber, ErrorRecordChecker):
- `speed.record` and `speed.byte` are limits for the whole job. When one is set, DataX takes the
  channel count from it, dividing by the per-channel limit `core.transport.channel.speed.record`
  (or `.byte`) of the job's `core` section, and ignores `speed.channel`; without that per-channel
  limit DataX refuses the job. accelsync's `records_per_second` is also for the whole sync (split
  across channels), so `speed.record` carries over as it is.
- `errorLimit.record` wins over `errorLimit.percentage`: DataX ignores the percentage when both are
  set. With no errorLimit DataX never fails on dirty records.
"""

from __future__ import annotations

from typing import Any, Optional

from accelsync.datax.conversion import Conversion, problem

MAX_CHANNELS = 1024


def _number(conv: Conversion, value: Any, where: str, kind=int) -> Optional[Any]:
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise problem(conv, where, f"{value!r} is not a number") from None
    return number


def convert(conv: Conversion, setting: Any, core: Any) -> None:
    setting = setting if isinstance(setting, dict) else {}
    _speed(conv, setting.get("speed") or {}, core if isinstance(core, dict) else {})
    _error_limit(conv, setting.get("errorLimit"))
    for key in sorted(set(setting) - {"speed", "errorLimit"}):
        conv.skip(f"job.setting.{key}", "not carried over (accelsync keeps every dirty record in the run folder)")


def _core_channel_speed(core: dict, unit: str) -> Optional[float]:
    value = (((core.get("transport") or {}).get("channel") or {}).get("speed") or {}).get(unit)
    try:
        return float(value) if value is not None and float(value) > 0 else None
    except (TypeError, ValueError):
        return None


def _speed(conv: Conversion, speed: dict, core: dict) -> None:
    at = "job.setting.speed"
    out: dict[str, int] = {}
    channel = _number(conv, speed.get("channel"), f"{at}.channel")
    record = _number(conv, speed.get("record"), f"{at}.record")
    byte = _number(conv, speed.get("byte"), f"{at}.byte")
    derived = []
    if record and record > 0:
        out["records_per_second"] = record
        conv.comment("speed.records_per_second", "speed.record: DataX's limit for the whole job, as here "
                                                 "(split across the channels)")
        per_channel = _core_channel_speed(core, "record")
        if per_channel:
            derived.append(max(1, int(record // per_channel)))
    if byte and byte > 0:
        conv.skip(f"{at}.byte", "accelsync limits records per second, not bytes")
        per_channel = _core_channel_speed(core, "byte")
        if per_channel:
            derived.append(max(1, int(byte // per_channel)))
    if derived:
        out["channels"] = min(min(derived), MAX_CHANNELS)
        conv.comment("speed.channels", "as DataX counts them under a speed limit: the job's limit divided by "
                                       "core.transport.channel.speed (DataX then ignores speed.channel)")
        if channel:
            conv.skip(f"{at}.channel", f"DataX ignores it when speed.record or speed.byte sets the channels "
                                       f"({out['channels']})")
    elif channel and channel > 0:
        out["channels"] = min(channel, MAX_CHANNELS)
        conv.comment("speed.channels", "speed.channel: parallel read/write tasks")
        if (record and record > 0) or (byte and byte > 0):
            conv.comment("speed.channels", "DataX would refuse this job: a speed.record or speed.byte limit needs "
                                           "core.transport.channel.speed; accelsync keeps speed.channel")
    if channel and channel > MAX_CHANNELS:
        conv.comment("speed.channels", f"at most {MAX_CHANNELS} channels")
    if out:
        conv.spec["speed"] = out
    for key in sorted(set(speed) - {"channel", "record", "byte"}):
        conv.skip(f"{at}.{key}", "not a DataX speed setting accelsync knows; not read")
    for key in sorted(set(core) - {"transport"}):
        conv.skip(f"core.{key}", "DataX core setting; not carried over")


def _error_limit(conv: Conversion, limit: Any) -> None:
    at = "job.setting.errorLimit"
    if not isinstance(limit, dict) or (limit.get("record") is None and limit.get("percentage") is None):
        conv.spec["error_limit"] = {"percentage": 1.0}
        conv.comment("error_limit", "the job sets no errorLimit, so DataX never fails on dirty records: kept "
                                    "(percentage: 1.0); remove it to allow none")
        return
    record = _number(conv, limit.get("record"), f"{at}.record")
    percentage = _number(conv, limit.get("percentage"), f"{at}.percentage", float)
    if record is not None:
        if record < 0:
            raise problem(conv, f"{at}.record", "must not be negative")
        conv.spec["error_limit"] = {"records": record}
        conv.comment("error_limit", "errorLimit.record: the run fails above this many dirty records")
        if percentage is not None:
            conv.skip(f"{at}.percentage", "DataX ignores the percentage when record is set (record wins); so does "
                                          "this spec")
        return
    if not 0.0 <= percentage <= 1.0:
        raise problem(conv, f"{at}.percentage", "must be between 0.0 and 1.0")
    conv.spec["error_limit"] = {"percentage": percentage}
    conv.comment("error_limit", "errorLimit.percentage: the run fails when dirty records are more than this share "
                                "of the records read")
