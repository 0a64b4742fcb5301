"""The report pages' pure parts: Data Docs paths stay inside the site, the plot has one dot per run."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from accelsync.report.pages import docs_file, docs_link, sync_page, throughput_svg


def test_docs_files_are_served_only_from_the_data_docs_site(tmp_path, monkeypatch):
    site = tmp_path / "gx"
    (site / "uncommitted" / "data_docs").mkdir(parents=True)
    page = site / "uncommitted" / "data_docs" / "index.html"
    page.write_text("<html>docs</html>")
    (tmp_path / "secret.txt").write_text("no")
    monkeypatch.setenv("ACCELSYNC_DATA_DOCS", str(site))
    assert docs_file("uncommitted/data_docs/index.html") == page.resolve()
    for path in ("../secret.txt", "uncommitted/../../secret.txt", "uncommitted", "missing.html"):
        with pytest.raises(HTTPException):
            docs_file(path)
    assert docs_link(str(page), "../") == "../docs/uncommitted/data_docs/index.html"
    assert docs_link(str(tmp_path / "secret.txt"), "../") is None


def test_sync_page_escapes_text_and_plots_every_run():
    runs = [{"name": "s", "run_id": f"r{i}", "ended": f"2026-01-0{i}", "status": "failed" if i == 2 else "published",
             "source": "mysql", "target": "redis", "read": 10 * i, "written": 10 * i, "rows_per_second": 100.0 * i,
             "dirty": 0, "gate_passed": i != 2, "checks": [{"name": "readback", "passed": i != 2}], "seconds": 2.0,
             "data_docs": None, "airflow_run_id": None, "reason": "<script>x</script>" if i == 2 else None}
            for i in (3, 2, 1)]
    page = sync_page("s", runs)
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "FAILED: readback" in page and page.count("<tr class=run") == 3
    assert throughput_svg(runs).count("<circle") == 3
