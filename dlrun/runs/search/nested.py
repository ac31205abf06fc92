"""Nested cross-validation of a search (``evaluation.outer``): the whole search inside each outer
training part, the chosen config refitted there and scored on the outer test part."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlrun.data.sources import Dataset
from dlrun.engines import choose_engine, make_engine
from dlrun.errors import Interrupted, RunError
from dlrun.evaluation.summary import headline_block
from dlrun.protocol.fitting import fit_and_score
from dlrun.protocol.jobs import prepare
from dlrun.protocol.splits import Fold, make_folds
from dlrun.reporting import NullReporter, Reporter
from dlrun.runs.cv import run_cv
from dlrun.runs.finish import Finisher
from dlrun.runs.packing import parts_of
from dlrun.runs.search.optimize import HELPER_MIN_TRIALS, run_search
from dlrun.runs.search.outputs import f4
from dlrun.runs.search.study import search_settings
from dlrun.spec.schema import EvaluationSpec, validate
from dlrun.store import io as report
from dlrun.store.layout import NESTED_CSV, NESTED_JSON, NESTED_MD
from dlrun.store.run_folder import RunFolder
from dlrun.store.runs_folder import RunsFolder


def subset(data: Dataset, rows: np.ndarray) -> Dataset:
    x = data.X.iloc[rows].reset_index(drop=True) if isinstance(data.X, pd.DataFrame) else data.X[rows]
    return dataclasses.replace(data, X=x, y=data.y.iloc[rows].reset_index(drop=True), task_inferred=False)


def run_nested(
    raw: dict[str, Any],
    out_dir: Path,
    reporter: Reporter | None = None,
    *,
    source: str | None = None,
    argv: list[str] | None = None,
    **search_kw: Any,
) -> dict[str, Any]:
    """Nested cross-validation of the search procedure (``evaluation.outer``).

    For each outer fold: the whole search on the outer training part (``outer/r0_f1/``), the
    chosen config refitted on that part and scored on the outer test part. The outer scores form
    a cross-validation run of their own (``outer/refit``) whose corrected (headline) interval is
    the honest estimate; the inner best scores are optimistic, and their gap is reported.

    Returns:
        The content of ``nested.json``.
    """
    reporter = reporter or NullReporter()
    full, base, settings, _ = search_settings(raw, source)
    outer = full.evaluation.outer
    assert outer is not None
    folder = RunsFolder(out_dir, "search", source)
    folder.check_spec(base, reporter.note)  # before anything trains: another spec is refused, never mixed in
    folder.clear_temporaries()
    prep_full = prepare(base, reporter)
    labels = prep_full.data.y.iloc[:, 0].to_numpy() if prep_full.classes is not None else None
    outer_ev = EvaluationSpec(
        mode="repeated_kfold" if outer.repeats > 1 else "kfold",
        folds=outer.folds,
        repeats=outer.repeats,
        stratify=base.evaluation.stratify,
        confidence=base.evaluation.confidence,
        metrics=base.evaluation.metrics,
        split_seed=base.evaluation.split_seed,
    )
    outer_folds = make_folds(outer_ev, len(prep_full.data.y), labels, prep_full.task, full.seed)
    metric = prep_full.main_metric
    refit_dir = out_dir / "outer" / "refit"
    refit = RunFolder(refit_dir)
    done = parts_of(refit_dir)
    rows = []
    inner_raw = {k: v for k, v in raw.items()}
    n_inner = int(search_kw.get("trials") or settings.trials)
    helpers = Finisher() if n_inner >= HELPER_MIN_TRIALS else None  # one set for every inner search
    with helpers if helpers is not None else contextlib.nullcontext(None) as finisher:
        for of in outer_folds:
            tag = f"r{of.repeat}_f{of.fold}"
            reporter.note(f"outer fold {tag}: search on {len(of.train)} rows, test on {len(of.test)}")
            try:
                outcome = run_search(
                    inner_raw,
                    out_dir / "outer" / tag,
                    reporter,
                    source=source,
                    data=subset(prep_full.data, of.train),
                    argv=argv,
                    finisher=finisher,
                    **search_kw,
                )
            except Interrupted:
                raise Interrupted(
                    f"nested search interrupted in outer fold {tag}; resume with: {folder.resume_command(argv)}"
                ) from None
            if outcome.best_raw is None:
                raise RunError(f"outer fold {tag}: no trial of the inner search finished")
            best_spec = validate(outcome.best_raw, source=source)
            if of.key not in done:
                prep_b = prepare(best_spec, NullReporter(), data=prep_full.data)
                refit_fold = Fold(of.repeat, of.fold, of.seed, of.train, np.array([], dtype=int), of.test)
                prep_b = dataclasses.replace(prep_b, folds=[refit_fold])
                choice = choose_engine(prep_b.spec, prep_b.task)
                engine = make_engine(choice.name, prep_b.spec, prep_b.task, prep_b.input_shape, prep_b.n_outputs)
                for scored in fit_and_score(
                    prep_b, [refit_fold], functools.partial(engine.fit, on_epoch=reporter.epoch)
                ):
                    assert scored.part is not None
                    scored.part["scores"]["inner_trial"] = int(outcome.best["trial"]) if outcome.best else None
                    refit.write_parts([scored.part])
                done = parts_of(refit_dir)
            best = outcome.best or {}
            rows.append(
                {
                    "repeat": of.repeat,
                    "fold": of.fold,
                    "inner_trial": best.get("trial"),
                    "inner_best": best.get(f"{metric}_mean"),
                    "outer_score": done[of.key]["scores"].get(metric),
                    **{f"value:{k}": v for k, v in best.items() if k in settings.space},
                }
            )
    spec_outer = base.model_copy(update={"evaluation": outer_ev, "name": f"{base.name}_outer"})
    prep_outer = dataclasses.replace(prep_full, spec=spec_outer, folds=outer_folds)
    outer_summary = run_cv(spec_outer, refit_dir, NullReporter(), argv=argv, prep=prep_outer).summary
    block = outer_summary["metrics"][metric]
    est = headline_block(block)
    table = pd.DataFrame(rows)
    report.write_csv(out_dir / NESTED_CSV, table)
    inner_mean = float(pd.to_numeric(table["inner_best"], errors="coerce").mean())
    nested = {
        "name": base.name,
        "command": "search",
        "nested": True,
        "metric": metric,
        "confidence": base.evaluation.confidence,
        "outer": {"folds": outer.folds, "repeats": outer.repeats, "estimate": est, "text": block["headline_text"]},
        "inner_best_mean": inner_mean,
        "gap": inner_mean - float(est["mean"]),
        "text": (
            f"honest estimate of the search procedure: {block['headline_text']}; the inner searches' best "
            f"scores average {inner_mean:.4f} (optimistic: each is the best of many trials on its own rows); "
            f"gap {inner_mean - float(est['mean']):+.4f}"
        ),
        "per_outer_fold": table.to_dict(orient="records"),
    }
    report.write_json(out_dir / NESTED_JSON, nested)
    report.write_text(out_dir / NESTED_MD, nested_markdown(nested))
    return nested


def nested_markdown(nested: dict[str, Any]) -> str:
    """``nested.md``: the outer estimate, the inner best and the gap, per outer fold."""
    m = nested["metric"]
    est = nested["outer"]["estimate"]
    lines = [
        f"# {nested['name']} — nested cross-validation of the search",
        "",
        f"**{nested['text']}**",
        "",
        "| | value |",
        "|---|---|",
        f"| outer estimate ({m}) | {est['mean']:.4f} [{f4(est.get('ci_low'))}, {f4(est.get('ci_high'))}] |",
        f"| inner best, mean over outer folds | {nested['inner_best_mean']:.4f} |",
        f"| gap (inner − outer) | {nested['gap']:+.4f} |",
        "",
        f"Method: {est.get('method', '')}",
        "",
        "| repeat | fold | chosen trial | inner best | outer score |",
        "|---|---|---|---|---|",
    ]
    for r in nested["per_outer_fold"]:
        lines.append(
            f"| {r['repeat']} | {r['fold']} | {r['inner_trial']} | {f4(r['inner_best'])} | {f4(r['outer_score'])} |"
        )
    return "\n".join(lines) + "\n"
