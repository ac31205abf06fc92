"""One self-contained HTML page for a run, a sweep or a comparison of runs.

The page embeds everything it shows: plots as base64 PNG data URIs, tables as HTML, the
resolved config and the environment as text, and ``summary.json`` as an inert JSON block a
script could read. It needs no network and no JavaScript. The page is rendered from a Jinja2
template (``dlrun/report/templates/report.html.j2``) with autoescaping on, so text from a run folder
can never inject markup.

Reading is pure (:func:`~dlrun.report.context.build_context` returns a dict); :func:`write_report`
writes the file atomically through :mod:`dlrun.store.io`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from dlrun import __version__
from dlrun.evaluation import compare as cmp
from dlrun.report.context import build_context, comparison_figures
from dlrun.report.parts import figure_data_uri, png_data_uri
from dlrun.store import layout
from dlrun.store.io import write_text

#: The page ``train``, ``cv`` and ``sweep`` write into their output folder.
REPORT_HTML: str = layout.REPORT_HTML

__all__ = [
    "REPORT_HTML",
    "build_context",
    "comparison_figures",
    "default_compare_path",
    "figure_data_uri",
    "png_data_uri",
    "render",
    "write_report",
]


def render(context: dict[str, Any]) -> str:
    """The HTML page for a context from :func:`build_context`."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dlrun.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render({"links": [], "verdicts": [], **context, "version": __version__})


def default_compare_path(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> Path:
    """Where a comparison's page goes by default: beside the runs, named after them.

    ``<common parent of the runs>/compare_<first>_vs_<second>[_and_<k>_more].html``, with the
    runs' labels (``dlrun compare --label``, or names made distinct) where given, else their names.
    """
    run_dirs = cmp.expand_run_dirs([str(p) for p in paths])
    names = list(labels[:2]) if labels else [cmp.load_run(p).name for p in run_dirs[:2]]
    stem = "_vs_".join(re.sub(r"[^A-Za-z0-9_.+-]+", "_", n) for n in names) or "runs"
    if len(run_dirs) > 2:
        stem += f"_and_{len(run_dirs) - 2}_more"
    parents = [p.resolve().parent for p in run_dirs]
    common = Path(_common_path(parents))
    return common / f"compare_{stem[:120]}.html"


def _common_path(paths: Sequence[Path]) -> str:
    return os.path.commonpath([str(p) for p in paths])


def write_report(
    paths: Sequence[str | Path], out: Path | None = None, metric: str | None = None, result: Any = None
) -> Path:
    """Render the page for ``paths`` and write it atomically.

    Args:
        paths: As :func:`build_context`.
        out: The HTML file; default ``<folder>/report.html`` for one run or sweep folder and
            :func:`default_compare_path` for a comparison.
        metric: As :func:`build_context`.
        result: As :func:`build_context`.

    Returns:
        The file written.
    """
    context = build_context(paths, metric, result)
    if out is None:
        if context["kind"] == "comparison":
            labels = [row[0] for row in context["summary_rows"]]
            out = default_compare_path(paths, labels)
        else:
            out = Path(context["folder"]) / REPORT_HTML
    write_text(Path(out), render(context))
    return Path(out)
