"""One-shot: move dlrun's flat modules into folders that follow the data flow, and fix every import.

    spec → data → protocol → engines → evaluation → execution → runs → store → report → cli

Run it once from the repository root, when nobody else edits the tree:

    python scripts/relayout.py            # dry run: prints every move and how many imports change
    python scripts/relayout.py --apply    # git mv + rewrite imports in dlrun/, tests/, benchmarks/, scripts/, README.md
    ruff check --fix --select I dlrun tests benchmarks scripts && ruff format dlrun tests benchmarks scripts
    mypy dlrun && pytest -q -n 2 --dist loadgroup

Then delete this script. What it does not do (by hand afterwards, if wanted): split runner.py
(preparation → protocol/jobs.py, train → runs/train.py, cv → runs/cv.py, summary building →
evaluation/summary.py) and progress.py (the Reporter protocol for runs/, the console reporters for cli/).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# old module (dotted, under dlrun) -> new module. Order matters only for report: report.py
# becomes store/io.py before the report/ package is made.
MOVES: dict[str, str] = {
    # spec
    "spec": "spec.schema",
    "_keras_names": "spec.keras_names",
    "search_space": "spec.search_space",
    "dotted": "spec.dotted",
    "shapes": "spec.shapes",
    # data
    "datasets": "data.sources",
    "preprocessing": "data.preprocessing",
    # protocol
    "splits": "protocol.splits",
    # engines (engines/base, sequential, stacked, keras_compat stay)
    "models": "engines.keras_build",
    "runtime": "engines.runtime",
    # evaluation
    "scoring": "evaluation.scoring",
    "stats": "evaluation.stats",
    "summary": "evaluation.summary",
    # the package attribute `dlrun.compare` is the API function; the module moves out of its way
    "compare": "evaluation.compare",
    # execution
    "executors": "execution.executors",
    # runs
    "runner": "runs.runner",
    "sweep": "runs.sweep",
    "batch": "runs.batch",
    "multirun": "runs.multirun",
    "search": "runs.search",
    "lifecycle": "runs.lifecycle",
    "locking": "runs.locking",
    "predict": "runs.predict",
    # store
    "layout": "store.layout",
    "report": "store.io",
    "checkpoint": "store.checkpoint",
    "index": "store.index",
    # report
    "plots": "report.plots",
    "html_report": "report.html",
    # cli (the entry point becomes dlrun.cli.app:main)
    "cli": "cli.app",
    "progress": "cli.progress",
    "render": "cli.render",
}

PACKAGES = {
    "spec": "The spec: its schema, overrides and validation, Keras name tables, search spaces.",
    "data": "Data: sources (named sets, CSV, scikit-learn, generators) and preprocessing.",
    "protocol": "The evaluation protocol: folds and the jobs made from them.",
    "evaluation": "Scores, statistics, summaries and comparisons.",
    "execution": "Executors: where jobs run (this process, Ray).",
    "runs": "One run's life, and the commands made of runs: train, cv, sweep, batch, search.",
    "store": "Run folders: file names, atomic sealed writes, checkpoints, the index of runs.",
    "report": "Figures and the HTML report.",
    "cli": "The command line: the only code that prints or exits.",
}

TEXT_GLOBS = ["dlrun/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "scripts/**/*.py", "README.md", "pyproject.toml"]


def _path(module: str) -> Path:
    return Path("dlrun", *module.split(".")).with_suffix(".py")


def rewrite(text: str) -> tuple[str, int]:
    """Every import and dotted mention of a moved module, rewritten in one pass; returns (text, count)."""
    names = "|".join(re.escape(m) for m in sorted(MOVES, key=len, reverse=True))
    count = 0

    def dotted(m: re.Match[str]) -> str:
        rest = m.string[m.end() : m.end() + 8]
        before = m.string[max(0, m.start() - 7) : m.start()]
        module_use = rest[:1] in (".", '"', "'") or rest.startswith(" import") or before == "import "
        if m.group(2) == "compare" and not module_use:
            return m.group(0)  # `dlrun.compare` itself is the API function, which keeps its name
        return f"{m.group(1)}{MOVES[m.group(2)]}"

    # dlrun.old (imports, importlib strings, docs) and dlrun/old.py (paths in docs and comments)
    text, n = re.subn(rf"(\bdlrun\.)({names})\b(?!\.py)", dotted, text)
    count += n

    def path(m: re.Match[str]) -> str:
        return f"dlrun/{MOVES[m.group(1)].replace('.', '/')}.py"

    text, n = re.subn(rf"\bdlrun/({names})\.py\b", path, text)
    count += n

    # from dlrun import a [as x], b, ...: one statement per name, each from its new package
    def from_import(m: re.Match[str]) -> str:
        indent, lines, comment = m.group(1), [], m.group(3) or ""
        for item in (x.strip() for x in m.group(2).split(",")):
            base, _, alias = item.partition(" as ")
            if base in MOVES:
                head, _, leaf = MOVES[base].rpartition(".")
                alias = alias or (base if leaf != base else "")
                lines.append(f"{indent}from dlrun.{head} import {leaf}" + (f" as {alias}" if alias else "") + comment)
            else:
                lines.append(f"{indent}from dlrun import {item}{comment}")
        return "\n".join(lines)

    text, n = re.subn(r"^([ \t]*)from dlrun import ([\w ,]+?)([ \t]*#.*)?$", from_import, text, flags=re.M)
    count += n  # (statements that name no moved module are counted too: a dry-run figure only)
    return text, count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apply", action="store_true")
    args = ap.parse_args()
    missing = [m for m in MOVES if not (ROOT / _path(m)).exists()]
    if missing:
        sys.exit(f"not found (already moved?): {', '.join(missing)}")
    for old, new in MOVES.items():
        print(f"git mv {_path(old)} {_path(new)}")
    if (ROOT / "dlrun/templates").is_dir():
        print("git mv dlrun/templates dlrun/report/templates")
    changed = {}
    for pattern in TEXT_GLOBS:
        for f in ROOT.glob(pattern):
            if f.resolve() == Path(__file__).resolve():
                continue
            text = f.read_text()
            new_text, n = rewrite(text)
            if n:
                changed[f] = (new_text, n)
    print(f"{sum(n for _, n in changed.values())} references in {len(changed)} files")
    if not args.apply:
        return
    for pkg, doc in PACKAGES.items():
        init = ROOT / "dlrun" / pkg / "__init__.py"
        init.parent.mkdir(exist_ok=True)
        if not init.exists():
            init.write_text(f'"""{doc}"""\n')
    for old, new in MOVES.items():
        subprocess.run(["git", "mv", str(_path(old)), str(_path(new))], cwd=ROOT, check=True)
    if (ROOT / "dlrun/templates").is_dir():
        subprocess.run(["git", "mv", "dlrun/templates", "dlrun/report/templates"], cwd=ROOT, check=True)
    for f, (_, _) in changed.items():
        moved = f
        rel = f.relative_to(ROOT).as_posix()
        for old, new in MOVES.items():
            if rel == _path(old).as_posix():
                moved = ROOT / _path(new)
        moved.write_text(rewrite(moved.read_text())[0])
    # the things a regex cannot know
    # `dlrun.compare` no longer shares its name with a module: a plain lazy function replaces the bridge
    init = ROOT / "dlrun/__init__.py"
    text = init.read_text()
    start, end = text.find("class _Compare:"), text.find("compare = _Compare()")
    if start != -1 and end != -1:
        end = end + len("compare = _Compare()")
        start = text.rfind("\n\n", 0, start)
        text = text.replace(
            text[start:end],
            "\n\n\ndef compare(*run_dirs: Any, **options: Any) -> Any:\n"
            '    """Compare finished runs: :func:`dlrun.api.compare`."""\n'
            '    return importlib.import_module("dlrun.api").compare(*run_dirs, **options)',
        )
        init.write_text(text)
    pyproject = ROOT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dlrun = "dlrun.cli:main"', 'dlrun = "dlrun.cli.app:main"'))
    main_py = ROOT / "dlrun/__main__.py"
    main_py.write_text(main_py.read_text().replace("from dlrun.cli import main", "from dlrun.cli.app import main"))
    html = ROOT / "dlrun/report/html.py"
    html.write_text(
        html.read_text().replace('PackageLoader("dlrun", "templates")', 'PackageLoader("dlrun.report", "templates")')
    )
    data = ('dlrun = ["templates/*.j2"]', '"dlrun.report" = ["templates/*.j2"]')
    pyproject.write_text(pyproject.read_text().replace(*data))
    print("done: now ruff --fix imports, ruff format, mypy, pytest")


if __name__ == "__main__":
    main()
