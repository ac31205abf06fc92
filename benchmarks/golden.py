"""Golden comparison: run every command on tiny configs and compare the files two checkouts write.

    # 1. the reference, from another checkout (e.g. main), into REF
    PYTHONPATH=/work/main python benchmarks/golden.py run REF
    # 2. this checkout, into NEW, then compare
    PYTHONPATH=$PWD python benchmarks/golden.py run NEW
    python benchmarks/golden.py diff REF NEW

``run`` calls ``python -m dlrun`` (whatever ``PYTHONPATH`` points at) for ``train``, ``cv`` (stacked and
sequential), ``sweep``, ``batch``, ``search`` and ``compare``, each into its own folder under the root.
``diff`` compares every file both roots hold: JSON and YAML by value, CSV cell by cell, other text
line by line, ``.npz`` arrays by value; timing fields (times, durations, timestamps, hostnames, versions,
command lines) are left out, and the roots' own paths are replaced by ``<root>``. Binary images and
Keras model files are compared by presence only (their bytes hold timestamps). It prints one line per
difference and exits 1 when there is any.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

TINY = ["--set", "training.epochs=2", "--set", "evaluation.folds=3"]
COMMANDS: dict[str, list[str]] = {
    "train": ["train", "configs/pima_split.yaml", "--set", "training.epochs=3"],
    "cv_stacked": ["cv", "configs/sonar_baseline.yaml", *TINY, "--set", "runtime.engine=stacked"],
    "cv_sequential": ["cv", "configs/sonar_baseline.yaml", *TINY, "--set", "runtime.engine=sequential"],
    "sweep": [
        "sweep",
        "configs/sonar_baseline.yaml",
        *TINY,
        "--grid",
        "compile.optimizer.SGD.learning_rate=0.01,0.1",
    ],
    "batch": ["batch", "configs/pima_split.yaml", "configs/sonar_baseline.yaml", *TINY],
    "search": ["search", "configs/sonar_search.yaml", *TINY, "--trials", "4", "--batch", "2"],
}

# keys whose values are times, places or versions: they differ between any two runs
SKIP_KEY = re.compile(
    r"(^|_)(s|seconds|time|times|duration|durations|started|finished|updated|created|host|hostname|pid|"
    r"argv|command_line|version|versions|python|platform|at|when|date|elapsed|wall|user|heartbeat)($|_)"
    r"|_s$|^t_|seconds|duration|timestamp|hostname|elapsed|throughput|per_s|rate_s|versions?$"
    # bytes of files that hold their own timestamps (model.keras, the skops zip)
    r"|^model_sha256$|^estimators_skops$",
    re.IGNORECASE,
)
TEXT = {".md", ".txt", ".html", ".log", ".yaml", ".yml", ".jsonl"}
PRESENCE_ONLY = {".png", ".svg", ".keras", ".h5", ".weights.h5", ".lock", ".pdf", ".journal"}
NUMBER = re.compile(r"-?\d+\.\d+(e-?\d+)?")
TIMEISH = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d)?(\.\d+)?([+-]\d\d:?\d\d|Z)?|\d+(\.\d+)?\s?(s|ms|min|h)\b"
    r"|\d+:\d\d(:\d\d)?|\d{8}-\d{6}(-\d+)?"
)


def run(root: Path) -> None:
    """Run every command into ``root/<name>``, then ``compare`` the two cv runs into ``root/compare``."""
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for name, args in COMMANDS.items():
        cmd = [sys.executable, "-m", "dlrun", *args, "--out", str(root / name)]
        print("$", " ".join(cmd[2:]), flush=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        (root / f"{name}.stdout").write_text(done.stdout + "\n--- stderr\n" + done.stderr)
        if done.returncode != 0:
            print(f"  exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}", flush=True)
    (root / "compare").mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "dlrun",
        "compare",
        str(root / "cv_stacked"),
        str(root / "cv_sequential"),
        "--csv",
        str(root / "compare" / "compare.csv"),
        "--report",
        str(root / "compare" / "compare.html"),
    ]
    print("$", " ".join(cmd[2:]), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (root / "compare.stdout").write_text(done.stdout + "\n--- stderr\n" + done.stderr)


def _norm_text(text: str, root: Path) -> str:
    text = text.replace(str(root.resolve()), "<root>").replace(str(root), "<root>")
    return TIMEISH.sub("<t>", text)


def _json_diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if SKIP_KEY.search(str(k)) or (k == "command" and isinstance(a.get(k), list)):  # argv
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'new' if k in b else 'reference'}")
                continue
            _json_diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _json_diff(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)):
            out.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, str) and isinstance(b, str):
        if a != b and _norm_text(a, Path("/nonexistent")) != _norm_text(b, Path("/nonexistent")):
            out.append(f"{where}: {a[:80]!r} vs {b[:80]!r}")
    elif a != b:
        out.append(f"{where}: {str(a)[:80]!r} vs {str(b)[:80]!r}")


def _strip_roots(value: Any, root: Path) -> Any:
    if isinstance(value, dict):
        return {k: _strip_roots(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_roots(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(str(root.resolve()), "<root>").replace(str(root), "<root>")
    return value


def _csv_rows(path: Path, root: Path) -> list[dict[str, Any]]:
    rows = list(csv.DictReader(io.StringIO(_strip_roots(path.read_text(), root))))
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v) if v not in ("", None) else v
            except (TypeError, ValueError):
                parsed[k] = v
        out.append(parsed)
    return out


def _load_json(path: Path) -> Any:
    text = path.read_text()
    # sealed files (parts, preprocessing) end with a checksum line over bytes that hold timings
    return json.loads(text.split("\n#dlrun-sha256:")[0])


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def diff_file(rel: str, ref: Path, new: Path) -> list[str]:
    a_path, b_path = ref / rel, new / rel
    suffix = "".join(a_path.suffixes[-2:]) if a_path.name.endswith(".weights.h5") else a_path.suffix
    out: list[str] = []
    if suffix in PRESENCE_ONLY or rel.endswith(".stdout") or a_path.name == ".lock":
        return out
    if suffix == ".json":
        _json_diff(_strip_roots(_load_json(a_path), ref), _strip_roots(_load_json(b_path), new), "", out)
    elif suffix in (".yaml", ".yml"):
        _json_diff(_strip_roots(_load_yaml(a_path), ref), _strip_roots(_load_yaml(b_path), new), "", out)
    elif suffix == ".csv":
        _json_diff(_csv_rows(a_path, ref), _csv_rows(b_path, new), "", out)
    elif suffix == ".npz":
        import numpy as np

        with np.load(a_path) as a, np.load(b_path) as b:
            if sorted(a.files) != sorted(b.files):
                out.append(f"arrays {sorted(a.files)} vs {sorted(b.files)}")
            for k in sorted(set(a.files) & set(b.files)):
                x, y = a[k], b[k]
                same = x.shape == y.shape and (
                    np.array_equal(x, y)
                    if x.dtype.kind not in "fc"
                    else np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)
                )
                if not same:
                    out.append(f"array {k} differs")
    elif suffix in TEXT or suffix == "":
        a_lines = _norm_text(a_path.read_text(errors="replace"), ref).splitlines()
        b_lines = _norm_text(b_path.read_text(errors="replace"), new).splitlines()
        if suffix == ".html":  # the page repeats the tables (compared by value above) with their timings
            a_lines = [NUMBER.sub("<n>", x) for x in a_lines if "__main__.py" not in x]
            b_lines = [NUMBER.sub("<n>", x) for x in b_lines if "__main__.py" not in x]
        if suffix == ".jsonl":  # epoch events are throttled by the clock; blocks on threads report in either order
            a_lines = sorted(x for x in a_lines if '"event": "epoch"' not in x)
            b_lines = sorted(x for x in b_lines if '"event": "epoch"' not in x)
        if a_lines != b_lines:
            bad = [i for i, (x, y) in enumerate(zip(a_lines, b_lines, strict=False)) if x != y]
            first = bad[0] if bad else min(len(a_lines), len(b_lines))
            out.append(
                f"line {first + 1}: {a_lines[first][:90] if first < len(a_lines) else '<end>'!r} vs "
                f"{b_lines[first][:90] if first < len(b_lines) else '<end>'!r} ({len(bad)} line(s) differ)"
            )
    elif a_path.read_bytes() != b_path.read_bytes():
        out.append("bytes differ")
    return out


def _rel_files(root: Path) -> set[str]:
    names = set()
    for p in root.rglob("*"):
        if p.is_file():
            rel = str(p.relative_to(root))
            # folders named by a timestamp (new_run_dir) are matched by their place, not their name
            names.add(TIMEISH.sub("<t>", rel))
    return names


def _real(root: Path, rel: str) -> str:
    for p in root.rglob("*"):
        if p.is_file() and TIMEISH.sub("<t>", str(p.relative_to(root))) == rel:
            return str(p.relative_to(root))
    return rel


def diff(ref: Path, new: Path) -> int:
    a, b = _rel_files(ref), _rel_files(new)
    problems = [f"only in reference: {r}" for r in sorted(a - b)] + [f"only in new: {r}" for r in sorted(b - a)]
    for rel in sorted(a & b):
        for line in diff_file(_real(ref, rel), ref, new) if _real(ref, rel) == _real(new, rel) else []:
            problems.append(f"{rel}: {line}")
    for line in problems:
        print(line)
    print(f"{len(a & b)} file(s) compared, {len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "diff":
        sys.exit(diff(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        print(__doc__)
        sys.exit(2)
