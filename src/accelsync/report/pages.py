"""The sync report pages of the Airflow UI (served by the plugin in `plugins/accelsync_plugin.py`).

    /accelsync/                 every sync with its latest run
    /accelsync/syncs/<name>     a sync's recent runs (rows, rows/s, dirty, gate, duration), a
                                throughput plot over time, links to each run's Data Docs and
                                Airflow run
    /accelsync/docs/<path>      the Great Expectations Data Docs site (ACCELSYNC_DATA_DOCS)

Plain server-side HTML with an inline SVG plot: no JavaScript, nothing fetched from elsewhere.
Links are relative, so the pages work behind a proxy that serves Airflow under a path.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from accelsync.report import history
from accelsync.runs import data_docs_root

RECENT_RUNS = 50
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24}
table{border-collapse:collapse;font-size:.9rem}th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}
th{background:#f6f8fa}td.text,th.text{text-align:left}.failed{color:#b42318;font-weight:600}.published{color:#067647}
svg{background:#fafbfc;border:1px solid #d0d7de;margin:.5rem 0 1rem}
"""


def create_app() -> FastAPI:
    """The FastAPI app the plugin mounts at /accelsync."""
    app = FastAPI(title="accelsync sync reports", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return index_page(history.recent(limit=1000))

    @app.get("/syncs/{name}", response_class=HTMLResponse)
    def sync(name: str) -> str:
        return sync_page(name, history.recent(name, limit=RECENT_RUNS))

    @app.get("/docs/{path:path}")
    def docs(path: str) -> FileResponse:
        return FileResponse(docs_file(path))

    return app


def docs_file(path: str) -> Path:
    """A file of the Data Docs site; never anything outside it."""
    root = data_docs_root().resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        raise HTTPException(status_code=404, detail="no such Data Docs page")
    return target


def docs_link(page: str | None, prefix: str) -> str | None:
    """A run's Data Docs page as a link under this app (`prefix` leads back to its root)."""
    if not page:
        return None
    try:
        relative = Path(page).resolve().relative_to(data_docs_root().resolve())
    except ValueError:
        return None
    return f"{prefix}docs/{quote(relative.as_posix())}"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def index_page(runs: list[dict[str, Any]]) -> str:
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        latest.setdefault(run["name"], run)
    rows = "".join(
        f"<tr><td class=text><a href='syncs/{quote(name)}'>{html.escape(name)}</a></td>"
        f"<td class=text>{html.escape(str(run['source']))} &rarr; {html.escape(str(run['target']))}</td>"
        f"<td class=text>{html.escape(str(run['ended'] or ''))}</td>"
        f"<td class='text {run['status']}'>{html.escape(run['status'])}</td>"
        f"<td>{run['read'] or 0:,}</td><td>{run['rows_per_second'] or 0:,.0f}</td></tr>"
        for name, run in sorted(latest.items()))
    body = ("<h1>accelsync syncs</h1>"
            + ("<table id=syncs><tr><th class=text>sync</th><th class=text>from &rarr; to</th>"
               "<th class=text>last run ended</th><th class=text>status</th><th>rows read</th><th>rows/s</th></tr>"
               f"{rows}</table>" if latest else "<p>No runs recorded yet.</p>"))
    return _page("accelsync syncs", body)


def sync_page(name: str, runs: list[dict[str, Any]]) -> str:
    """A sync's recent runs, newest first, with the throughput plot above them."""
    title = f"accelsync: {name}"
    if not runs:
        return _page(title, f"<h1>{html.escape(name)}</h1><p>No runs recorded yet.</p>"
                            "<p><a href='../'>all syncs</a></p>")
    rows = "".join(_run_row(name, run) for run in runs)
    body = (f"<h1>{html.escape(name)}</h1>"
            f"<p>{html.escape(str(runs[0]['source']))} &rarr; {html.escape(str(runs[0]['target']))}; "
            f"last {len(runs)} runs. <a href='../'>all syncs</a> &middot; "
            f"<a href='../../dags/{quote(name)}'>DAG in Airflow</a></p>"
            "<h2>Throughput</h2>" + throughput_svg(runs) +
            "<h2>Runs</h2><table id=runs><tr><th class=text>run</th><th class=text>ended</th>"
            "<th class=text>status</th><th>rows read</th><th>written</th><th>rows/s (sync)</th>"
            "<th>rows/s (end to end)</th><th>dirty</th>"
            "<th class=text>gate</th><th>duration</th><th class=text>Data Docs</th>"
            "<th class=text>reason</th></tr>" + rows + "</table>")
    return _page(title, body)


def _run_row(name: str, run: dict[str, Any]) -> str:
    checks = run.get("checks") or []
    if run["gate_passed"]:
        gate = f"passed ({len(checks)}/{len(checks)})"
    elif checks:
        failed = [c["name"] for c in checks if not c["passed"]]
        gate = f"FAILED: {', '.join(failed)}"
    else:
        gate = "not run"
    run_cell = html.escape(run["run_id"])
    if run.get("airflow_run_id"):
        run_cell = (f"<a class=airflow-run href='../../dags/{quote(name)}/runs/"
                    f"{quote(run['airflow_run_id'], safe='')}'>{run_cell}</a>")
    docs = docs_link(run.get("data_docs"), "../")
    docs_cell = f"<a class=data-docs href='{html.escape(docs)}'>report</a>" if docs else "-"
    return (f"<tr class=run data-run-id='{html.escape(run['run_id'])}'>"
            f"<td class=text>{run_cell}</td><td class=text>{html.escape(str(run['ended'] or ''))}</td>"
            f"<td class='text status {run['status']}'>{html.escape(run['status'])}</td>"
            f"<td class=read>{run['read'] or 0:,}</td><td class=written>{run['written'] or 0:,}</td>"
            f"<td class=rps>{run['rows_per_second'] or 0:,.0f}</td>"
            f"<td class=rps-end-to-end title='{_why_slower(run)}'>{run.get('end_to_end_rows_per_second') or 0:,.0f}</td>"
            f"<td class=dirty>{run['dirty'] or 0:,}</td>"
            f"<td class='text gate'>{html.escape(gate)}</td><td class=duration>{run['seconds'] or 0:.1f}s</td>"
            f"<td class=text>{docs_cell}</td><td class='text reason'>{html.escape(run.get('reason') or '')}</td></tr>")


def _why_slower(run: dict[str, Any]) -> str:
    """The tooltip of the end-to-end rate: the fixed time that dominates a small run."""
    total, sync = run.get("seconds") or 0, run.get("sync_seconds") or 0
    return html.escape(f"{sync:.1f}s copying of {total:.1f}s in all (start-up, gate and publish are the rest)",
                       quote=True)


def throughput_svg(runs: list[dict[str, Any]], width: int = 640, height: int = 180) -> str:
    """Rows/s of each run, oldest to newest, as an inline SVG line with one dot per run."""
    points = [(run["ended"] or "", float(run["rows_per_second"] or 0)) for run in reversed(runs)]
    top = max(value for _, value in points) or 1.0
    left, right, upper, lower = 56, 12, 12, 28
    step = (width - left - right) / max(1, len(points) - 1)
    xy = [(left + i * step if len(points) > 1 else (width + left - right) / 2,
           upper + (height - upper - lower) * (1 - value / top)) for i, (_, value) in enumerate(points)]
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#1f6feb'><title>{html.escape(ended)}: "
                   f"{value:,.0f} rows/s</title></circle>" for (x, y), (ended, value) in zip(xy, points))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return (f"<svg id=throughput width='{width}' height='{height}' role=img "
            f"aria-label='rows per second of the last {len(points)} runs'>"
            f"<line x1='{left}' y1='{height - lower}' x2='{width - right}' y2='{height - lower}' stroke='#8c959f'/>"
            f"<line x1='{left}' y1='{upper}' x2='{left}' y2='{height - lower}' stroke='#8c959f'/>"
            f"<text x='{left - 6}' y='{upper + 4}' text-anchor=end font-size=11>{top:,.0f}</text>"
            f"<text x='{left - 6}' y='{height - lower}' text-anchor=end font-size=11>0</text>"
            f"<text x='{left}' y='{height - 8}' font-size=11>{html.escape(points[0][0])}</text>"
            f"<text x='{width - right}' y='{height - 8}' text-anchor=end font-size=11>"
            f"{html.escape(points[-1][0])}</text>"
            f"<text x='12' y='{height / 2:.0f}' font-size=11 transform='rotate(-90 12 {height / 2:.0f})' "
            f"text-anchor=middle>rows/s</text>"
            f"<polyline points='{line}' fill=none stroke='#1f6feb' stroke-width=2/>{dots}</svg>")
