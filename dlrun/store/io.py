"""Run folders' contents: parts, tables, summaries, the model, and the "failed before training" rule.

Files reach the disk through :mod:`dlrun.store.atomic` (atomic renames, seals, checksums); file
names come from :mod:`dlrun.store.layout`.

Nothing in a run folder is a pickle: loading one can execute code, and a run folder may
come from someone else. Fold parts are JSON, checkpoints NPZ (``allow_pickle=False``),
the fitted preprocessing JSON with its scikit-learn objects through ``skops.io`` and an
explicit list of trusted types. Every part, checkpoint and preprocessing file is *sealed*:
its last line holds the SHA-256 of the bytes before it, verified on every read
(:func:`read_sealed`), so a flipped bit or a truncated file is detected and named, never used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.errors import CorruptFileError, InputError
from dlrun.store.atomic import (  # noqa: F401  (re-exported: callers write through this module)
    _SEAL,
    CORRUPT_SUFFIX,
    StorageError,
    _jsonable,
    atomic_path,
    move_aside,
    now_iso,
    read_json,
    read_sealed,
    remove_stale_temps,
    seal,
    sha256_file,
    storage_error,
    unseal,
    write_csv,
    write_json,
    write_sealed,
    write_text,
)

# File names are decided in dlrun.store.layout; re-exported here for the modules that write through report.
from dlrun.store.layout import (  # noqa: F401
    CHECKPOINT,
    CONFIG,
    ENV,
    FINGERPRINT,
    FOLDS,
    HISTORY,
    LOCK,
    MODEL,
    PART_GLOB,
    PARTS,
    PLOTS,
    PREDICTIONS,
    PREPROCESSOR,
    PROGRESS,
    SCORES,
    STATE,
    SUMMARY_JSON,
    SUMMARY_MD,
)

# written by dlrun before it stopped using pickles: refused by name, never loaded
LEGACY_PICKLES = ("preprocessor.pkl", f"{CHECKPOINT}/state.pkl")


def refuse_legacy_pickles(run_dir: Path) -> None:
    """Refuse a run folder written by a dlrun that stored pickles; nothing in it is loaded.

    Raises:
        CorruptFileError: Naming the first pickle found.
    """
    run_dir = Path(run_dir)
    found = [run_dir / name for name in LEGACY_PICKLES if (run_dir / name).exists()]
    found += sorted((run_dir / PARTS).glob("*.pkl")) if (run_dir / PARTS).is_dir() else []
    if found:
        raise CorruptFileError(
            found[0],
            "is a pickle written by an older dlrun; pickles are never loaded (loading one can run code). "
            "Start a new run with another --out",
        )


# ----------------------------------------------------------------------------- JSON of frames
def _plain(obj: Any) -> Any:
    """Plain Python values for JSON, keeping NaN and infinities (read back exactly by ``json``)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf":  # tolist() already gives plain bools, ints and floats
            return obj.tolist()
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def frame_to_plain(df: pd.DataFrame | None) -> dict[str, Any] | None:
    """A DataFrame as ``{columns, dtypes, data}`` (one list per column) that round-trips exactly."""
    if df is None:
        return None
    return {
        "columns": [str(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "data": [_plain(df[c].to_numpy()) for c in df.columns],
    }


def frame_from_plain(d: dict[str, Any] | None) -> pd.DataFrame | None:
    """Inverse of :func:`frame_to_plain`."""
    if d is None:
        return None
    cols = {}
    for name, dtype, values in zip(d["columns"], d["dtypes"], d["data"]):
        cols[name] = pd.Series(values, dtype=object if dtype == "object" else dtype)
    return pd.DataFrame(cols)


def encode_part(part: dict[str, Any]) -> dict[str, Any]:
    """One fold's part (scores, history, predictions) as plain JSON data."""
    return {
        "repeat": int(part["repeat"]),
        "fold": int(part["fold"]),
        "scores": _plain(part["scores"]),
        "history": frame_to_plain(part["history"]),
        "predictions": frame_to_plain(part.get("predictions")),
    }


def decode_part(d: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_part`."""
    return {
        "repeat": int(d["repeat"]),
        "fold": int(d["fold"]),
        "scores": dict(d["scores"]),
        "history": frame_from_plain(d["history"]),
        "predictions": frame_from_plain(d.get("predictions")),
    }


# ----------------------------------------------------------------------------- arrays
def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as NPZ bytes (no object arrays: they would need pickle)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return buf.getvalue()


def npz_arrays(payload: bytes, path: Path | str) -> dict[str, np.ndarray]:
    """Arrays of NPZ bytes, loaded with ``allow_pickle=False``.

    Raises:
        CorruptFileError: Not an NPZ of plain arrays.
    """
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, KeyError) as exc:
        raise CorruptFileError(path, f"is not an NPZ of plain arrays ({exc})") from None


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's ``summary.json``: the one reader behind ``dlrun.load`` and ``dlrun compare``.

    Raises:
        InputError: The folder holds no ``summary.json`` (not a finished run), or it is not a JSON
            object with ``mode`` and ``metrics`` (an object).
    """
    path = Path(run_dir)
    sfile = path / SUMMARY_JSON
    if not sfile.is_file():
        raise InputError(f"run folder must hold {SUMMARY_JSON} (a finished run); '{path}' does not")
    try:
        summary = json.loads(sfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{sfile} must be valid JSON; reading it failed: {exc}") from None
    if not isinstance(summary, dict):
        raise InputError(f"{sfile} must hold a JSON object; got {type(summary).__name__}")
    for key in ("mode", "metrics"):
        if key not in summary:
            raise InputError(f"{sfile} must have a {key!r} key; it has {', '.join(summary) or 'none'}")
    if not isinstance(summary["metrics"], dict):
        raise InputError(f"{sfile} 'metrics' must be an object; got {type(summary['metrics']).__name__}")
    return summary


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp:
        # zlib level 1: a third faster than the default 6 for plots of lines, files about 20% larger
        fig.savefig(tmp, format="png", dpi=110, pil_kwargs={"compress_level": 1})


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


def count_saved_folds(run_dir: Path) -> int:
    """How many folds the part files of ``run_dir`` hold (parsed, not verified: for ``status``)."""
    folder = Path(run_dir) / PARTS
    n = 0
    for p in folder.glob(PART_GLOB) if folder.is_dir() else []:
        try:
            data = p.read_bytes()
            n += len(json.loads(data[: data.rfind(_SEAL)])["parts"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return n


# What a run writes before it trains anything; a run that failed by then holds only these.
_START_FILES = (STATE, CONFIG, ENV, FINGERPRINT, FOLDS)


def failed_before_training(run_dir: Path) -> str | None:
    """The error of a run in ``run_dir`` that failed before it trained anything, else None.

    Such a folder holds no result: no finished model, no saved fold, no checkpoint, no model file,
    no summary, and nothing but the files a run writes as it starts (and its log).
    """
    folder = Path(run_dir)
    try:
        state = read_json(folder / STATE) if (folder / STATE).is_file() else None
    except (InputError, OSError):  # an unreadable state: not known to be empty
        return None
    if not isinstance(state, dict) or state.get("status") != "failed" or state.get("finished_models"):
        return None
    expected = {*_START_FILES, PROGRESS, LOCK, PARTS, PLOTS}
    for entry in folder.iterdir():
        if entry.name not in expected or (entry.is_dir() and any(entry.iterdir())):
            return None
    return str(state.get("error") or "no error recorded")


def afresh_note(where: object, error: str) -> str:
    """The line that says a failed run's folder (:func:`failed_before_training`) is started afresh."""
    return f"{where}: its earlier run failed before training anything ({error}); starting afresh"


def reclaim_failed_run(run_dir: Path) -> str | None:
    """Clear ``run_dir`` if its run :func:`failed_before_training` (its log stays); return its error, else None."""
    error = failed_before_training(run_dir)
    if error is not None:
        clear_failed_run(run_dir)
    return error


def clear_failed_run(run_dir: Path) -> None:
    """Remove the start files of a run :func:`failed_before_training` (its log stays), so a new run starts afresh."""
    folder = Path(run_dir)
    try:
        for name in _START_FILES:
            (folder / name).unlink(missing_ok=True)
        for name in (PARTS, PLOTS):
            if (folder / name).is_dir():
                (folder / name).rmdir()
    except OSError as exc:
        raise storage_error(exc, folder, "clear") from None


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

    def write_state(self, state: dict[str, Any]) -> None:
        """``state.json``: status and progress, rewritten atomically."""
        state = dict(state)
        state["updated"] = now_iso()
        write_json(self.file(STATE), state)

    def append_progress(self, event: dict[str, Any]) -> None:
        """Append one JSON line to ``progress.jsonl`` (one write, flushed)."""
        line = json.dumps(_jsonable({"time": now_iso(), **event})) + "\n"
        try:
            with open(self.file(PROGRESS), "a") as fh:
                fh.write(line)
                fh.flush()
        except OSError as exc:
            raise storage_error(exc, self.file(PROGRESS)) from None

    # ------------------------------------------------------------------ per-fold parts
    def part_path(self, repeat: int, fold: int) -> Path:
        """Where finished folds are kept until the run is assembled, named by the first of them."""
        return self.path / PARTS / f"r{repeat:04d}_f{fold:04d}.json"

    def write_parts(self, parts: list[dict[str, Any]]) -> None:
        """Save several finished folds as ONE sealed file: committed together or not at all.

        The stacked engine trains a chunk of folds at once; a run killed between two folds of
        a chunk must retrain the whole chunk, as an uninterrupted run grouped it, to end with
        exactly its results.
        """
        if not parts:
            return
        first = parts[0]
        payload = json.dumps({"format": "dlrun-parts/1", "parts": [encode_part(p) for p in parts]})
        write_sealed(self.part_path(int(first["repeat"]), int(first["fold"])), payload.encode())

    def read_parts(self, on_corrupt: Any = None) -> dict[tuple[int, int], dict[str, Any]]:
        """Every finished fold saved so far, each file verified against its checksum.

        A file that fails (truncated, overwritten, flipped bits, not dlrun's) is moved aside to
        ``parts/<name>.corrupt`` and its folds count as not done, so they train again.

        Args:
            on_corrupt: Called with one line per file moved aside.

        Raises:
            CorruptFileError: The folder holds pickles of an older dlrun (never loaded).
        """
        out: dict[tuple[int, int], dict[str, Any]] = {}
        folder = self.path / PARTS
        if not folder.is_dir():
            return out
        refuse_legacy_pickles(self.path)
        for p in sorted(folder.glob(PART_GLOB)):
            try:
                doc = json.loads(read_sealed(p))
                parts = [decode_part(d) for d in doc["parts"]]
            except (CorruptFileError, ValueError, KeyError, TypeError) as exc:
                why = exc.reason if isinstance(exc, CorruptFileError) else f"cannot be read ({exc})"
                dest = move_aside(p)
                if on_corrupt is not None:
                    on_corrupt(f"{p} {why}; moved to {dest.name}, its folds train again")
                continue
            for part in parts:
                out[(part["repeat"], part["fold"])] = part
        return out

    def count_saved_folds(self) -> int:
        """How many folds the part files hold (read without verifying: for ``status``)."""
        return count_saved_folds(self.path)

    # ------------------------------------------------------------------ model and preprocessing (train)
    def write_model(self, model: Any) -> str:
        """``model.keras``, atomically; returns its SHA-256 (recorded with the preprocessing)."""
        path = self.file(MODEL)
        with atomic_path(path, suffix=".tmp.keras") as tmp:  # Keras insists on the .keras suffix
            model.save(tmp)
        return sha256_file(path)

    def write_preprocessor(self, bundle: dict[str, Any]) -> None:
        """``preprocessor.json``: the fitted preprocessing and data layout, sealed (no pickle)."""
        write_sealed(self.file(PREPROCESSOR), json.dumps(_plain(bundle)).encode())

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


# ----------------------------------------------------------------------------- folders as bytes
# A job that runs on another machine gets its folder as bytes and returns every file it wrote.
def pack(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path to bytes), the lock file aside."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def unpack(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (from :func:`pack`) under ``folder``."""
    for rel, data in files.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def write_files(folder: Path, files: dict[str, bytes], shipped: dict[str, bytes]) -> None:
    """Write a job's files into ``folder`` atomically (``state.json`` last) and remove the files
    it was shipped and deleted (a cleared checkpoint)."""
    for rel in sorted(files, key=lambda rel: (rel == STATE, rel)):
        with atomic_path(folder / rel) as tmp:
            tmp.write_bytes(files[rel])
    for rel in shipped:
        if rel not in files:
            with contextlib.suppress(FileNotFoundError):
                (folder / rel).unlink()
