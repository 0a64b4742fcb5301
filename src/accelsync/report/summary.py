"""The DataX-style run summary printed at the end of every run."""

from __future__ import annotations

from typing import Any


def _size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.2f}{unit}"
        value /= 1024
    return f"{value:.2f}TB"


def _stages(summary: dict[str, Any]) -> str:
    stages = summary.get("stage_seconds") or {"sync": summary.get("sync_seconds")}
    shown = [f"{name} {value:.1f}s" for name, value in stages.items() if value is not None]
    engine = f" on the {summary['engine']} engine" if summary.get("engine") else ""
    return ", ".join(shown) + engine if shown else "no stage ran"


def _fixed_cost(summary: dict[str, Any]) -> str:
    """Why a small run's end-to-end rate is low: the time that does not grow with rows."""
    sync = summary.get("sync_seconds") or 0
    other = summary["seconds"] - sync
    if summary["seconds"] > 0 and other > 0.5 * summary["seconds"]:
        steps = ("start-up, gate, publish and Data Docs" if (summary.get("stage_seconds") or {}).get("data docs")
                 else "start-up, gate and publish")
        return f" ({other:.1f}s of {summary['seconds']:.1f}s is {steps}, not copying)"
    return ""


def render(summary: dict[str, Any]) -> str:
    gate = summary.get("gate") or {}
    checks = gate.get("checks") or []
    lines = [
        "",
        f"accelsync job summary: {summary['name']} ({summary['source']} -> {summary['target']})",
        f"  {'Run id':<22}: {summary['run_id']}",
        f"  {'Plan':<22}: {summary.get('plan') or '-'}",
        *([f"  {'Finished publish of':<22}: run {summary['finished_publish_of']} (it was interrupted)"]
          if summary.get("finished_publish_of") else []),
        f"  {'Job start time':<22}: {summary.get('started') or '-'}",
        f"  {'Job end time':<22}: {summary.get('ended') or '-'}",
        f"  {'Total time':<22}: {summary['seconds']:.1f}s ({_stages(summary)})",
        f"  {'Average flow':<22}: {_size(summary.get('bytes_per_second') or 0)}/s",
        f"  {'Record write speed':<22}: {summary['rows_per_second']:,.0f}rec/s in the sync stage"
        + (f" (limit {summary['speed_limit']:,}rec/s)" if summary.get("speed_limit") else ""),
        f"  {'End-to-end speed':<22}: {summary.get('end_to_end_rows_per_second') or 0:,.0f}rec/s over the "
        f"whole run{_fixed_cost(summary)}",
        f"  {'Total read records':<22}: {summary['read']:,}",
        f"  {'Total written records':<22}: {summary['written']:,}",
        f"  {'Dirty records':<22}: {summary['dirty']:,}",
        f"  {'Filtered records':<22}: {summary.get('filtered', 0):,}",
        f"  {'Retried partitions':<22}: {summary.get('retries', 0):,}",
        *([f"  {'Retried tasks':<22}: " + ", ".join(f"{task} (ran {tries} times)" for task, tries
                                                     in summary["retried_tasks"].items())]
          if summary.get("retried_tasks") else []),
    ]
    compression = summary.get("compression")
    if compression:
        before, after = compression["bytes_before"], compression["bytes_after"]
        ratio = f" ({after / before:.1%} of the original)" if before else ""
        lines.append(f"  {'Compression':<22}: {compression['codec']}, values {_size(before)} -> {_size(after)}{ratio}")
    lines.append(f"  {'Gate':<22}: {'passed' if gate.get('passed') else 'FAILED' if checks else 'not run'}"
                 f" ({sum(c['passed'] for c in checks)}/{len(checks)} checks)")
    for item in checks:
        lines.append(f"    [{'ok' if item['passed'] else 'FAIL'}] {item['name']}: {item['detail']}")
    if summary.get("dirty_reasons"):
        for reason, count in summary["dirty_reasons"].items():
            lines.append(f"    dirty: {count:,} x {reason}")
    if summary.get("data_docs"):
        lines.append(f"  {'Data Docs':<22}: {summary['data_docs']}")
    lines.append(f"  {'Status':<22}: {summary['status']}")
    if summary.get("reason"):
        lines.append(f"  {'Reason':<22}: {summary['reason']}")
    if summary.get("note"):
        lines.append(f"  {'Note':<22}: {summary['note']}")
    return "\n".join(lines)
