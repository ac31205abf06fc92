"""The life of one command: stop signals, the resume command, and the fingerprint of a run.

Signals. :func:`install_signal_handlers` (called once, at the start of the CLI) makes SIGINT and
SIGTERM set a flag instead of raising inside whatever code happens to run: an exception raised
from a signal handler can be swallowed (e.g. inside a ``WeakKeyDictionary`` callback) and the
signal lost. The flag is checked at safe points (:func:`check_stop`: every epoch, between folds,
sweep points and batch configs, before and after writing outputs), which raise
:class:`~dlrun.errors.Interrupted`; a second signal raises at once. So a signal at any phase ends
the command with exit code 130, the run (and any sweep or batch) marked ``interrupted``.

Fingerprint. A run folder records everything that determines its results (the resolved spec
without the fields that cannot change them, the data's checksum, the splits) in
``fingerprint.json``. ``--resume`` with a different fingerprint is refused, with a one-line diff of
the changed fields, so folds trained under two configs are never mixed.
"""

from __future__ import annotations

import hashlib
import shlex
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Light imports only: the console entry point installs the signal handlers through this module
# before anything heavy loads, so that a signal during start-up is not lost.
from dlrun.errors import CorruptFileError, InputError, Interrupted

if TYPE_CHECKING:
    import pandas as pd


class FingerprintMismatch(InputError):
    """``--resume`` with a config, data or splits other than the run folder recorded. Exit code 2."""


# ----------------------------------------------------------------------------- signals
_STOP: dict[str, Any] = {"signum": None, "count": 0, "installed": False}


def _handler(signum: int, frame: Any) -> None:
    _STOP["signum"] = signum
    _STOP["count"] += 1
    if _STOP["count"] >= 2:  # asked twice: stop now, wherever the code is
        raise Interrupted(f"stopped by a second {signal.Signals(signum).name}")


def install_signal_handlers() -> bool:
    """Route SIGINT and SIGTERM to the stop flag for the rest of the process (main thread only).

    Returns:
        Whether the handlers were installed (False outside the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)
    _STOP["installed"] = True
    return True


def handlers_installed() -> bool:
    """Whether :func:`install_signal_handlers` is in effect."""
    return bool(_STOP["installed"])


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM arrived."""
    return _STOP["signum"] is not None


def stop_signal_name() -> str:
    """``SIGTERM``, ``SIGINT`` or ``a signal``."""
    signum = _STOP["signum"]
    return signal.Signals(signum).name if signum is not None else "a signal"


def check_stop() -> None:
    """A safe point: raise :class:`Interrupted` if a stop signal arrived.

    Raises:
        Interrupted: SIGINT or SIGTERM was received.
    """
    if _STOP["signum"] is not None:
        raise Interrupted(f"stopped by {stop_signal_name()}")


def reset_stop() -> None:
    """Forget a received signal (tests, and a process that runs several commands)."""
    _STOP["signum"] = None
    _STOP["count"] = 0


# ----------------------------------------------------------------------------- the resume command
def resume_command(argv: list[str] | None, out_dir: Path, command: str = "") -> str:
    """The command line that continues this one in ``out_dir``: the same arguments (config path,
    ``--set``, ``--grid``, ...) with ``--out out_dir --resume``.

    Args:
        argv: ``sys.argv`` of the interrupted command (``[prog, subcommand, ...]``), or None.
        out_dir: The run, sweep or batch folder.
        command: The subcommand, used when ``argv`` does not hold one.
    """
    args = list(argv[1:]) if argv else []
    if not args and command:
        args = [command]
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out=") or a == "--resume":
            continue
        kept.append(a)
    return shlex.join(["dlrun", *kept, "--out", str(out_dir), "--resume"])


# ----------------------------------------------------------------------------- fingerprint
# Fields of the resolved spec that cannot change a run's results (paths, logging, where it runs).
IGNORED_FIELDS: tuple[str, ...] = (
    "name",
    "output_dir",
    "sweep",
    "search",
    "training.verbose",
    "training.checkpoint_every",
    "runtime.device",
    "runtime.executor",
    "runtime.address",
    "runtime.num_cpus",
    "runtime.num_gpus",
    "runtime.max_retries",
)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(_flatten(v, key))
            else:
                out[key] = v
        return out
    return {prefix: d}


def spec_fields(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved spec as ``{dotted.path: value}``, without :data:`IGNORED_FIELDS`."""
    flat = _flatten(resolved)
    return {k: v for k, v in flat.items() if not any(k == f or k.startswith(f + ".") for f in IGNORED_FIELDS)}


def data_checksum(x: Any, y: pd.DataFrame) -> str:
    """SHA-256 of the loaded rows (features and target, values and column names)."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    if isinstance(x, pd.DataFrame):
        digest.update(repr(list(map(str, x.columns))).encode())
        digest.update(pd.util.hash_pandas_object(x, index=False).to_numpy().tobytes())
    else:
        arr = np.ascontiguousarray(x)
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    digest.update(repr(list(map(str, y.columns))).encode())
    digest.update(pd.util.hash_pandas_object(y, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def make_fingerprint(resolved: dict[str, Any], data_sha256: str | None, splits: str | None) -> dict[str, Any]:
    """What determines a run's results, as written to ``fingerprint.json``."""
    return {
        "format": "dlrun-fingerprint/1",
        "spec": spec_fields(resolved),
        "data_sha256": data_sha256,
        "splits": splits,
    }


def _short(v: Any) -> str:
    text = repr(v) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["training.epochs: 40 → 20", ...]``: what differs between two fingerprints."""
    changes: list[str] = []
    a, b = old.get("spec") or {}, new.get("spec") or {}
    for key in list(dict.fromkeys([*a, *b])):
        if a.get(key) != b.get(key):  # a field a newer dlrun added reads as None in an older record
            changes.append(f"{key}: {_short(a.get(key))} → {_short(b.get(key))}")
    for key, label in (("data_sha256", "the data (sha256)"), ("splits", "the splits")):
        if old.get(key) is not None and new.get(key) is not None and old[key] != new[key]:
            changes.append(f"{label}: {str(old[key])[:12]}… → {str(new[key])[:12]}…")
    return changes


def check_fingerprint(run_dir: Path, new: dict[str, Any], *, spec_only: bool = False) -> bool:
    """Refuse to continue a run folder recorded with another fingerprint.

    Args:
        run_dir: The run folder.
        new: The fingerprint of the command now (``data_sha256``/``splits`` None when not known yet).
        spec_only: Compare the spec fields only (before the data is loaded).

    Returns:
        Whether the folder had a fingerprint to compare with.

    Raises:
        InputError: The fingerprints differ (exit 2), with a one-line diff.
    """
    from dlrun.store import io as report

    path = Path(run_dir) / report.FINGERPRINT
    config = Path(run_dir) / report.CONFIG
    if path.exists():
        try:
            old = report.read_json(path)
        except CorruptFileError:
            raise InputError(
                f"{path} is unreadable, so this run cannot be checked before resuming; "
                "start a new run with another --out"
            ) from None
    elif config.exists() and (Path(run_dir) / report.STATE).exists():
        # a folder from before fingerprints: its config.yaml is the best record of its spec
        import yaml

        try:
            old = {"spec": spec_fields(yaml.safe_load(config.read_text()) or {})}
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            return False
        new = {**new, "data_sha256": None, "splits": None}
    else:
        return False
    if spec_only:
        old = {"spec": old.get("spec")}
        new = {"spec": new.get("spec")}
    changes = fingerprint_diff(old, new)
    if changes:
        shown = "; ".join(changes[:6]) + (f"; … ({len(changes)} in all)" if len(changes) > 6 else "")
        raise FingerprintMismatch(
            f"--resume: {run_dir} was run with another config ({shown}); resuming would mix results. "
            "Use the run's own config (its config.yaml), or choose a new --out"
        )
    return True


def write_fingerprint(run_dir: Path, fp: dict[str, Any]) -> None:
    """Record the fingerprint of a run (once the data and splits are known)."""
    from dlrun.store import io as report

    report.write_json(Path(run_dir) / report.FINGERPRINT, fp)
