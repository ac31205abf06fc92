"""The fingerprint of a run: everything that determines its results, in ``fingerprint.json``.

A run folder records the resolved spec (without the fields that cannot change the results), the
data's checksum and the splits. ``--resume`` with a different fingerprint is refused, with a
one-line diff of the changed fields, so folds trained under two configs are never mixed. This is
the one definition of a fingerprint: :class:`~dlrun.store.run_folder.RunFolder` checks and records
it, and a cv folder that grows by more repeats compares through :func:`fingerprint_diff`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.errors import CorruptFileError, InputError
from dlrun.store.atomic import CORRUPT_SUFFIX, move_aside, read_json, write_json
from dlrun.store.layout import CONFIG, FINGERPRINT, FOLDS, STATE


class FingerprintMismatch(InputError):
    """``--resume`` with a config, data or splits other than the run folder recorded. Exit code 2."""


# Fields of the resolved spec that cannot change a run's results (paths, logging, where it runs).
IGNORED_FIELDS: tuple[str, ...] = (
    "name",
    "output_dir",
    "sweep",
    "search",
    "tracking",
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


def _splits_of_folds_csv(run_dir: Path) -> str | None:
    """The splits digest of the run's ``folds.csv`` (as :func:`dlrun.protocol.splits.splits_digest`
    computes it from the folds), or None when it has none or it cannot be read."""
    path = Path(run_dir) / FOLDS
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        h = hashlib.sha1()
        for r, f, t in zip(df["repeat"], df["fold"], df["test_index"]):
            h.update(f"{int(r)}:{int(f)}:{t};".encode())
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return None
    return h.hexdigest()


RUN_HINT = "Use the run's own config (its config.yaml), or choose a new --out"


def check_fingerprint(
    run_dir: Path,
    new: dict[str, Any],
    *,
    spec_only: bool = False,
    note: Callable[[str], None] | None = None,
    hint: str = RUN_HINT,
) -> bool:
    """Refuse to continue a run folder recorded with another fingerprint.

    A damaged ``fingerprint.json`` (a kill or a full disk) is moved aside, named to ``note``, and
    the run verified from what else it recorded: its ``config.yaml`` (the spec) and ``folds.csv``
    (the splits); its parts carry checksums of their own. The caller then records it again.

    Args:
        run_dir: The run folder.
        new: The fingerprint of the command now (``data_sha256``/``splits`` None when not known yet).
        spec_only: Compare the spec fields only (before the data is loaded).
        note: Told, in one line, of a damaged fingerprint moved aside.
        hint: What to do instead, closing the refusal.

    Returns:
        Whether the folder had a fingerprint (or a record in its place) to compare with.

    Raises:
        InputError: The fingerprints differ (exit 2), with a one-line diff; the fingerprint is
            damaged and nothing else records the run.
    """
    path = Path(run_dir) / FINGERPRINT
    config = Path(run_dir) / CONFIG
    damaged = path.with_name(path.name + CORRUPT_SUFFIX).exists()
    if path.exists():
        try:
            old = read_json(path)
        except CorruptFileError as exc:
            if not config.exists():
                raise InputError(
                    f"{path} is unreadable, so this run cannot be checked before resuming; "
                    "start a new run with another --out"
                ) from None
            dest = move_aside(path)
            damaged = True
            if note is not None:
                note(
                    f"{path} {exc.reason}; moved to {dest.name}; the run is checked against its "
                    f"{CONFIG} and {FOLDS} instead (its parts carry checksums of their own)"
                )
    if not path.exists():
        if not config.exists() or not ((Path(run_dir) / STATE).exists() or damaged):
            return False
        # a folder from before fingerprints, or whose fingerprint was damaged: its config.yaml is
        # the best record of its spec, and (damaged) its folds.csv of its splits
        try:
            old = {"spec": spec_fields(yaml.safe_load(config.read_text()) or {})}
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            return False
        old["splits"] = _splits_of_folds_csv(Path(run_dir)) if damaged else None
        new = {**new, "data_sha256": None, "splits": new.get("splits") if damaged else None}
    if spec_only:
        old = {"spec": old.get("spec")}
        new = {"spec": new.get("spec")}
    changes = fingerprint_diff(old, new)
    if changes:
        shown = "; ".join(changes[:6]) + (f"; … ({len(changes)} in all)" if len(changes) > 6 else "")
        raise FingerprintMismatch(
            f"--resume: {run_dir} was run with another config ({shown}); resuming would mix results. {hint}"
        )
    return True


def write_fingerprint(run_dir: Path, fp: dict[str, Any]) -> None:
    """Record the fingerprint of a run (once the data and splits are known)."""
    write_json(Path(run_dir) / FINGERPRINT, fp)
