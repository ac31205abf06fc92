"""The page for many runs (``dlrun runs DIR --report index.html``), checked as text and in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec, write_spec
from typer.testing import CliRunner

from dlrun.cli.app import app
from dlrun.report.batch_page import write_index
from dlrun.store.layout import REPORT_HTML, STATE

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.xdist_group("batch_page")  # one worker makes the module's runs once

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _invoke(args: list[Any]) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code in (0, 1), f"dlrun {args} failed:\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch of a cv run, a train run and a failing config, and a sweep of two points beside them."""
    root = tmp_path_factory.mktemp("batch_page")
    cv = tiny_spec("binary", mode="kfold", epochs=2, evaluation={"folds": 2})
    cv["name"] = "tiny_cv"
    train = tiny_spec("multiclass", mode="split", epochs=2)
    bad = tiny_spec("binary", mode="split", epochs=2)
    bad["name"] = "tiny_bad"
    bad["model"]["layers"][-1] = {"Dense": {"units": 3, "activation": "softmax"}}  # wrong output width: fails
    configs = [write_spec(root / f"{n}.yaml", s) for n, s in (("a", cv), ("b", train), ("c", bad))]
    out = root / "batch"
    _invoke(["batch", *configs, "--out", out])
    _invoke(["sweep", configs[1], "--grid", "training.batch_size=8,16", "--out", out / "sweep"])
    return out


def test_page_lists_every_run_and_links_its_report(batch_dir: Path) -> None:
    out = _invoke(["runs", batch_dir, "--report", batch_dir / "index.html"])
    assert "report:" in out
    page = batch_dir / "index.html"
    html = page.read_text(encoding="utf-8")
    states = [p.parent for p in batch_dir.rglob(STATE)]
    assert len(states) >= 4
    assert f"{len(states)} run(s) under" in html
    links = re.findall(r'href="([^"]+)"', html)
    assert links and all(not link.startswith(("http:", "https:", "/")) for link in links)
    for link in links:
        assert (page.parent / unescape(link)).is_file(), link
    runs_with_reports = [p for p in states if (p / REPORT_HTML).is_file()]
    assert len([ln for ln in links if ln.endswith(REPORT_HTML)]) >= len(runs_with_reports)
    assert "Sweeps and searches" in html and "sweep" in html
    assert "<script" in html and "src=" not in html  # sorting inline, nothing fetched


def test_failed_run_is_shown_with_its_error(batch_dir: Path, tmp_path: Path) -> None:
    page = write_index(batch_dir, tmp_path / "elsewhere" / "index.html")
    html = page.read_text(encoding="utf-8")
    failed = [json.loads((p.parent / STATE).read_text()) for p in batch_dir.rglob(STATE)]
    errors = [s for s in failed if s.get("status") == "failed"]
    assert errors, "the fixture's bad config failed"
    assert "Did not finish" in html
    assert unescape(errors[0]["error"])[:40] in unescape(html)
    for link in re.findall(r'href="([^"]+)"', html):  # links relative to the page's own folder
        assert (page.parent / unescape(link)).resolve().is_file(), link


def test_interval_and_baseline_columns(batch_dir: Path, tmp_path: Path) -> None:
    html = write_index(batch_dir, tmp_path / "index.html").read_text(encoding="utf-8")
    assert re.search(r"\[0\.\d{4}, [01]\.\d{4}\]", html), "an interval"
    assert "<th>baseline</th>" in html


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium found (Debian's `chromium` package)")
def test_page_loads_and_sorts_in_headless_chromium(batch_dir: Path, tmp_path: Path) -> None:
    page = write_index(batch_dir, batch_dir / "index.html")
    probe = tmp_path / "probe.html"
    # a copy beside the page (same relative links) that sorts by estimate and reports what it sees
    probe = batch_dir / "probe.html"
    script = """<script>window.addEventListener('load', function () {
      var th = document.querySelectorAll('#runs th')[6]; th.click(); th.click();
      var links = Array.prototype.map.call(document.querySelectorAll('a'), function (a) { return a.href; });
      var pre = document.createElement('pre'); pre.id = 'probe';
      pre.textContent = JSON.stringify({links: links, rows: document.querySelectorAll('#runs tbody tr').length,
        sort: th.getAttribute('aria-sort')});
      document.body.appendChild(pre); });</script>"""
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, f"the browser did not run the page: rc {done.returncode}\n{done.stderr[-2000:]}"
    seen = json.loads(unescape(found.group(1)))
    assert seen["rows"] == len(list(batch_dir.rglob(STATE)))
    assert seen["sort"] == "descending"
    assert seen["links"]
    for href in seen["links"]:
        assert href.startswith("file://") and Path(href[len("file://") :]).is_file(), href
