"""What a search writes at the end: ``trials.csv``, ``top_trials.csv``, ``best_config.yaml``, ``search.md``,
the summary in ``search.json`` and its plots."""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrun.evaluation import stats
from dlrun.evaluation.learning import learning_mark
from dlrun.evaluation.summary import headline_block
from dlrun.runs.packing import Programs, parts_of
from dlrun.runs.search.study import fold_scores, trial_dir, trial_spec
from dlrun.spec.schema import Spec
from dlrun.spec.search_space import Param, choice_label
from dlrun.store import io as report
from dlrun.store.layout import BEST_CONFIG, SEARCH_MD, SEARCH_STATE, TOP_CSV, TRIALS_CSV
from dlrun.store.runs_folder import RunsFolder


@dataclass
class SearchOutcome:
    """What a finished search produced (also written to its folder).

    Attributes:
        path: The search folder.
        table: ``trials.csv``.
        best: The best trial's row (None if no trial completed).
        best_raw: The best trial's spec, ready to run, as a raw mapping.
        summary: The summary part of ``search.json``.
    """

    path: Path
    table: pd.DataFrame
    best: dict[str, Any] | None
    best_raw: dict[str, Any] | None
    summary: dict[str, Any]


def values_text(values: dict[str, Any]) -> str:
    def short(k: str) -> str:
        return k.rsplit(".", 1)[-1] if not k.endswith("]") else k

    return ", ".join(f"{short(k)}={fmt_value(v)}" for k, v in values.items())


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(choice_label(v))


def trial_rows(study: Any, search_dir: Path, metric: str, params: list[Param]) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        path = trial_dir(search_dir, t.number)
        row: dict[str, Any] = {"trial": t.number}
        shown = t.user_attrs.get("values") or {p.path: t.params.get(p.path) for p in params}
        for p in params:
            row[p.path] = shown.get(p.path)
        status = {"COMPLETE": "finished", "PRUNED": "stopped", "FAIL": "failed", "RUNNING": "running"}.get(
            t.state.name, t.state.name.lower()
        )
        if t.state.name == "FAIL" and "error" not in t.user_attrs:
            status = "interrupted"
        row["status"] = status
        summary_path = path / report.SUMMARY_JSON
        if summary_path.exists() and status in ("finished", "stopped"):
            s = report.read_json(summary_path)
            block = s["metrics"][metric]
            d = headline_block(block)
            row.update(
                {
                    f"{metric}_mean": d.get("mean"),
                    f"{metric}_ci_low": d.get("ci_low"),
                    f"{metric}_ci_high": d.get("ci_high"),
                    "n_folds": d.get("n"),
                    "epochs_run": int(round(s["n_models"] * s["epochs"]["mean"])),
                    "warning": learning_mark(s),
                }
            )
        else:
            row.update(
                {
                    f"{metric}_mean": None,
                    f"{metric}_ci_low": None,
                    f"{metric}_ci_high": None,
                    "n_folds": len(parts_of(path)) or None,
                    "epochs_run": None,
                    "warning": "",
                }
            )
        row["stopped"] = t.user_attrs.get("stopped", "")
        row["error"] = t.user_attrs.get("error", "")
        if t.user_attrs.get("retry_of") is not None:
            row["error"] = (
                row["error"] + " " if row["error"] else ""
            ) + f"re-run of interrupted trial {t.user_attrs['retry_of']}"
        row["seconds"] = (
            round((t.datetime_complete - t.datetime_start).total_seconds(), 2)
            if t.datetime_complete and t.datetime_start
            else None
        )
        row["path"] = str(path.relative_to(search_dir))
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("n_folds", "epochs_run"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def interval_name(path: Path, metric: str, conf: float) -> str:
    """``95% CI`` where the trial's headline is a confidence interval the calibration study backs,
    else ``95% interval``."""
    kind = headline_block(report.read_json(path / report.SUMMARY_JSON)["metrics"][metric]).get("kind")
    return stats.interval_column_title([kind], conf)


def write_trials_table(study: Any, search_dir: Path, metric: str, params: list[Param]) -> pd.DataFrame:
    table = trial_rows(study, search_dir, metric, params)
    report.write_csv(search_dir / TRIALS_CSV, table)
    return table


def compare_top(
    table: pd.DataFrame,
    search_dir: Path,
    metric: str,
    higher: bool,
    top: int,
    n_train: float,
    n_test: float,
    conf: float,
) -> pd.DataFrame:
    """The best ``top`` finished trials against the best, paired on identical folds.

    The trials are tested pairwise and the p-values adjusted over every pair
    (:func:`dlrun.evaluation.stats.compare_with_best`): the best is chosen from the same scores, so
    testing only against it would not hold the family-wise error.

    Returns:
        One row per trial: mean, difference to the best with its Nadeau–Bengio corrected interval,
        raw and adjusted p, and ``tied_with_best``; ``attrs["procedure"]`` names the adjustment.
    """
    col = f"{metric}_mean"
    done = table[(table["status"] == "finished") & table[col].notna()].copy()
    if done.empty:
        return pd.DataFrame()
    done = done.sort_values(col, ascending=not higher).head(top)
    numbers = [int(n) for n in done["trial"]]
    scores = [fold_scores(trial_dir(search_dir, n), metric) for n in numbers]
    keys = sorted(scores[0])
    result = stats.compare_with_best(
        numbers,
        [[s.get(k, float("nan")) for k in keys] for s in scores],
        n_train,
        n_test,
        conf,
        higher_is_better=higher,
    )
    procedure = result.attrs.get("procedure", "")
    result = result.rename(columns={"label": "trial"})
    result.attrs["procedure"] = procedure
    result["mean"] = result["trial"].map(dict(zip(numbers, done[col].astype(float))))
    return result


def search_plots(study: Any, search_dir: Path, params: list[Param], metric: str) -> list[str]:
    """Optimisation history, each parameter against the score (log axes where log), importance."""
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    made: list[str] = []
    plot_dir = search_dir / report.PLOTS
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return made
    # Optuna's plots switch pyplot to its own style: keep that inside, away from every later plot
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        jobs: list[tuple[str, Callable[[], Any]]] = [
            ("optimization_history", lambda: ovm.plot_optimization_history(study, target_name=metric)),
        ]
        # plot_slice draws a log axis for a log distribution by itself
        for p in params:
            jobs.append(
                (f"param_{safe_name(p.path)}", functools.partial(ovm.plot_slice, study, [p.path], target_name=metric))
            )
        if len(complete) >= 2 and len(params) >= 1:
            jobs.append(("param_importance", lambda: ovm.plot_param_importances(study, target_name=metric)))
        for name, draw in jobs:
            try:
                ax = draw()
                ax0 = ax.flat[0] if isinstance(ax, np.ndarray) else ax
                fig = ax0.figure
                fig.tight_layout()
                report.save_figure(fig, plot_dir / f"{name}.png")
                made.append(name)
            except Exception:  # a plot Optuna cannot draw (too few trials, no variation) is skipped
                pass
            finally:
                plt.close("all")
    return made


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+\-]+", "_", text).strip("_")


def importance(study: Any) -> dict[str, float]:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # e.g. every trial had the same values
        return {}


def write_outputs(
    study: Any,
    search_dir: Path,
    raw: dict[str, Any],
    raw_base: dict[str, Any],
    base: Spec,
    params: list[Param],
    metric: str,
    direction: str,
    n_train: float,
    n_test: float,
    conf: float,
    programs: Programs,
    models_trained: int,
    n_folds: int,
    seconds: float,
    source: str | None,
    top_n: int,
) -> SearchOutcome:
    higher = direction == "maximize"
    table = write_trials_table(study, search_dir, metric, params)
    col = f"{metric}_mean"
    done = table[(table["status"] == "finished") & table[col].notna()] if not table.empty else table
    best: dict[str, Any] | None = None
    best_raw: dict[str, Any] | None = None
    if not done.empty:
        row = {str(k): v for k, v in done.sort_values(col, ascending=not higher).iloc[0].to_dict().items()}
        row["interval"] = interval_name(trial_dir(search_dir, int(row["trial"])), metric, conf)
        best = row
        values = {p.path: p.value_of(choice_label_value(study, int(row["trial"]), p)) for p in params}
        best_raw, _ = trial_spec(raw_base, values, f"{base.name}_best", source)
        header = (
            f"# best trial {int(row['trial'])} of the search in {search_dir} ({metric} "
            f"{f4(row[col])}, {row['interval']} {f4(row.get(f'{metric}_ci_low'))} to "
            f"{f4(row.get(f'{metric}_ci_high'))});\n# run it with: dlrun cv {search_dir / BEST_CONFIG}\n"
        )
        report.write_text(search_dir / BEST_CONFIG, header + yaml.safe_dump(best_raw, sort_keys=False))
    top = compare_top(table, search_dir, metric, higher, top_n, n_train, n_test, conf) if not done.empty else None
    top = top if top is not None else pd.DataFrame()
    if not top.empty:
        report.write_csv(search_dir / TOP_CSV, top)
    made = search_plots(study, search_dir, params, metric)
    total_full = (
        int((table["status"].isin(["finished", "stopped", "failed"])).sum()) * n_folds if not table.empty else 0
    )
    summary: dict[str, Any] = {
        "name": base.name,
        "command": "search",
        "metric": metric,
        "direction": direction,
        "confidence": conf,
        "trials": {s: int((table["status"] == s).sum()) for s in ("finished", "stopped", "failed", "interrupted")}
        if not table.empty
        else {},
        "best": clean_row(best),
        "tied_with_best": [int(n) for n in top.loc[top["tied_with_best"], "trial"]] if not top.empty else [],
        "tied_method": (
            f"each of the top {len(top)} trials against the best: Nadeau–Bengio corrected paired t-test on identical "
            f"folds, Holm-adjusted over {max(0, len(top) - 1)} comparisons; tied when adjusted p >= {1 - conf:.2f}"
        ),
        "importance": importance(study),
        "packing": programs.as_dict(),
        "models_trained": models_trained,
        "models_without_racing": total_full,
        "racing_saved": (1 - models_trained / total_full) if total_full and models_trained else 0.0,
        "seconds": round(seconds, 2),
        "plots": made,
    }
    # search.json: the state and the summary in one file. Not summary.json: `dlrun compare SEARCH_DIR`
    # must see the trials as runs, not the search folder as one
    folder = RunsFolder(search_dir, "search")
    folder.write_status(SEARCH_STATE, {**folder.read_status(SEARCH_STATE), **summary})
    report.write_text(search_dir / SEARCH_MD, search_markdown(summary, table, top))
    return SearchOutcome(search_dir, table, best, best_raw, summary)


def choice_label_value(study: Any, number: int, p: Param) -> Any:
    """The value Optuna stored for parameter ``p`` of trial ``number``."""
    return study.trials[number].params[p.path]


def clean_row(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def search_markdown(summary: dict[str, Any], table: pd.DataFrame, top: pd.DataFrame) -> str:
    """``search.md``: the best trial, the set tied with it, packing and racing."""
    m = summary["metric"]
    lines = [f"# {summary['name']} — search ({summary['direction']} {m})", ""]
    best = summary.get("best")
    if best:
        lines += [
            f"**Best: trial {int(best['trial'])}, {m} {f4(best[f'{m}_mean'])} "
            f"({best.get('interval') or 'interval'} {f4(best.get(f'{m}_ci_low'))} to "
            f"{f4(best.get(f'{m}_ci_high'))}, "
            "corrected for correlated folds).** This score is optimistic: it is the best of many; "
            "`evaluation.outer` gives an honest estimate of the search procedure.",
            "",
            f"Cannot be told apart from the best: trials {', '.join(map(str, summary['tied_with_best']))} "
            f"({summary['tied_method']}).",
            "",
        ]
    t = summary["trials"]
    pk = summary["packing"]
    lines += [
        f"Trials: {t.get('finished', 0)} finished, {t.get('stopped', 0)} stopped by racing, "
        f"{t.get('failed', 0)} failed, {t.get('interrupted', 0)} interrupted (re-run).",
        f"Programs run: {pk['programs']} for {pk['models']} models "
        f"({pk['models_per_program']['mean']:.1f} models per program, min {pk['models_per_program']['min']}, "
        f"max {pk['models_per_program']['max']}).",
        f"Models trained: {summary['models_trained']} of {summary['models_without_racing']} without racing "
        f"({summary['racing_saved']:.0%} saved).",
        "",
    ]
    stopped = table[table["status"] == "stopped"] if not table.empty else table
    if not stopped.empty:
        lines += ["Stopped by racing:", ""]
        lines += [f"- trial {int(r['trial'])}: {r['stopped']}" for _, r in stopped.iterrows()]
        lines.append("")
    if summary.get("importance"):
        lines += ["| parameter | importance (Optuna fANOVA) |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in summary["importance"].items()]
        lines.append("")
    if not top.empty:
        lines += [
            f"Each trial against the best: corrected paired t-test; p adjusted over all pairs "
            f"({top.attrs.get('procedure', 'Holm')}); the difference's interval is not adjusted.",
            "",
            "| trial | mean | diff to best | diff low | diff high | p | p (adjusted) | tied |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, r in top.iterrows():
            lines.append(
                f"| {int(r['trial'])} | {r['mean']:.4f} | {f4(r['diff'])} | {f4(r['ci_low'])} | {f4(r['ci_high'])} | "
                f"{f4(r['p'])} | {f4(r['p_holm'])} | {'yes' if r['tied_with_best'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def f4(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4f}"
