"""``dlrun train``: one model (modes split, validation_split, none), checkpointed, and every output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.data.preprocessing import preprocessor_to_json
from dlrun.data.sources import Dataset
from dlrun.engines import FitJob, FitResult, choose_engine, make_engine
from dlrun.engines.runtime import setup, versions
from dlrun.errors import InputError
from dlrun.evaluation.scoring import baseline_name
from dlrun.protocol.fitting import Scored, fit_and_score
from dlrun.protocol.jobs import Prepared, curve_units, label_logs, prepare
from dlrun.protocol.splits import splits_digest
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.finish import PlotContext, confusion_plot, history_metrics, write_html_report
from dlrun.runs.result import RunResult
from dlrun.runs.summarize import add_divergence_warning, positive_class, summary_markdown
from dlrun.spec.schema import Spec
from dlrun.store import io as report
from dlrun.store.checkpoint import TrainCheckpoint
from dlrun.store.fingerprint import data_checksum
from dlrun.store.run_folder import RunFolder, check_command
from dlrun.store.signals import check_stop


def run_train(
    spec: Spec,
    run_dir: Path,
    reporter: Reporter | None = None,
    *,
    argv: list[str] | None = None,
    smoothing: float = 0.0,
    data: Dataset | None = None,
) -> RunResult:
    """Train one model (modes split, validation_split, none) and write every output (the caller holds the lock)."""
    reporter = reporter or NullReporter()
    check_command(spec, "train")
    check_smoothing(smoothing)
    folder = RunFolder(run_dir)
    folder.check_spec(spec)  # a finished run resumed with another config is refused too
    done = folder.finished_summary()
    if done is not None:
        reporter.note(f"{run_dir}: finished earlier; nothing to resume")
        return RunResult(folder.path, done, str((folder.read_state() or {}).get("engine", "")))
    with folder.running(spec, "train", argv, on_end=reporter.finish) as run:
        prep = prepare(spec, reporter, data=data)
        folder.record_fingerprint(spec, data_checksum(prep.data.X, prep.data.y), splits_digest(prep.folds))
        reporter = label_logs(prep, reporter)
        run.begin(1, setup(spec.runtime), versions())
        writer = folder.writer
        ckpt = TrainCheckpoint(writer, spec.training.checkpoint_every, note=reporter.note)
        choice = choose_engine(spec, prep.task, keep_model=True)
        t0 = [0.0]

        def on_epoch(event: Any) -> None:
            reporter.epoch(event)
            writer.append_progress({"event": "epoch", "epoch": event.epoch, "logs": event.logs})
            check_stop()

        def fit(jobs: list[FitJob]) -> Iterator[FitResult]:
            engine = make_engine(
                choice.name,
                spec,
                prep.task,
                prep.input_shape,
                prep.n_outputs,
                keep_model=True,
                extra_callbacks=[ckpt.callback()],
            )
            run.state["engine"] = engine.name
            reporter.start(spec.name, 1, spec.training.epochs)
            t0[0] = time.perf_counter()
            return engine.fit(jobs, on_epoch)  # type: ignore[no-any-return]

        def finish_result(result: FitResult) -> None:
            result.history = ckpt.full_history(result.history)
            result.seconds = time.perf_counter() - t0[0]

        (scored,) = fit_and_score(prep, prep.folds[:1], fit, adjust_job=ckpt.restore_into, adjust_result=finish_result)
        assert scored.result is not None and scored.pre is not None and scored.part is not None
        reporter.model_done(scored.fold.key, {}, scored.result.seconds)
        reporter.finish()
        check_stop()
        run.state["phase"] = "writing"
        summary = _write_train(prep, writer, scored, smoothing)
        check_stop()
        ckpt.clear()
        run.finish(1)
    return RunResult(folder.path, summary, "sequential")


def check_smoothing(smoothing: float) -> None:
    """``--smoothing`` must be in [0, 1): checked before anything trains.

    Raises:
        InputError: Out of range.
    """
    if not 0.0 <= float(smoothing) < 1.0:
        raise InputError(f"--smoothing must be in [0, 1) (e.g. 0.6), got {smoothing}")


def _write_train(prep: Prepared, writer: report.RunWriter, scored: Scored, smoothing: float) -> dict[str, Any]:
    from dlrun.report import plots

    spec = prep.spec
    fold, pre, result, part = scored.fold, scored.pre, scored.result, scored.part
    assert pre is not None and result is not None and part is not None
    row = part["scores"]
    history = part["history"].drop(columns=["repeat", "fold"])
    writer.write_table(report.HISTORY, history)
    if part["predictions"] is not None:
        writer.write_table(report.PREDICTIONS, part["predictions"].drop(columns=["repeat", "fold"]))
    model_sha256 = writer.write_model(result.model)
    writer.write_preprocessor(
        {
            "preprocessor": preprocessor_to_json(pre),
            "task": prep.task,
            "data": _data_meta(prep),
            "model_sha256": model_sha256,
        }
    )
    summary: dict[str, Any] = {
        "name": spec.name,
        "command": "train",
        "mode": spec.evaluation.mode,
        "task": prep.task,
        "engine": "sequential",
        "n_rows": len(prep.data.y),
        "n_train": len(fold.train),
        "n_val": len(fold.val),
        "n_test": len(fold.test),
        "main_metric": prep.main_metric,
        "positive_class": positive_class(prep),
        "epochs": result.epochs_run,
        "seconds": round(result.seconds, 3),
        "metrics": {m: row.get(m) for m in prep.metrics} if len(fold.test) else {},
        "train_metrics": {m: row.get(f"train_{m}") for m in prep.metrics},
        "baseline": {
            "model": baseline_name(prep.task),
            "metrics": {m: row.get(f"baseline_{m}") for m in prep.metrics} if len(fold.test) else {},
        },
        "final_logs": {k: v[-1] for k, v in result.history.items() if v},
    }
    if len(fold.test):
        held = (
            "validation rows (the last fraction, as Keras' validation_split)"
            if spec.evaluation.mode == "validation_split"
            else "held-out test rows"
        )
        summary["headline"] = {
            "metric": prep.main_metric,
            "estimate": "single",
            "text": f"{prep.main_metric} {row.get(prep.main_metric):.4f} on {len(fold.test)} {held} "
            f"(no-skill baseline {row.get('baseline_' + prep.main_metric):.4f}); "
            "one run: no interval — use `dlrun cv` for one",
        }
    add_divergence_warning(prep, summary, history.assign(repeat=0, fold=0), predictions=part["predictions"])
    writer.write_summary(summary, summary_markdown(summary))
    name, units = spec.name, curve_units(prep)
    for m in history_metrics(history.assign(repeat=0, fold=0)):
        h = history.assign(repeat=0, fold=0)
        writer.plot(
            f"learning_curve_{m}",
            lambda ax, m=m, h=h: plots.learning_curve(ax, h, m, run_name=name, smoothing=smoothing, units=units),
        )
    preds = part["predictions"]
    if preds is not None:
        if prep.task in ("binary", "multiclass") and prep.classes is not None:
            confusion_plot(PlotContext.of(prep), writer, preds, f"Predictions on the {len(fold.test)} held-out rows.")
        else:
            names = prep.data.target_names
            cols = [(f"true_{n}", f"pred_{n}", n) for n in names] if len(names) > 1 else [("true", "pred", names[0])]

            def draw(axes: Any) -> None:
                for ax, (t, p, n) in zip(axes if len(cols) > 1 else [axes], cols):
                    plots.predicted_vs_true(ax, preds[t].to_numpy(), preds[p].to_numpy(), n, run_name=name)

            writer.plot("predicted_vs_true", draw, ncols=len(cols))
    write_html_report(writer)
    return summary


def _data_meta(prep: Prepared) -> dict[str, Any]:
    return {
        "feature_names": prep.data.feature_names,
        "target_names": prep.data.target_names,
        "raw_columns": prep.data.raw_columns,
        "classes": None if prep.classes is None else list(prep.classes),
    }
