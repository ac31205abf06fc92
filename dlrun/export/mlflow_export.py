"""Log finished run folders into MLflow with MLflow's own client (``dlrun export mlflow``).

A run becomes an MLflow run: the resolved spec, flattened, as parameters; each metric's headline
estimate and interval bounds as metrics; per-epoch means over the run's models as metric history;
plots, ``report.html``, ``summary.json`` and ``config.yaml`` as artifacts. A sweep or search becomes
a parent run with one child per point or trial. A cv run's folds are not child runs: hundreds of
children per run bury the runs in MLflow's table, and ``scores.csv`` holds them (open the report).

Exports are idempotent: each MLflow run carries the tag ``dlrun.fingerprint`` (see
:func:`dlrun.export.folders.run_identity`); a folder whose tag is already in the experiment is
skipped, and a group found again only gains the children it lacks (a search resumed since).

MLflow is an optional extra (``pip install 'dlrun[mlflow]'``), imported only here and only when used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlrun.errors import InputError
from dlrun.export.folders import FINGERPRINT_TAG, GroupExport, RunExport, exportables
from dlrun.store.index import find_runs
from dlrun.store.layout import CONFIG

DEFAULT_EXPERIMENT = "dlrun"
INSTALL_HINT = "dlrun export mlflow needs MLflow: pip install 'dlrun[mlflow]' (or pip install mlflow-skinny)"
_BATCH = 100  # MLflow's limit on params (and a safe size for metrics) per log_batch call


@dataclass
class ExportReport:
    """What an export did: MLflow run ids added, folders already there, folders not exported (and why)."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    experiment_id: str = ""

    def text(self) -> str:
        """One line for the console."""
        return (
            f"{len(self.added)} MLflow run(s) added, {len(self.existing)} already exported, "
            f"{len(self.skipped)} not finished (skipped) in experiment {self.experiment_id}"
        )


def _client(tracking_uri: str | None) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))


def _existing(client: Any, experiment_id: str, identity: str) -> str | None:
    """The id of the MLflow run that already holds the folder ``identity``, if any."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{FINGERPRINT_TAG}` = '{identity}'", max_results=1)
    return str(runs[0].info.run_id) if runs else None


def _log(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float], history: Any = None) -> None:
    from mlflow.entities import Metric, Param

    now = _now_ms()
    plist = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
    mlist = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for name, points in (history or {}).items():
        mlist += [Metric(f"epoch_{name}", value, now, step) for step, value in points]
    for i in range(0, len(plist), _BATCH):
        client.log_batch(run_id, params=plist[i : i + _BATCH])
    for i in range(0, len(mlist), 1000):
        client.log_batch(run_id, metrics=mlist[i : i + 1000])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _artifacts(client: Any, run_id: str, files: list[Path]) -> None:
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path="plots" if f.parent.name == "plots" else None)


def _log_run(client: Any, experiment_id: str, run: RunExport, parent: str | None = None) -> str:
    tags = {**run.tags, FINGERPRINT_TAG: run.identity, "mlflow.runName": run.name}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    created = client.create_run(experiment_id, tags=tags, run_name=run.name)
    run_id = str(created.info.run_id)
    try:
        _log(client, run_id, run.params, run.metrics, run.history)
        _artifacts(client, run_id, run.artifacts)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _log_group(client: Any, experiment_id: str, group: GroupExport, report: ExportReport) -> None:
    parent = _existing(client, experiment_id, group.identity)
    if parent is None:
        tags = {FINGERPRINT_TAG: group.identity, "dlrun.kind": group.kind, "dlrun.folder": str(group.path.resolve())}
        parent = str(client.create_run(experiment_id, tags=tags, run_name=group.name).info.run_id)
        _log(client, parent, group.params, group.metrics)
        _artifacts(client, parent, group.artifacts)
        client.set_terminated(parent, status="FINISHED")
        report.added.append(parent)
    else:
        report.existing.append(str(group.path))
    for child in group.children:
        if _existing(client, experiment_id, child.identity) is not None:
            report.existing.append(str(child.path))
        else:
            report.added.append(_log_run(client, experiment_id, child, parent=parent))
    report.skipped += group.skipped


def export_mlflow(folders: list[Path], tracking_uri: str | None = None, experiment: str | None = None) -> ExportReport:
    """Log the finished runs, sweeps and searches under ``folders`` into MLflow; skip what is already there.

    Args:
        folders: Run, sweep, search or batch folders (or any folder above runs).
        tracking_uri: MLflow's tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``); None: MLflow's
            default (``MLFLOW_TRACKING_URI``, else its local store).
        experiment: The MLflow experiment (created when missing); None: ``dlrun``.

    Raises:
        InputError: MLflow is not installed, or a folder holds no run.
    """
    client = _client(tracking_uri)  # first: without MLflow, say how to install it before reading folders
    runs, groups, skipped = exportables([Path(f) for f in folders])
    report = ExportReport(skipped=skipped)
    report.experiment_id = _experiment(client, experiment or DEFAULT_EXPERIMENT)
    for run in runs:
        if _existing(client, report.experiment_id, run.identity) is not None:
            report.existing.append(str(run.path))
        else:
            report.added.append(_log_run(client, report.experiment_id, run))
    for group in groups:
        _log_group(client, report.experiment_id, group, report)
    return report


def tracking_settings(folder: Path) -> dict[str, Any] | None:
    """The spec's ``tracking.mlflow`` mapping, read from the resolved ``config.yaml`` of the first run under
    ``folder`` that has one (a run, or a sweep's point, a search's trial, a batch's config); None if none has."""
    for info in find_runs(Path(folder)):
        config = info.path / CONFIG
        if not config.is_file():
            continue
        loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
        settings = ((loaded or {}).get("tracking") or {}).get("mlflow") if isinstance(loaded, dict) else None
        if settings:
            return dict(settings)
    return None


def log_finished_run(folder: Path, tracking: dict[str, Any] | None = None) -> ExportReport | None:
    """The spec's ``tracking: {mlflow: {tracking_uri, experiment}}``: log a run (or sweep, search, batch) as
    it finishes; nothing when the spec has no ``tracking.mlflow``.

    Args:
        folder: The finished run, sweep, search or batch folder.
        tracking: The spec's ``tracking.mlflow`` mapping; None: read from the runs' ``config.yaml``.

    Raises:
        InputError: MLflow is not installed. MLflow's own errors (a tracking server that cannot be
            reached) pass through: a caller with a finished run turns them into a warning.
    """
    settings = tracking if tracking is not None else tracking_settings(folder)
    if not settings:
        return None
    return export_mlflow([Path(folder)], settings.get("tracking_uri"), settings.get("experiment"))
