"""The HTML report: one self-contained page per run, sweep and comparison, checked in a real browser.

Two tiny runs (a 3-fold cv and a single split) are trained once for the module through the
command line, which must leave a ``report.html`` in each run folder; ``dlrun compare`` and
``dlrun report`` are run on them. The browser test opens the pages in headless Chromium
(Debian's ``chromium``), reads every image's natural width through the browser and takes a
screenshot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec, write_spec
from typer.testing import CliRunner

from dlrun.cli.app import app
from dlrun.report import html as html_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no headless Chromium found (install Debian's `chromium` package; .ci/run does so when it is missing)",
)
# flags for a root user on a machine without network or D-Bus (see the machine notes)
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _invoke(args: list[Any]) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"dlrun {' '.join(map(str, args))} failed:\n{result.output}\n{result.exception!r}"
    return result.output


def _shifted_copy(src: Path, dst: Path, name: str, shifts: list[float]) -> None:
    """A second cv run on the same folds whose main metric is lower by ``shifts`` (one per fold)."""
    import pandas as pd

    shutil.copytree(src, dst)
    summary = json.loads((src / "summary.json").read_text())
    metric = summary["main_metric"]
    scores = pd.read_csv(src / "scores.csv")
    scores[metric] = scores[metric] - shifts
    scores.to_csv(dst / "scores.csv", index=False)
    delta = sum(shifts) / len(shifts)
    for block in summary["metrics"][metric].values():
        if isinstance(block, dict):
            for key in ("mean", "ci_low", "ci_high"):
                if block.get(key) is not None:
                    block[key] -= delta
    summary["name"] = name
    summary.pop("headline", None)
    (dst / "summary.json").write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-fold cv run, a copy of it with lower scores on the same folds, and one single-split run."""
    root = tmp_path_factory.mktemp("reports")
    cv = tiny_spec("binary", mode="kfold", epochs=3, evaluation={"folds": 3})
    cv["name"] = "tiny_cv"
    split = tiny_spec("multiclass", mode="split", epochs=3)
    out = {"cv_a": root / "cv_a", "cv_b": root / "cv_b", "split": root / "split"}
    _invoke(["cv", write_spec(root / "a.yaml", cv), "--out", out["cv_a"]])
    _invoke(["train", write_spec(root / "s.yaml", split), "--out", out["split"]])
    _shifted_copy(out["cv_a"], out["cv_b"], "tiny_cv_worse", [0.05, 0.02, 0.08])
    (out["cv_b"] / html_report.REPORT_HTML).unlink()
    return out


def _srcs(html: str) -> list[str]:
    return re.findall(r'<img[^>]*\bsrc="([^"]*)"', html)


@pytest.mark.parametrize("which", ["cv_a", "split"])
def test_runs_write_a_self_contained_report(runs: dict[str, Path], which: str) -> None:
    page = runs[which] / html_report.REPORT_HTML
    assert page.is_file(), "train and cv write report.html into the run folder"
    html = page.read_text(encoding="utf-8")
    srcs = _srcs(html)
    plots = sorted((runs[which] / "plots").glob("*.png"))
    assert len(srcs) == len(plots) >= 2, "every plot is on the page"
    assert all(s.startswith("data:image/png;base64,") for s in srcs), "images are embedded, not linked"
    assert not re.search(r"""(src|href)=["']https?://""", html), "nothing is fetched from the network"
    assert "<script src" not in html
    assert "confusion_matrix" in html, "classification runs get a confusion matrix, cv included"
    summary = json.loads((runs[which] / "summary.json").read_text())
    assert summary["headline"]["text"] in html.replace("&#39;", "'").replace("&amp;", "&")
    assert "Resolved config" in html and "Environment" in html


def test_markup_from_a_run_folder_is_escaped(runs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(runs["cv_a"], copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["name"] = "<b>bold</b>"
    summary["headline"]["text"] = "</script><script>alert(1)</script>"
    (copy / "summary.json").write_text(json.dumps(summary))
    html = html_report.write_report([copy]).read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "<script>alert" not in html, "neither the page nor its embedded JSON can be broken out of"
    block = re.search(r'<script type="application/json" id="dlrun-data">(.*?)</script>', html, re.S)
    assert block is not None
    assert json.loads(block.group(1))["headline"]["text"] == summary["headline"]["text"]


def test_run_warnings_are_on_the_page(runs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(runs["cv_a"], copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["warnings"] = []
    (copy / "summary.json").write_text(json.dumps(summary))
    page = html_report.write_report([copy]).read_text(encoding="utf-8")
    assert 'class="warning"' not in page
    summary["warnings"] = ["3 of 3 models did not learn (repeat 0 fold 1, ...)"]
    (copy / "summary.json").write_text(json.dumps(summary))
    page = html_report.write_report([copy]).read_text(encoding="utf-8")
    assert '<p class="warning">warning: 3 of 3 models did not learn (repeat 0 fold 1, ...)</p>' in page


def test_compare_writes_a_report_with_verdicts(runs: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "cmp.html"
    output = _invoke(["compare", runs["cv_a"], runs["cv_b"], "--report", page])
    assert f"report: {page}" in output
    html = page.read_text(encoding="utf-8")
    assert "Verdicts" in html
    assert len(_srcs(html)) == 2, "each run's estimate, and the forest plot of the paired difference"
    assert "tiny_cv_worse" in html


def test_compare_default_report_path(runs: dict[str, Path]) -> None:
    path = html_report.default_compare_path([runs["cv_a"], runs["cv_b"]])
    assert path.parent == runs["cv_a"].resolve().parent
    assert path.name.startswith("compare_") and path.name.endswith("_vs_tiny_cv_worse.html")


def test_report_command_for_one_run_and_for_a_comparison(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    _invoke(["report", runs["split"], "--out", out])
    assert out.is_file() and len(_srcs(out.read_text(encoding="utf-8"))) >= 2
    both = tmp_path / "both.html"
    _invoke(["report", runs["cv_a"], runs["cv_b"], "--out", both])
    assert "Verdicts" in both.read_text(encoding="utf-8")


def test_report_of_a_folder_without_runs_is_an_input_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code != 0


def _sweep_folder(root: Path, runs: dict[str, Path]) -> Path:
    """A sweep folder made of the two cv runs, as ``dlrun sweep`` lays it out."""
    import pandas as pd

    from dlrun.runs import sweep as sw

    folder = root / "sweep"
    points = []
    rows = []
    for units, src in ((8, runs["cv_a"]), (12, runs["cv_b"])):
        name = f"units={units}"
        shutil.copytree(src, folder / name)
        points.append({"folder": name, "overrides": {"model.layers[0].Dense.units": units}})
        rows.append({"model.layers[0].Dense.units": units, "folder": name, **sw._row_from_dir(folder / name)})
    (folder / "sweep.json").write_text(json.dumps({"name": "tiny_sweep", "points": points, "status": "finished"}))
    (folder / "sweep.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    return folder


def test_sweep_report(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = _sweep_folder(tmp_path, runs)
    page = html_report.write_report([folder])
    assert page == folder / html_report.REPORT_HTML
    html = page.read_text(encoding="utf-8")
    assert "tiny_sweep: best of 2 finished point(s)" in html
    assert 'href="units=8/report.html"' in html


def _browser(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) { return [i.alt, i.naturalWidth]; });
  var h = document.getElementById('headline');
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({images: imgs, headline: h ? h.textContent : null});
  document.body.appendChild(pre);
});
</script>"""


@needs_browser
@pytest.mark.parametrize("which", ["cv_a", "compare"])
def test_report_renders_in_headless_chromium(runs: dict[str, Path], tmp_path: Path, which: str) -> None:
    if which == "compare":
        page = html_report.write_report([runs["cv_a"], runs["cv_b"]], tmp_path / "compare.html")
    else:
        page = runs[which] / html_report.REPORT_HTML
    html = page.read_text(encoding="utf-8")
    # the page itself has no script to run; a copy gets a probe that reports what the browser decoded
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    done = _browser(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, f"the browser did not run the page: rc {done.returncode}\n{done.stderr[-2000:]}"
    seen = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert len(seen["images"]) == len(_srcs(html)) >= 2
    assert all(width > 0 for _, width in seen["images"]), f"images the browser could not decode: {seen['images']}"
    headline = html_report.build_context([runs["cv_a"], runs["cv_b"]] if which == "compare" else [page.parent])
    assert seen["headline"] == headline["headline"]
    shot = tmp_path / "shot.png"
    _browser(["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert shot.is_file(), "chromium took no screenshot"
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (1600, 1200)
    assert float(pixels[..., :3].std()) > 0.05, "the screenshot is blank"
