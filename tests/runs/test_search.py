"""`dlrun search`: the search space in the spec, Optuna ask-and-tell with a journal, resume, racing,
the top-trial comparison and nested cross-validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_main, tiny_spec, write_spec

from dlrun.errors import SpecError
from dlrun.spec.schema import load_spec, validate
from dlrun.spec.search_space import parse_space
from dlrun.store import io as report

LR = "compile.optimizer.SGD.learning_rate"


def search_spec(**search: Any) -> dict[str, Any]:
    """A tiny cv spec (2 folds, 2 epochs) with a search over the learning rate and the width."""
    raw = tiny_spec(
        mode="kfold", epochs=2, evaluation={"folds": 2}, compile={"optimizer": {"SGD": {"learning_rate": 0.05}}}
    )
    raw["search"] = {
        LR: {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "model.layers[0].Dense.units": {"type": "categorical", "choices": [4, 8]},
        "trials": 2,
        "sampler": "random",
        **search,
    }
    return raw


# ----------------------------------------------------------------------------- the spec
@pytest.mark.parametrize(
    ("entry_path", "entry", "expected"),
    [
        (LR, {"type": "float", "low": 0.0, "high": 0.3, "log": True}, f"search.{LR}.low: must be > 0 with log: true"),
        (LR, {"type": "float", "low": 0.3, "high": 0.1}, "low must be below high"),
        (LR, {"type": "flaot", "low": 0.1, "high": 0.3}, "(did you mean 'float'?)"),
        (LR, {"type": "float", "low": 0.1, "high": 0.3, "choices": [1]}, f"search.{LR}.choices: is not a field"),
        (
            "training.epoch",
            {"type": "int", "low": 2, "high": 4},
            "unknown key 'epoch' in training (did you mean 'epochs'?)",
        ),
        ("compile.optimizer.SGD.momentun", {"type": "float", "low": 0, "high": 0.9}, "did you mean"),
        ("model.layers[7].Dense.units", {"type": "int", "low": 2, "high": 4}, "index [7] is out of range"),
        ("data.max_rows", {"type": "int", "low": 20, "high": 40}, "'data' cannot be searched"),
        ("training.batch_size", {"type": "int", "low": -4, "high": 8}, "value -4 makes the spec invalid"),
        ("model.layers[0]", {"type": "categorical", "choices": []}, "must be a non-empty list"),
    ],
)
def test_search_entries_are_validated_with_dotted_paths(entry_path: str, entry: dict, expected: str) -> None:
    raw = tiny_spec(mode="kfold", compile={"optimizer": {"SGD": {"learning_rate": 0.05, "momentum": 0.5}}})
    raw["search"] = {entry_path: entry}
    with pytest.raises(SpecError) as info:
        validate(raw)
    assert expected in str(info.value)


def test_search_settings_typos_and_outer_without_search() -> None:
    raw = search_spec(trails=3)
    with pytest.raises(SpecError, match=r"search.trails: unknown key 'trails' \(did you mean 'trials'\?\)"):
        validate(raw)
    raw = tiny_spec(mode="kfold", evaluation={"outer": {"folds": 3}})
    with pytest.raises(SpecError, match=r"evaluation\.outer: nested cross-validation runs around a search"):
        validate(raw)
    raw = search_spec(sampler="grid")
    with pytest.raises(SpecError, match="sampler grid needs a step"):
        validate(raw)


def test_flat_entries_and_space_mapping_are_the_same() -> None:
    flat = validate(search_spec())
    nested = search_spec()
    entries = {k: nested["search"].pop(k) for k in [LR, "model.layers[0].Dense.units"]}
    nested["search"]["space"] = entries
    assert validate(nested).search == flat.search
    assert list(flat.search.space) == [LR, "model.layers[0].Dense.units"]


def test_whole_layer_choices_map_back_from_optuna_labels() -> None:
    choices = [{"Dropout": {"rate": 0.2}}, {"GaussianNoise": {"stddev": 0.1}}]
    (param,) = parse_space({"model.layers[1]": {"type": "categorical", "choices": choices}})
    labels = param.labels
    assert all(isinstance(label, str) for label in labels)
    assert param.value_of(labels[1]) == {"GaussianNoise": {"stddev": 0.1}}
    (grid,) = parse_space({"training.batch_size": {"type": "int", "low": 8, "high": 32, "step": 8}})
    assert grid.grid() == [8, 16, 24, 32]
    assert grid.distribution().step == 8


# ----------------------------------------------------------------------------- the command
def test_search_runs_writes_outputs_and_resumes_without_repeating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_spec(tmp_path / "s.yaml", search_spec(batch=2))
    out = tmp_path / "search"
    code, stdout, err = run_main(["search", cfg, "--out", out], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "trials.csv")
    assert list(table["status"]) == ["finished", "finished"]
    for col in (LR, "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high", "epochs_run"):
        assert col in table.columns and table[col].notna().all()
    trial = out / "trials" / "trial_0000"
    for name in (report.SCORES, report.FOLDS, report.SUMMARY_JSON, report.HISTORY, "config.yaml"):
        assert (trial / name).exists(), name
    assert {"optimization_history.png", f"param_{LR}.png"} <= {p.name for p in (out / "plots").glob("*.png")}
    best = load_spec(out / "best_config.yaml")
    assert best.search is None and best.is_cv
    summary = json.loads((out / "search.json").read_text())
    assert summary["packing"]["models"] == 4 and summary["packing"]["programs"] >= 1
    assert "program(s) for 4 models" in stdout and "best: trial" in stdout
    # more trials on resume: the finished ones are kept, one new trial runs
    mtime = (trial / report.SUMMARY_JSON).stat().st_mtime
    code, stdout, err = run_main(["search", cfg, "--out", out, "--resume", "--trials", "3"], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "trials.csv")
    assert list(table["trial"]) == [0, 1, 2] and set(table["status"]) == {"finished"}
    assert (trial / report.SUMMARY_JSON).stat().st_mtime == mtime
    # without --resume the folder is refused
    code, _, err = run_main(["search", cfg, "--out", out], capsys)
    assert code == 2 and "--resume" in err


def test_helpers_finish_every_trial_folder_and_resume_rewrites_an_unfinished_one(tmp_path: Path) -> None:
    from dlrun.runs.finish import Finisher
    from dlrun.runs.search import run_search

    raw = search_spec(batch=1)
    out = tmp_path / "search"
    with Finisher(workers=1) as helpers:
        run_search(raw, out, finisher=helpers)
    for number in (0, 1):
        trial = out / "trials" / f"trial_{number:04d}"
        assert json.loads((trial / report.STATE).read_text())["status"] == "finished"
        assert (trial / "report.html").exists() and len(list((trial / "plots").glob("learning_curve_*.png"))) == 2
    # killed while a helper drew trial 1: told to the sampler, but its plots and page are missing
    trial = out / "trials" / "trial_0001"
    for png in (trial / "plots").glob("*.png"):
        png.unlink()
    (trial / "report.html").unlink()
    state = json.loads((trial / report.STATE).read_text())
    (trial / report.STATE).write_text(json.dumps({**state, "status": "running"}))
    parts = {p.name: p.stat().st_mtime_ns for p in (trial / report.PARTS).iterdir()}
    run_search(raw, out)
    assert json.loads((trial / report.STATE).read_text())["status"] == "finished"
    assert (trial / "report.html").exists() and len(list((trial / "plots").glob("*.png"))) >= 4
    assert {p.name: p.stat().st_mtime_ns for p in (trial / report.PARTS).iterdir()} == parts  # not trained again
    assert list(pd.read_csv(out / "trials.csv")["trial"]) == [0, 1]


def test_a_trial_asked_but_not_told_is_asked_again_with_its_folds(tmp_path: Path) -> None:
    from dlrun.reporting import NullReporter
    from dlrun.runs.search.study import open_study, recover, trial_dir
    from dlrun.spec.schema import SearchSpec

    settings = SearchSpec(space={LR: {"type": "float", "low": 0.01, "high": 0.1}}, sampler="random")
    params = parse_space(settings.space)
    study = open_study(tmp_path, settings, params, 1, "maximize")
    trial = study.ask({p.path: p.distribution() for p in params})
    (trial_dir(tmp_path, trial.number) / report.PARTS).mkdir(parents=True)
    # the process dies here; a new one opens the journal
    study = open_study(tmp_path, settings, params, 1, "maximize")
    recover(study, tmp_path, "accuracy", NullReporter())
    first, retry = study.get_trials()
    assert first.state.name == "FAIL" and "error" not in first.user_attrs
    assert retry.state.name == "WAITING" and retry.user_attrs["retry_of"] == 0
    again = study.ask({p.path: p.distribution() for p in params})
    assert again.params == first.params


def _fake_trial(root: Path, number: int, scores: list[float]) -> Path:
    path = root / "trials" / f"trial_{number:04d}"
    path.mkdir(parents=True)
    pd.DataFrame({"repeat": 0, "fold": range(len(scores)), "accuracy": scores}).to_csv(path / report.SCORES)
    return path


def test_racing_stops_a_trial_worse_by_the_corrected_interval_only(tmp_path: Path) -> None:
    import optuna

    from dlrun.protocol.splits import Fold
    from dlrun.runs.packing import TrialWork
    from dlrun.runs.search.racing import race

    rng = np.random.default_rng(0)
    good = 0.9 + rng.normal(0, 0.02, 10)
    folds = [Fold(0, i, i, np.arange(90), np.array([], int), np.arange(10)) for i in range(10)]
    stages = [folds[:5], folds[5:]]
    works = [
        TrialWork(0, {}, None, None, _fake_trial(tmp_path, 0, list(good))),  # type: ignore[arg-type]
        TrialWork(1, {}, None, None, _fake_trial(tmp_path, 1, list(good - 0.3))),  # type: ignore[arg-type]
        TrialWork(2, {}, None, None, _fake_trial(tmp_path, 2, list(good - 0.005 + rng.normal(0, 0.02, 10)))),  # type: ignore[arg-type]
    ]
    study = optuna.create_study(direction="maximize")
    stopped = race(study, works, tmp_path, "accuracy", True, 90, 10, 0.95, 0, stages)
    assert [w.number for w, _ in stopped] == [1]
    assert "after 5 of 10 folds" in stopped[0][1] and "against trial 0" in stopped[0][1]


def test_top_trials_name_those_tied_with_the_best(tmp_path: Path) -> None:
    from dlrun.runs.search import compare_top

    rng = np.random.default_rng(1)
    base = 0.85 + rng.normal(0, 0.03, 10)
    means = {0: base, 1: base - 0.002 + rng.normal(0, 0.01, 10), 2: base - 0.25 + rng.normal(0, 0.01, 10)}
    for n, s in means.items():
        _fake_trial(tmp_path, n, list(s))
    table = pd.DataFrame(
        {"trial": list(means), "status": "finished", "accuracy_mean": [float(np.mean(s)) for s in means.values()]}
    )
    top = compare_top(table, tmp_path, "accuracy", True, 10, 90, 10, 0.95)
    tied = set(top.loc[top["tied_with_best"], "trial"])
    assert 0 in tied and 2 not in tied
    assert top["p_holm"].dropna().ge(top["p"].dropna()).all()


@pytest.mark.slow
def test_nested_search_reports_outer_estimate_inner_best_and_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = search_spec(trials=1)
    raw["evaluation"]["outer"] = {"folds": 2}
    raw["training"]["epochs"] = 1
    cfg = write_spec(tmp_path / "n.yaml", raw)
    out = tmp_path / "nested"
    code, stdout, err = run_main(["search", cfg, "--out", out], capsys)
    assert code == 0, err
    nested = json.loads((out / "nested.json").read_text())
    est = nested["outer"]["estimate"]
    assert est["n"] == 2 and nested["gap"] == pytest.approx(nested["inner_best_mean"] - est["mean"])
    assert (out / "outer" / "r0_f0" / "trials.csv").exists() and (out / "outer" / "refit" / report.SCORES).exists()
    assert "honest estimate of the search procedure" in stdout
    assert yaml.safe_load((out / "outer" / "r0_f1" / "best_config.yaml").read_text())["evaluation"].get("outer") is None


def test_racing_stages_record_the_stopped_trial_and_what_it_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrun.runs import search
    from dlrun.runs.search import optimize

    def stop_all_but_first(study: Any, live: list, *args: Any) -> list:
        return [(w, "stopped for the test") for w in live[1:]]

    monkeypatch.setattr(optimize, "race", stop_all_but_first)
    raw = search_spec(batch=2, racing=True)
    raw["evaluation"]["folds"] = 4
    raw["training"]["epochs"] = 1
    outcome = search.run_search(raw, tmp_path / "race")
    table = outcome.table.set_index("trial")
    assert list(table["status"]) == ["finished", "stopped"]
    assert table.loc[1, "stopped"] == "stopped for the test" and table.loc[1, "n_folds"] == 2
    assert table.loc[0, "n_folds"] == 4
    assert outcome.summary["models_trained"] == 6 and outcome.summary["models_without_racing"] == 8
    stopped = json.loads((tmp_path / "race" / "trials" / "trial_0001" / report.SUMMARY_JSON).read_text())
    assert stopped["n_models"] == 2


def test_trials_differing_in_optimizer_scalars_train_as_one_program_with_cv_scores(tmp_path: Path) -> None:
    from dlrun.runs import search
    from dlrun.runs.cv import run_cv

    raw = search_spec(batch=2)
    del raw["search"]["model.layers[0].Dense.units"]
    outcome = search.run_search(raw, tmp_path / "s")
    engines = {
        json.loads((tmp_path / "s" / p / report.SUMMARY_JSON).read_text())["engine"] for p in outcome.table["path"]
    }
    if engines != {"stacked"}:
        pytest.skip(f"trained by {engines}: the stacked engine does not run under this backend")
    assert outcome.summary["packing"] == {
        "programs": 1,
        "models": 4,
        "models_per_program": {"mean": 4.0, "min": 4, "max": 4},
    }
    # the shared program gives each trial exactly what its own cv run gives
    best = load_spec(tmp_path / "s" / "best_config.yaml")
    alone = run_cv(best, tmp_path / "alone")
    trial = tmp_path / "s" / outcome.table.set_index("trial").loc[int(outcome.best["trial"]), "path"]
    a = pd.read_csv(alone.path / report.SCORES)["accuracy"]
    b = pd.read_csv(trial / report.SCORES)["accuracy"]
    assert np.allclose(a, b)


def test_a_journal_cut_mid_append_is_repaired_on_open(tmp_path: Path) -> None:
    from dlrun.runs.search import JOURNAL
    from dlrun.runs.search.study import open_study
    from dlrun.spec.schema import SearchSpec

    settings = SearchSpec(space={LR: {"type": "float", "low": 0.01, "high": 0.1}}, sampler="random")
    params = parse_space(settings.space)
    study = open_study(tmp_path, settings, params, 1, "maximize")
    study.tell(study.ask({p.path: p.distribution() for p in params}), 0.5)
    with open(tmp_path / JOURNAL, "ab") as fh:
        fh.write(b'{"op_code": 4, "worker_id"')  # killed inside a write
    (tmp_path / f"{JOURNAL}.lock").write_text("")  # and holding Optuna's lock
    study = open_study(tmp_path, settings, params, 1, "maximize")
    study.tell(study.ask({p.path: p.distribution() for p in params}), 0.7)
    again = open_study(tmp_path, settings, params, 1, "maximize")
    assert [t.value for t in again.get_trials()] == [0.5, 0.7]


# ----------------------------------------------------------------------------- nested sweep
def test_a_sweep_with_outer_folds_is_a_grid_search(tmp_path: Path) -> None:
    from dlrun.errors import InputError
    from dlrun.runs.sweep import grid_as_search

    raw = tiny_spec(
        mode="kfold",
        epochs=1,
        evaluation={"folds": 2, "outer": {"folds": 2}},
        compile={"optimizer": {"SGD": {"learning_rate": 0.05}}},
    )
    raw["sweep"] = {"grid": {LR: [0.01, 0.1]}}
    cfg = Path(write_spec(tmp_path / "s.yaml", raw))
    nested = grid_as_search(cfg, [], ["model.layers[0].Dense.units=4,8,16"])
    assert nested is not None and "sweep" not in nested
    assert nested["search"] == {
        LR: {"type": "categorical", "choices": [0.01, 0.1]},
        "model.layers[0].Dense.units": {"type": "categorical", "choices": [4, 8, 16]},
        "trials": 6,  # every point of the grid, once
        "sampler": "grid",
    }
    assert validate(nested).search is not None
    assert grid_as_search(cfg, ["evaluation.outer=null"], []) is None  # no outer: a plain sweep
    with pytest.raises(InputError, match="has a search section and a sweep grid"):
        grid_as_search(Path(write_spec(tmp_path / "b.yaml", {**raw, "search": search_spec()["search"]})), [], [])


def test_dlrun_sweep_with_outer_folds_runs_nested_cv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI routes a sweep with evaluation.outer to nested CV with the grid as a grid search
    (run_nested itself is tested with a search above; here it is replaced, to keep the suite fast)."""
    import dlrun.runs.search as search_mod

    seen: dict[str, Any] = {}

    def fake_run_nested(raw: dict[str, Any], out_dir: Path, *args: Any, **kw: Any) -> dict[str, Any]:
        seen.update(raw=raw, out_dir=out_dir)
        return {"text": "honest estimate of the search procedure: (stub)"}

    monkeypatch.setattr(search_mod, "run_nested", fake_run_nested)
    raw = tiny_spec(
        mode="kfold",
        epochs=1,
        evaluation={"folds": 2, "outer": {"folds": 2}},
        compile={"optimizer": {"SGD": {"learning_rate": 0.05}}},
    )
    cfg = write_spec(tmp_path / "s.yaml", raw)
    out = tmp_path / "nested_sweep"
    code, stdout, err = run_main(["sweep", cfg, "--grid", f"{LR}=0.01,0.1", "--out", out], capsys)
    assert code == 0, err
    assert seen["out_dir"] == out and seen["raw"]["search"]["sampler"] == "grid"
    assert seen["raw"]["search"][LR]["choices"] == [0.01, 0.1]
    assert "nested sweep of 2 point(s)" in stdout and "honest estimate" in stdout
