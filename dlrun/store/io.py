"""The one module that writes files: run directories, atomically.

Every file is written to a temporary name in the same folder and renamed into
place, so a killed run never leaves a half-written CSV. Only this module chooses
file names.

Nothing in a run folder is a pickle: loading one can execute code, and a run folder may
come from someone else. Fold parts are JSON, checkpoints NPZ (``allow_pickle=False``),
the fitted preprocessing JSON with its scikit-learn objects through ``skops.io`` and an
explicit list of trusted types. Every part, checkpoint and preprocessing file is *sealed*:
its last line holds the SHA-256 of the bytes before it, verified on every read
(:func:`read_sealed`), so a flipped bit or a truncated file is detected and named, never used.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.errors import CorruptFileError, InputError

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

CORRUPT_SUFFIX = ".corrupt"
# written by dlrun before it stopped using pickles: refused by name, never loaded
LEGACY_PICKLES = ("preprocessor.pkl", f"{CHECKPOINT}/state.pkl")
PART_GLOB = "r*_f*.json"
_SEAL = b"\n#dlrun-sha256:"
_PICKLE_MAGIC = (b"\x80", b"(", b"c")  # protocol 2+ opcodes, protocol 0 MARK / GLOBAL


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once: os.umask can only be read by setting it, which is not thread-safe later on
_UMASK = _current_umask()


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


class StorageError(InputError):
    """An OS error (disk full, permission, a file where a folder should be) on a path dlrun writes or reads.

    Exit code 2: the paths are the user's (``--out``, ``output_dir``), and the fix is theirs.
    """

    def __init__(self, path: Path | str, exc: OSError, doing: str = "write") -> None:
        self.path = Path(path)
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, (NotADirectoryError, FileExistsError)) or exc.errno in (20, 17):
            hint = "a file is where a folder should be; choose another --out"
        elif isinstance(exc, PermissionError):
            hint = "no permission; choose a folder you can write to"
        elif exc.errno == 28:
            hint = "the disk is full; free space or choose another --out, then resume"
        else:
            hint = "check the path"
        super().__init__(f"cannot {doing} {path}: {why} ({hint})")


def storage_error(exc: OSError, path: Path | str | None = None, doing: str = "write") -> StorageError:
    """Wrap an OSError, naming ``path`` (or the error's own file name)."""
    where = path if path is not None else (exc.filename or "?")
    return StorageError(where, exc, doing)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary name is ``.<name>.<random><suffix>`` (``suffix`` ends in ``.tmp`` or
    ``.tmp.keras``), which :func:`remove_stale_temps` recognises. The final file gets the
    mode ``open()`` would give it under the user's umask (``mkstemp`` alone gives 0600).

    Raises:
        StorageError: An OS error while writing, with the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise storage_error(exc, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise storage_error(exc, path) from None
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
        # .x.tmp (atomic_path), .model.keras.x.tmp.keras and an older dlrun's .model.tmp.keras.x.keras
        for pattern in (".*.tmp", ".*.tmp.keras*", ".*.part"):
            for tmp in folder.glob(pattern):
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


# ----------------------------------------------------------------------------- sealed files
def seal(payload: bytes) -> bytes:
    """``payload`` followed by a last line holding its SHA-256."""
    return payload + _SEAL + hashlib.sha256(payload).hexdigest().encode() + b"\n"


def write_sealed(path: Path, payload: bytes) -> None:
    """Write ``payload`` atomically with its checksum (see :func:`read_sealed`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(seal(payload))


def unseal(data: bytes, path: Path | str) -> bytes:
    """The payload of a sealed file's bytes, after checking its SHA-256.

    Raises:
        CorruptFileError: A pickle, a missing or wrong checksum (truncated, overwritten, flipped bits).
    """
    if not data:
        raise CorruptFileError(path, "is empty (0 bytes)")
    if data.startswith(_PICKLE_MAGIC) and _SEAL not in data[-80:]:
        raise CorruptFileError(path, "is a pickle; dlrun never loads pickles (loading one can run code)")
    cut = data.rfind(_SEAL)
    if cut < 0 or not data.endswith(b"\n"):
        raise CorruptFileError(path, "has no checksum line: truncated, or not written by dlrun")
    payload, digest = data[:cut], data[cut + len(_SEAL) : -1].decode("ascii", "replace")
    actual = hashlib.sha256(payload).hexdigest()
    if digest != actual:
        raise CorruptFileError(path, f"fails its checksum (recorded sha256 {digest[:12]}…, actual {actual[:12]}…)")
    return payload


def read_sealed(path: Path) -> bytes:
    """Read a file written by :func:`write_sealed`; return its payload.

    Raises:
        CorruptFileError: The file fails its checksum, is truncated, or is a pickle.
        StorageError: It cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise storage_error(exc, path, "read") from None
    return unseal(data, path)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def move_aside(path: Path) -> Path:
    """Rename a bad file to ``<name>.corrupt`` (kept for inspection, never read again)."""
    dest = path.with_name(path.name + CORRUPT_SUFFIX)
    i = 1
    while dest.exists():
        dest = path.with_name(f"{path.name}{CORRUPT_SUFFIX}.{i}")
        i += 1
    os.replace(path, dest)
    return dest


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


def b64(data: bytes) -> str:
    """Base64 text of bytes."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Bytes of base64 text."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def read_json(path: Path) -> Any:
    """Read JSON.

    Raises:
        CorruptFileError: The file is not valid JSON (e.g. truncated by a full disk).
    """
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"is not valid JSON ({exc})") from None


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

    def read_state(self) -> dict[str, Any] | None:
        """``state.json`` or None; an unreadable one (truncated) counts as ``{}``: it is rewritten."""
        p = self.file(STATE)
        if not p.exists():
            return None
        try:
            state = read_json(p)
        except CorruptFileError:
            return {}
        return state if isinstance(state, dict) else {}

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

    def write_part(self, repeat: int, fold: int, part: dict[str, Any]) -> None:
        """Save one finished fold (scores, history, predictions) atomically, sealed."""
        self.write_parts([part])

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
