"""The one module that writes files: run directories, atomically.

Every file is written to a temporary name in the same folder and renamed into
place, so a killed run never leaves a half-written CSV. Only this module chooses
file names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

CONFIG = "config.yaml"
ENV = "env.json"
HISTORY = "history.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PREDICTIONS = "predictions.csv"
SCORES = "scores.csv"
FOLDS = "folds.csv"
STATE = "state.json"
PROGRESS = "progress.jsonl"
MODEL = "model.keras"
PREPROCESSOR = "preprocessor.pkl"
LOCK = ".lock"
PLOTS = "plots"
PARTS = "parts"
CHECKPOINT = "checkpoint"


def now_iso() -> str:
    """The local time, ISO 8601 with seconds."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files that :func:`atomic_path` left in ``run_dir`` when its writer died.

    Only the holder of the run's lock may call this: then no live writer owns any of them.
    A SIGKILL between creating a temporary file and renaming it leaves one behind; the file it
    was to replace is still whole, so deleting the leftover loses nothing.

    Returns:
        The files removed.
    """
    root = Path(run_dir)
    # the run's own folders (parts/, plots/, ...), not nested runs, which have locks of their own
    folders = [root] + [d for d in root.iterdir() if d.is_dir() and not (d / LOCK).exists()]
    removed = []
    for folder in folders:
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (NaN becomes null)."""
    write_text(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    """Write a CSV atomically, without the index."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_pickle(path: Path, obj: Any) -> None:
    """Pickle atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def read_pickle(path: Path) -> Any:
    """Read a pickle written by :func:`write_pickle`."""
    with open(path, "rb") as fh:
        return pickle.load(fh)


def read_json(path: Path) -> Any:
    """Read JSON."""
    return json.loads(Path(path).read_text())


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """``output_dir/name/<timestamp>``; a suffix keeps two runs in one second apart."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(output_dir) / name
    path = base / stamp
    i = 1
    while path.exists():
        path = base / f"{stamp}-{i}"
        i += 1
    path.mkdir(parents=True)
    return path


class RunWriter:
    """Writes one run directory.

    Args:
        path: The run directory (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ small files
    def file(self, name: str) -> Path:
        """Path of a file in the run directory."""
        return self.path / name

    def write_config(self, resolved: dict[str, Any]) -> None:
        """``config.yaml``: the fully resolved spec."""
        write_text(self.file(CONFIG), yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))

    def write_env(self, env: dict[str, Any]) -> None:
        """``env.json``: versions, device, seed, command line."""
        write_json(self.file(ENV), env)

    def read_state(self) -> dict[str, Any] | None:
        """``state.json`` or None."""
        p = self.file(STATE)
        return read_json(p) if p.exists() else None

    def write_state(self, state: dict[str, Any]) -> None:
        """``state.json``: status and progress, rewritten atomically."""
        state = dict(state)
        state["updated"] = now_iso()
        write_json(self.file(STATE), state)

    def append_progress(self, event: dict[str, Any]) -> None:
        """Append one JSON line to ``progress.jsonl`` (one write, flushed)."""
        line = json.dumps(_jsonable({"time": now_iso(), **event})) + "\n"
        with open(self.file(PROGRESS), "a") as fh:
            fh.write(line)
            fh.flush()

    # ------------------------------------------------------------------ per-fold parts
    def part_path(self, repeat: int, fold: int) -> Path:
        """Where one finished fold's results are kept until the run is assembled."""
        return self.path / PARTS / f"r{repeat:04d}_f{fold:04d}.pkl"

    def write_part(self, repeat: int, fold: int, part: dict[str, Any]) -> None:
        """Save one finished fold (scores, history, predictions) atomically."""
        write_pickle(self.part_path(repeat, fold), part)

    def read_parts(self) -> dict[tuple[int, int], dict[str, Any]]:
        """Every finished fold saved so far."""
        out: dict[tuple[int, int], dict[str, Any]] = {}
        folder = self.path / PARTS
        if not folder.is_dir():
            return out
        for p in sorted(folder.glob("r*_f*.pkl")):
            part = read_pickle(p)
            out[(int(part["repeat"]), int(part["fold"]))] = part
        return out

    # ------------------------------------------------------------------ tables
    def write_table(self, name: str, df: pd.DataFrame) -> None:
        """A CSV in the run directory."""
        write_csv(self.file(name), df)

    def write_summary(self, summary: dict[str, Any], markdown: str) -> None:
        """``summary.json`` and ``summary.md``."""
        write_json(self.file(SUMMARY_JSON), summary)
        write_text(self.file(SUMMARY_MD), markdown)

    def plot(self, name: str, draw: Any, *, ncols: int = 1, size: tuple[float, float] = (6.4, 4.2)) -> Path:
        """Make a figure with ``ncols`` axes, let ``draw(axes)`` fill it, save ``plots/<name>.png``."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
        axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
        draw(axes if ncols > 1 else axes[0])
        path = self.path / PLOTS / f"{name}.png"
        save_figure(fig, path)
        return path
