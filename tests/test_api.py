"""The Python API (dlrun.run / load / compare), the executors it runs on, and the engine registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_main, tiny_spec, write_spec

import dlrun
from dlrun.errors import InputError, Interrupted, SpecError
from dlrun.execution.executors import LocalExecutor, Outcome, Resources, chunk_size, make_executor
from dlrun.store import layout


# ----------------------------------------------------------------------------- a failed start
def _width_found_late(units: int) -> dict[str, Any]:
    """A cv spec whose output width is checked only once the data is read (its task is inferred)."""
    raw = tiny_spec(mode="kfold", epochs=1, evaluation={"folds": 2})
    del raw["data"]["task"]
    raw["model"]["layers"][-1] = {"Dense": {"units": units, "activation": "sigmoid"}}
    return raw


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_whose_run_failed_before_training_takes_the_fixed_config(tmp_path: Path, resume: bool) -> None:
    from dlrun.reporting import NullReporter

    class Notes(NullReporter):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def note(self, text: str) -> None:
            self.lines.append(text)

    out = tmp_path / "run"
    with pytest.raises(SpecError, match="has 3 units"):
        dlrun.run(_width_found_late(3), out=out, command="cv", resume=resume)
    assert json.loads((out / layout.STATE).read_text())["status"] == "failed"  # the folder was made
    notes = Notes()
    result = dlrun.run(_width_found_late(1), out=out, command="cv", resume=resume, reporter=notes)
    assert result.summary["mode"] == "kfold" and len(result.scores) == 2
    assert any("failed before training anything" in n and "starting afresh" in n for n in notes.lines)
    events = [json.loads(line)["event"] for line in (out / layout.PROGRESS).read_text().splitlines()]
    assert events[:3] == ["start", "failed", "start"]  # the failed attempt stays in the log
    # a finished run is never replaced that way
    with pytest.raises(InputError, match="already holds a run"):
        dlrun.run(_width_found_late(1), out=out, command="cv")


# ----------------------------------------------------------------------------- executors
def test_local_executor_streams_values_and_reports_a_failed_job() -> None:
    taken: list[int] = []

    def jobs() -> Any:
        for j in (1, 2, 3):
            taken.append(j)
            yield j

    def fn(job: int) -> Any:
        if job == 2:
            raise ValueError("two is bad")
        yield job * 10
        yield job * 10 + 1

    stream = LocalExecutor().map(fn, jobs())
    first = next(stream)
    assert (first.job, first.value, first.ok) == (1, 10, True)
    assert taken == [1]  # jobs are taken lazily, one when the previous is done
    rest = list(stream)
    assert [(o.job, o.value) for o in rest if o.ok] == [(1, 11), (3, 30), (3, 31)]
    failed = [o for o in rest if not o.ok]
    assert len(failed) == 1 and failed[0].job == 2
    assert isinstance(failed[0].error, ValueError) and failed[0].reason == "ValueError: two is bad"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), Interrupted("stop")])
def test_local_executor_lets_a_stop_through(exc: BaseException) -> None:
    def fn(job: int) -> Any:
        raise exc
        yield  # pragma: no cover

    with pytest.raises(type(exc)):
        list(LocalExecutor().map(fn, [1, 2]))


def test_outcome_and_executor_choice() -> None:
    assert Outcome("j", 1).ok and not Outcome("j", error=RuntimeError()).ok

    class Runtime:
        executor, address, num_cpus, num_gpus, max_retries = "local", None, 2.0, 0.5, 1

    assert isinstance(make_executor(None, Runtime()), LocalExecutor)
    assert make_executor("ray", Runtime()).resources == Resources(2.0, 0.5, 1)  # type: ignore[attr-defined]
    mine = LocalExecutor()
    assert make_executor(mine, Runtime()) is mine
    with pytest.raises(InputError, match="executor must be one of local, ray, got 'dask'"):
        make_executor("dask", Runtime())


@pytest.mark.parametrize(
    ("n", "slots", "cap", "size"), [(10, 4, None, 3), (10, 4, 2, 2), (0, 4, None, 1), (3, 8, None, 1)]
)
def test_chunk_size(n: int, slots: int, cap: int | None, size: int) -> None:
    assert chunk_size(n, slots, cap) == size


# ----------------------------------------------------------------------------- engines
def test_engine_registry_builds_engines_that_follow_the_protocol() -> None:
    from dlrun.engines.base import AUTO_ORDER, Engine, engine_names, make_engine, unsupported_reason
    from dlrun.spec.schema import validate

    assert set(AUTO_ORDER) <= set(engine_names())
    spec = validate(tiny_spec())
    assert unsupported_reason("sequential", spec, "binary") is None
    engine = make_engine("sequential", spec, "binary", (6,), 1)
    assert isinstance(engine, Engine)
    assert engine.name == "sequential" and engine.models_per_chunk([]) == 1
    with pytest.raises(KeyError):
        make_engine("nope", spec, "binary", (6,), 1)


# ----------------------------------------------------------------------------- run and load
def test_run_returns_the_finished_run_prints_nothing_and_matches_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_spec(epochs=2)
    result = dlrun.run(raw, out=tmp_path / "run", overrides=["training.batch_size=32"])
    assert capsys.readouterr() == ("", "")
    assert result.path == tmp_path / "run"
    assert result.summary["command"] == "train" and result.summary["name"] == "tiny_binary"
    assert result.headline == result.summary["headline"]["text"] and result.headline
    assert list(result.history["epoch"]) == [1, 2]
    assert len(result.scores) == 1 and {"accuracy", "train_accuracy", "baseline_accuracy"} <= set(result.scores)
    assert result.estimate().kind == "single"
    again = dlrun.load(result.path)
    assert again.summary == result.summary and again.headline == result.headline
    pd.testing.assert_frame_equal(again.history, result.history)
    # the same spec again into the same folder: refused unless resumed
    with pytest.raises(InputError, match="already holds a run"):
        dlrun.run(raw, out=tmp_path / "run", overrides=["training.batch_size=32"])
    resumed = dlrun.run(raw, out=tmp_path / "run", overrides=["training.batch_size=32"], resume=True)
    assert resumed.summary == result.summary  # finished: nothing to do
    # `dlrun train` on the same spec prints the same headline sentence
    path = write_spec(tmp_path / "s.yaml", raw)
    code, stdout, err = run_main(["train", path, "--out", tmp_path / "cli", "--set", "training.batch_size=32"], capsys)
    assert code == 0, err
    assert result.headline in stdout


def test_errors_are_the_cli_exception_classes(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"training\.epochs"):
        dlrun.run(tiny_spec(), out=tmp_path / "bad", overrides=["training.epochs=-1"])
    assert not (tmp_path / "bad").exists()  # nothing is made for a spec that does not validate
    with pytest.raises(InputError, match="--resume needs --out"):
        dlrun.run(tiny_spec(), resume=True)
    with pytest.raises(InputError, match=layout.SUMMARY_JSON):
        dlrun.load(tmp_path)
    with pytest.raises(InputError, match="command must be train, cv or None"):
        dlrun.run(tiny_spec(), out=tmp_path / "x", command="sweep")


CV: dict[str, Any] = {"mode": "kfold", "epochs": 2, "evaluation": {"folds": 3}, "runtime": {"engine": "sequential"}}


@pytest.fixture(scope="module")
def two_cv_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cv")
    raw = tiny_spec(**CV)
    a = dlrun.run(raw, out=root / "a").path
    b = dlrun.run(raw, out=root / "b", overrides=["training.batch_size=32", "name=tiny_b"]).path
    return a, b


def test_cv_run_has_fold_scores_and_compare_tests_the_pair(two_cv_runs: tuple[Path, Path]) -> None:
    a, b = two_cv_runs
    ra = dlrun.load(a)
    assert len(ra.scores) == 3 and set(ra.history["fold"]) == {0, 1, 2}
    assert ra.estimate().n == 3
    c = dlrun.compare(a, b)
    assert isinstance(c, dlrun.Comparison)
    assert c.metric == "accuracy" and len(c.table) == 2
    assert len(c.tests) == 1 and bool(c.tests.loc[0, "paired"])  # same seed: identical splits
    assert c.verdict and "tiny_b" in c.verdict


def test_dlrun_compare_is_both_the_function_and_the_module() -> None:
    from dlrun.evaluation import compare as cmp

    assert callable(dlrun.compare)
    assert callable(cmp.expand_run_dirs) and callable(cmp.load_run)


# ----------------------------------------------------------------------------- the remote path without Ray
class PickledExecutor(LocalExecutor):
    """Runs jobs here, but as Ray would: the function and each job cross a pickle, no callback or
    file of this process reaches them, and the driver writes every file."""

    name = "pickled"
    in_process = False
    where = " elsewhere"

    def slots(self, resources: Resources) -> int:
        return 2

    def sink(self, callback: Any) -> Any:
        return None

    def driver_runtime(self, runtime: Any) -> Any:
        return runtime

    def map(self, fn: Any, jobs: Any, *, resources: Any = None, window: int | None = None) -> Any:
        import pickle

        for job in jobs:
            far_fn, far_job = pickle.loads(pickle.dumps((fn, job)))
            try:
                values = [pickle.loads(pickle.dumps(v)) for v in far_fn(far_job)]
            except Exception as exc:
                yield Outcome(job, error=exc, reason=str(exc))
                continue
            for value in values:
                yield Outcome(job, value)


def _tables(path: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in (layout.SCORES, layout.HISTORY, layout.PREDICTIONS, layout.FOLDS):
        df = pd.read_csv(path / name)
        out[name] = df.drop(columns=[c for c in ("seconds", "duration_s", "train_s", "path") if c in df])
    return out


def test_cv_on_a_remote_executor_writes_what_a_local_run_writes(tmp_path: Path, two_cv_runs: tuple[Path, Path]) -> None:
    from dlrun.api import load_config
    from dlrun.runs.cv import run_cv

    local = two_cv_runs[0]
    spec = load_config(tiny_spec(**CV), ["runtime.max_models_per_chunk=2"])
    remote = run_cv(spec, tmp_path / "remote", executor=PickledExecutor())  # 2 jobs: folds 0-1, fold 2
    for name, df in _tables(local).items():
        pd.testing.assert_frame_equal(_tables(tmp_path / "remote")[name], df, obj=name)
    assert remote.summary["n_models"] == 3 and remote.engine == "sequential"
    assert json.loads((tmp_path / "remote" / layout.STATE).read_text())["executor"] == "pickled"


def test_sweep_on_a_remote_executor_ships_files_back_and_records_a_failure(tmp_path: Path) -> None:
    from dlrun.runs.sweep import expand, run_sweep

    raw = tiny_spec(epochs=1)
    path = write_spec(tmp_path / "s.yaml", raw)
    _, points = expand(path, [], [f"data.source={tmp_path / 'missing.csv'},make_classification"])
    # the CSV that is not there fails its point; the other point runs; the driver writes its files
    table = run_sweep(points[0].spec, points, tmp_path / "sweep", PickledExecutor())
    assert list(table["status"]) == ["failed", "finished"]
    assert "missing.csv" in str(table.loc[0, "error"])
    done = tmp_path / "sweep" / points[1].folder
    assert (done / layout.SUMMARY_JSON).is_file() and (done / layout.MODEL).is_file()
    assert json.loads((tmp_path / "sweep" / points[0].folder / layout.STATE).read_text())["status"] == "failed"


# ----------------------------------------------------------------------------- summaries
@pytest.mark.parametrize(
    ("block", "kind", "mean"),
    [
        (
            {"folds": {"mean": 0.8, "n": 10}, "corrected": {"mean": 0.81, "n": 10}, "headline": "corrected"},
            "corrected",
            0.81,
        ),
        ({"folds": {"mean": 0.8, "n": 1}, "corrected": None, "headline": "corrected"}, "corrected", 0.8),
        ({"folds": {"mean": 0.7, "n": 3}}, "folds", 0.7),
        (0.93, "single", 0.93),
    ],
)
def test_one_accessor_reads_every_kind_of_headline(block: Any, kind: str, mean: float) -> None:
    from dlrun.evaluation.summary import Summary, headline_block

    summary = Summary({"main_metric": "accuracy", "metrics": {"accuracy": block}, "headline": {"text": "t"}})
    est = summary.estimate()
    assert (est.kind, est.mean) == (kind, mean)
    assert summary.headline == "t"
    assert headline_block(block).get("mean") == (None if kind == "single" else mean)
    with pytest.raises(KeyError):
        summary.estimate("roc_auc")


def test_a_config_is_a_path_a_dict_or_a_spec(tmp_path: Path) -> None:
    from dlrun.api import load_config
    from dlrun.spec.schema import validate

    raw = tiny_spec()
    path = write_spec(tmp_path / "s.yaml", raw)
    for config in (path, str(path), raw, validate(raw)):
        spec = load_config(config, ["training.epochs=7"])
        assert spec.training.epochs == 7 and spec.name == "tiny_binary"
    assert load_config(validate(raw)).training.epochs == raw["training"]["epochs"]
