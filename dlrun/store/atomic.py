"""Atomic writes, seals and checksums: how every file of a run folder reaches the disk.

Every file is written to a temporary name in the same folder and renamed into place
(:func:`atomic_path`), so a killed run never leaves a half-written file. Parts, checkpoints and the
fitted preprocessing are *sealed*: their last line holds the SHA-256 of the bytes before it,
verified on every read (:func:`read_sealed`), so a flipped bit or a truncated file is detected and
named, never used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.errors import CorruptFileError, InputError
from dlrun.store.layout import LOCK

_PICKLE_MAGIC = (b"\x80", b"(", b"c")  # protocol 2+ opcodes, protocol 0 MARK / GLOBAL

CORRUPT_SUFFIX = ".corrupt"


_SEAL = b"\n#dlrun-sha256:"


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


def read_json(path: Path) -> Any:
    """Read JSON.

    Raises:
        CorruptFileError: The file is not valid JSON (e.g. truncated by a full disk).
    """
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"is not valid JSON ({exc})") from None
