"""Trustworthy run folders: no pickles, checksummed parts and checkpoints, fingerprints, locks,
signals, temporary files, file modes and status (issue 13, and item 5 of issue 10)."""

from __future__ import annotations

import json
import pickle
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_main, tiny_spec, write_spec

from dlrun.errors import CorruptFileError, InputError
from dlrun.store import atomic, fingerprint, layout, signals
from dlrun.store import io as report
from dlrun.store.lock import RunLock
from dlrun.store.run_folder import RunFolder, resume_command

TIMING = ["seconds"]


# ----------------------------------------------------------------------------- shared runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished cv run (sequential: one part file per fold) and one finished train run."""
    root = tmp_path_factory.mktemp("runs")
    cv_spec = write_spec(
        root / "cv.yaml",
        tiny_spec(mode="kfold", epochs=2, evaluation={"folds": 3}, runtime={"engine": "sequential"}),
    )
    train_spec = write_spec(root / "train.yaml", tiny_spec(mode="split", epochs=2))
    from dlrun.cli.app import main

    for args in (["cv", cv_spec, "--out", root / "cv"], ["train", train_spec, "--out", root / "train"]):
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        assert info.value.code in (0, None)
    return {"root": root, "cv": root / "cv", "train": root / "train", "cv_spec": cv_spec, "train_spec": train_spec}


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(layout.LOCK))
    return dest


class _Payload:
    """Pickles to a call of ``open(marker, "w")``: loading it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _malicious(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


# ----------------------------------------------------------------------------- sealed files
def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (lambda b: _flip(b, 10), "fails its checksum"),
        (lambda b: _flip(b, len(b) - 5), "fails its checksum"),
        (lambda b: b[: len(b) // 2], "no checksum line"),
        (lambda b: b"", "is empty"),
        (lambda b: pickle.dumps({"a": 1}), "is a pickle"),
    ],
    ids=["payload-bit", "checksum-bit", "truncated", "empty", "pickle"],
)
def test_a_damaged_sealed_file_is_refused_by_name(tmp_path: Path, damage: Any, expect: str) -> None:
    path = tmp_path / "parts" / "r0000_f0000.json"
    report.write_sealed(path, b'{"parts": [1, 2, 3]}')
    assert report.read_sealed(path) == b'{"parts": [1, 2, 3]}'
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptFileError, match=expect) as info:
        report.read_sealed(path)
    assert str(path) in str(info.value)


def test_a_part_round_trips_exactly() -> None:
    preds = pd.DataFrame(
        {
            "repeat": np.zeros(3, int),
            "row": np.array([4, 7, 9]),
            "true": np.array(["'1'", "'-1'", "'1'"], dtype=object),
            "pred": np.array([True, False, True]),
            "proba_a": np.array([0.1 + 1e-17, np.nan, np.inf]),
        }
    )
    hist = pd.DataFrame({"epoch": [1, 2], "loss": [0.6931471805599453, 1e-300]})
    part = {"repeat": 0, "fold": 2, "scores": {"accuracy": np.float64(1 / 3), "n": np.int64(5)}, "history": hist}
    part["predictions"] = preds
    back = report.decode_part(json.loads(json.dumps(report.encode_part(part))))
    pd.testing.assert_frame_equal(back["predictions"], preds)
    pd.testing.assert_frame_equal(back["history"], hist)
    assert back["scores"] == {"accuracy": 1 / 3, "n": 5}


# ----------------------------------------------------------------------------- no pickles
def test_no_module_loads_a_pickle() -> None:
    root = Path(__file__).resolve().parents[2] / "dlrun"
    for path in root.rglob("*.py"):
        text = path.read_text()
        for bad in ("pickle.load", "read_pickle", "allow_pickle=True", "joblib.load", "pd.read_pickle"):
            assert bad not in text, f"{path.name} uses {bad}"


def test_planted_pickles_are_refused_and_never_run(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    marker = tmp_path / "PWNED"
    payload = _malicious(marker)
    train = _copy(runs["train"], tmp_path / "train")
    (train / "preprocessor.pkl").write_bytes(payload)  # an older dlrun's name
    (train / layout.CHECKPOINT).mkdir(exist_ok=True)
    (train / layout.CHECKPOINT / "state.pkl").write_bytes(payload)
    cv = _copy(runs["cv"], tmp_path / "cv")
    (cv / layout.PARTS / "r0000_f0000.pkl").write_bytes(payload)
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"x{i}" for i in range(6)) + "\n" + ",".join(["0.1"] * 6) + "\n")

    code, _, err = run_main(["predict", train, rows], capsys)
    assert code == 2 and "preprocessor.pkl" in err and "pickle" in err
    code, _, err = run_main(["train", runs["train_spec"], "--out", train, "--resume"], capsys)
    assert code == 2 and "pickle" in err
    code, _, err = run_main(["cv", runs["cv_spec"], "--out", cv, "--resume"], capsys)
    assert code == 2 and "r0000_f0000.pkl" in err
    run_main(["status", tmp_path], capsys)
    run_main(["compare", cv, runs["cv"]], capsys)
    run_main(["runs", tmp_path], capsys)
    assert not marker.exists()

    # a pickle under the new names is only a damaged file: refused (predict) or moved aside (parts)
    train2 = _copy(runs["train"], tmp_path / "train2")
    (train2 / layout.PREPROCESSOR).write_bytes(payload)
    code, _, err = run_main(["predict", train2, rows], capsys)
    assert code == 2 and layout.PREPROCESSOR in err
    writer = report.RunWriter(_copy(runs["cv"], tmp_path / "cv2"))
    writer.part_path(0, 0).write_bytes(payload)
    notes: list[str] = []
    assert (0, 0) not in writer.read_parts(on_corrupt=notes.append)
    assert notes and "r0000_f0000.json" in notes[0]
    assert not marker.exists()


def test_predict_refuses_a_changed_model(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    train = _copy(runs["train"], tmp_path / "train")
    model = train / layout.MODEL
    model.write_bytes(_flip(model.read_bytes(), len(model.read_bytes()) // 2))
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"x{i}" for i in range(6)) + "\n" + ",".join(["0.1"] * 6) + "\n")
    code, _, err = run_main(["predict", train, rows], capsys)
    assert code == 2 and "model.keras" in err and "checksum" in err


def test_the_saved_preprocessing_loads_without_pickle(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"x{i}" for i in range(6)) + "\n" + ",".join(["0.1"] * 6) + "\n" + "1,2,3,4,5,6\n")
    code, out, err = run_main(["predict", runs["train"], rows], capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("pred,proba_")
    rows.write_text(",".join(f"x{i}" for i in range(6)) + "\n" + "0.1,abc,3,4,5,6\n")
    code, _, err = run_main(["predict", runs["train"], rows], capsys)
    assert code == 2 and "x1" in err and "abc" in err


# ----------------------------------------------------------------------------- integrity on resume
def test_a_flipped_part_retrains_its_fold_and_the_run_ends_identical(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    cv = _copy(runs["cv"], tmp_path / "cv")
    part = report.RunWriter(cv).part_path(0, 1)
    data = part.read_bytes()
    part.write_bytes(_flip(data, len(data) // 3))
    (cv / layout.SCORES).unlink()
    code, out, err = run_main(["cv", runs["cv_spec"], "--out", cv, "--resume"], capsys)
    assert code == 0, err
    assert "r0000_f0001.json" in out + err and "fails its checksum" in out + err
    assert (part.parent / (part.name + report.CORRUPT_SUFFIX)).exists()
    a = pd.read_csv(cv / layout.SCORES).drop(columns=TIMING)
    b = pd.read_csv(runs["cv"] / layout.SCORES).drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(cv / layout.HISTORY), pd.read_csv(runs["cv"] / layout.HISTORY))


def test_a_damaged_checkpoint_is_moved_aside_and_training_restarts(tmp_path: Path) -> None:
    from dlrun.engines.base import FitJob
    from dlrun.store.checkpoint import TrainCheckpoint, encode_checkpoint

    writer = report.RunWriter(tmp_path / "run")
    notes: list[str] = []
    ckpt = TrainCheckpoint(writer, 5, note=notes.append)
    state = {
        "epoch": 5,
        "history": {"loss": [0.9, 0.8, 0.7, 0.6, 0.5]},
        "model_variables": [np.ones((3, 2), np.float32), np.array([1, 2], np.uint32)],
        "optimizer_variables": [np.zeros(2, np.float32)],
    }
    report.write_sealed(ckpt.path, encode_checkpoint(state))
    job = FitJob(0, 0, 1, np.zeros((2, 1), np.float32), np.zeros(2, np.float32))
    assert ckpt.restore_into(job) and job.initial_epoch == 5
    assert ckpt.saved is not None and ckpt.saved["history"] == state["history"]
    np.testing.assert_array_equal(ckpt.saved["model_variables"][1], state["model_variables"][1])

    data = ckpt.path.read_bytes()
    ckpt.path.write_bytes(_flip(data, 100))
    fresh = TrainCheckpoint(writer, 5, note=notes.append)
    job = FitJob(0, 0, 1, np.zeros((2, 1), np.float32), np.zeros(2, np.float32))
    assert not fresh.restore_into(job) and job.initial_epoch == 0
    assert notes and "state.npz" in notes[0]
    assert not ckpt.path.exists() and ckpt.path.with_name("state.npz.corrupt").exists()


def test_a_truncated_state_json_keeps_the_run_visible(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    from dlrun.store.index import cleanable, find_runs

    cv = _copy(runs["cv"], tmp_path / "cv")
    (cv / layout.STATE).write_text('{"status": "runn')
    found = find_runs(tmp_path)
    assert [r.path for r in found] == [cv]
    assert found[0].status == "dead" and cleanable(found)
    code, out, _ = run_main(["status", tmp_path], capsys)
    assert code == 0 and "dead" in out
    assert RunFolder(cv).read_state() == {}


# ----------------------------------------------------------------------------- fingerprint
def test_resuming_with_another_epoch_count_is_refused(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    cv = _copy(runs["cv"], tmp_path / "cv")
    (cv / layout.STATE).write_text(json.dumps({**json.loads((cv / layout.STATE).read_text()), "status": "running"}))
    before = {p.name: p.read_bytes() for p in cv.rglob("*") if p.is_file()}
    code, _, err = run_main(["cv", runs["cv_spec"], "--out", cv, "--resume", "--set", "training.epochs=3"], capsys)
    assert code == 2
    assert "training.epochs: 2 → 3" in err and len(err.strip().splitlines()) == 1
    after = {p.name: p.read_bytes() for p in cv.rglob("*") if p.is_file() and p.name != layout.LOCK}
    assert after == before


def test_a_finished_train_run_resumed_with_another_config_is_refused(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    train = _copy(runs["train"], tmp_path / "train")
    config = (train / layout.CONFIG).read_bytes()
    code, _, err = run_main(
        ["train", runs["train_spec"], "--out", train, "--resume", "--set", "compile.optimizer=sgd"], capsys
    )
    assert code == 2 and "compile.optimizer" in err
    assert (train / layout.CONFIG).read_bytes() == config


def test_fingerprint_ignores_fields_that_cannot_change_results() -> None:
    a = fingerprint.make_fingerprint(
        {"name": "a", "output_dir": "x", "training": {"epochs": 4, "verbose": 0}}, "d", "s"
    )
    b = fingerprint.make_fingerprint(
        {"name": "b", "output_dir": "y", "training": {"epochs": 4, "verbose": 2}}, "d", "s"
    )
    assert fingerprint.fingerprint_diff(a, b) == []
    c = fingerprint.make_fingerprint({"training": {"epochs": 5}}, "e", "s")
    assert fingerprint.fingerprint_diff(a, c)[0] == "training.epochs: 4 → 5"
    assert any(d.startswith("the data") for d in fingerprint.fingerprint_diff(a, c))


# ----------------------------------------------------------------------------- locks
@pytest.mark.parametrize("command", ["sweep", "batch"])
def test_a_held_sweep_or_batch_folder_refuses_a_second_process(
    tmp_path: Path, capsys: Any, spec_file: Any, command: str
) -> None:
    spec = spec_file(tiny_spec(epochs=1))
    folder = tmp_path / "multi"
    folder.mkdir()
    args = ["sweep", spec, "--grid", "training.batch_size=8,16"] if command == "sweep" else ["batch", spec]
    with RunLock(folder):
        code, _, err = run_main([*args, "--out", folder, "--resume"], capsys)
    assert code == 2 and "in use by another dlrun process" in err
    assert sorted(p.name for p in folder.iterdir()) == [layout.LOCK]


def test_batch_keeps_the_results_of_configs_finished_earlier(runs: dict[str, Path]) -> None:
    from dlrun.runs.batch import BatchItem, previous_status

    item = BatchItem(runs["cv_spec"], runs["cv"])
    assert previous_status(item, 0, 1, True, lambda s: None) == "finished"
    assert item.status == "finished" and item.seconds > 0
    assert item.headline.startswith("accuracy")


# ----------------------------------------------------------------------------- signals and the resume command
def test_a_signal_before_training_ends_interrupted_with_the_resume_command(
    tmp_path: Path, capsys: Any, spec_file: Any
) -> None:
    spec = spec_file(tiny_spec(epochs=1))
    run = tmp_path / "run"
    signals._handler(signal.SIGTERM, None)
    try:
        code, _, err = run_main(["train", spec, "--out", run, "--set", "training.epochs=1"], capsys)
    finally:
        signals.reset_stop()
    assert code == 130
    state = report.read_json(run / layout.STATE)
    assert state["status"] == "interrupted"
    assert f"dlrun train {spec} --set training.epochs=1 --out {run} --resume" in err
    code, _, err = run_main(["train", spec, "--out", run, "--set", "training.epochs=1", "--resume"], capsys)
    assert code == 0, err


def test_resume_command_keeps_the_config_and_overrides() -> None:
    argv = ["dlrun", "cv", "c.yaml", "--set", "a.b=1", "--out", "old", "--engine", "stacked"]
    assert resume_command(argv, Path("runs/x")) == (
        "dlrun cv c.yaml --set a.b=1 --engine stacked --out runs/x --resume"
    )
    assert resume_command(None, Path("d"), "sweep") == "dlrun sweep --out d --resume"


# ----------------------------------------------------------------------------- temporary files, modes, OS errors
def test_the_lock_holder_removes_temporary_files_of_every_kind(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / layout.PARTS).mkdir(parents=True)
    stale = [run / ".model.keras.k2j3.tmp.keras", run / ".sweep.csv.q1.tmp", run / layout.PARTS / ".r0.json.x.tmp"]
    for p in stale:
        p.write_text("half")
    with RunLock(run):
        assert not any(p.exists() for p in stale)


def test_files_keep_the_users_umask(tmp_path: Path) -> None:
    report.write_json(tmp_path / "a.json", {"a": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(InputError, match=r"a\.json.*disk is full") as info:
        report.write_json(tmp_path / "a.json", {"a": 1})
    assert info.value.exit_code == 2
    assert not list(tmp_path.iterdir())


def test_out_pointing_at_a_file_is_exit_2(tmp_path: Path, capsys: Any, spec_file: Any) -> None:
    spec = spec_file(tiny_spec(epochs=1))
    target = tmp_path / "afile"
    target.write_text("x")
    code, _, err = run_main(["train", spec, "--out", target], capsys)
    assert code == 2 and "afile" in err


# ----------------------------------------------------------------------------- status
def test_status_of_a_missing_folder_is_exit_2(tmp_path: Path, capsys: Any) -> None:
    code, _, err = run_main(["status", tmp_path / "nope_dir"], capsys)
    assert code == 2 and "nope_dir" in err


def test_status_shows_runs_killed_in_start_up_and_counts_parts_on_disk(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    early = tmp_path / "early"
    early.mkdir()
    (early / layout.LOCK).write_text("123")
    (early / layout.FOLDS).write_text("repeat,fold\n0,0\n")
    cv = _copy(runs["cv"], tmp_path / "cv")
    state = json.loads((cv / layout.STATE).read_text())
    (cv / layout.STATE).write_text(json.dumps({**state, "status": "running", "finished_models": 1}))
    code, out, _ = run_main(["status", tmp_path], capsys)
    assert code == 0
    assert "early" in out
    line = next(ln for ln in out.splitlines() if "cv " in ln or "│ cv" in ln)
    assert "dead" in line and "3/3 models" in line
    assert not line.split("dead")[1].strip().startswith("0.0s")


def test_train_on_a_cv_config_leaves_no_folder(tmp_path: Path, capsys: Any, spec_file: Any) -> None:
    spec = spec_file(tiny_spec(mode="kfold"))
    code, _, err = run_main(["train", spec, "--out", tmp_path / "run"], capsys)
    assert code == 2 and "dlrun cv" in err
    assert not (tmp_path / "run").exists()


def test_predict_refuses_a_yaml_file_given_as_the_csv(runs: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    rows = tmp_path / "rows.yaml"
    rows.write_text("name: x\ndata:\n  source: sonar\n")
    code, _, err = run_main(["predict", runs["train"], rows], capsys)
    assert code == 2 and "rows.yaml" in err


def test_chunks_are_planned_over_the_whole_run_and_saved_whole(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dlrun.protocol.splits import Fold
    from dlrun.runs.cv import ChunkCommitter, chunk_plan

    folds = [Fold(0, k, k, np.arange(10), np.arange(0), np.arange(2)) for k in range(5)]
    engine = SimpleNamespace(name="stacked", models_per_chunk=lambda jobs: 2)
    plan = chunk_plan(engine, folds)
    assert [[f.fold for f in c] for c in plan] == [[0, 1], [2, 3], [4]]

    folder = RunFolder(tmp_path / "run")
    writer = folder.writer
    commit = ChunkCommitter(folder, plan, folds[2:])  # a resume: chunk [0, 1] was saved before

    def part(f: Any) -> dict[str, Any]:
        return {"repeat": 0, "fold": f.fold, "scores": {"x": f.fold}, "history": pd.DataFrame({"loss": [1.0]})}

    commit.add(folds[2], part(folds[2]))
    assert writer.read_parts() == {}  # half a chunk is never on disk
    commit.add(folds[3], part(folds[3]))
    commit.add(folds[4], part(folds[4]))
    assert sorted(writer.read_parts()) == [(0, 2), (0, 3), (0, 4)]
    assert len(list((writer.path / layout.PARTS).glob(report.PART_GLOB))) == 2


def test_resuming_on_other_data_is_refused_and_the_run_is_left_as_it_was(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    cv = _copy(runs["cv"], tmp_path / "cv")
    fp = json.loads((cv / report.FINGERPRINT).read_text())
    (cv / report.FINGERPRINT).write_text(json.dumps({**fp, "data_sha256": "0" * 64}))
    state = json.loads((cv / layout.STATE).read_text())
    code, _, err = run_main(["cv", runs["cv_spec"], "--out", cv, "--resume"], capsys)
    assert code == 2 and "the data (sha256)" in err
    after = json.loads((cv / layout.STATE).read_text())
    assert {k: v for k, v in after.items() if k != "updated"} == {k: v for k, v in state.items() if k != "updated"}


@pytest.mark.parametrize("budget", [1024.0, 0.6, 0.2])  # one chunk, 3 + 2, one model each
def test_the_chunk_plan_sizes_chunks_as_the_stacked_engine_does(budget: float) -> None:
    from dlrun.engines.base import make_engine
    from dlrun.protocol.jobs import make_job, prepare
    from dlrun.runs.cv import chunk_plan
    from dlrun.spec.schema import validate

    raw = tiny_spec(mode="kfold", evaluation={"folds": 5}, runtime={"memory_budget_mb": budget})
    prep = prepare(validate(raw))
    engine = make_engine("stacked", prep.spec, prep.task, prep.input_shape, prep.n_outputs)
    jobs = [make_job(prep, f)[0] for f in prep.folds]
    per = engine.models_per_chunk(jobs)  # what the engine itself uses on the real arrays
    size = -(-len(jobs) // -(-len(jobs) // per))
    engines_own = [[j.fold for j in jobs[i : i + size]] for i in range(0, len(jobs), size)]
    assert [[f.fold for f in c] for c in chunk_plan(engine, list(prep.folds))] == engines_own


def test_a_stacked_chunk_with_a_flipped_byte_retrains_whole_and_identical(
    tmp_path: Path, capsys: Any, spec_file: Any
) -> None:
    spec = spec_file(tiny_spec(mode="kfold", epochs=3, evaluation={"folds": 3}, runtime={"engine": "stacked"}))
    ref = tmp_path / "ref"
    assert run_main(["cv", spec, "--out", ref], capsys)[0] == 0
    run = _copy(ref, tmp_path / "run")
    (part,) = list((run / layout.PARTS).glob(report.PART_GLOB))  # one chunk of three folds, one file
    data = part.read_bytes()
    part.write_bytes(_flip(data, len(data) // 2))
    (run / layout.SCORES).unlink()
    code, out, err = run_main(["cv", spec, "--out", run, "--resume"], capsys)
    assert code == 0, err
    assert part.name in out + err
    a = pd.read_csv(run / layout.SCORES).drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, pd.read_csv(ref / layout.SCORES).drop(columns=TIMING))


def test_a_train_run_with_a_damaged_checkpoint_restarts_and_ends_identical(
    runs: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    from dlrun.store.checkpoint import encode_checkpoint

    run = _copy(runs["train"], tmp_path / "train")
    state = json.loads((run / layout.STATE).read_text())
    (run / layout.STATE).write_text(json.dumps({**state, "status": "running"}))  # killed mid-training
    for name in (layout.SUMMARY_JSON, layout.PREDICTIONS, layout.HISTORY):
        (run / name).unlink()
    ckpt = layout.checkpoint_file(run)
    fake = {"epoch": 1, "history": {"loss": [9.0]}, "model_variables": [np.ones(3)], "optimizer_variables": []}
    report.write_sealed(ckpt, encode_checkpoint(fake))
    ckpt.write_bytes(ckpt.read_bytes()[:-30])  # truncated by the kill
    code, out, err = run_main(["train", runs["train_spec"], "--out", run, "--resume"], capsys)
    assert code == 0, err
    assert "state.npz" in out + err and (ckpt.parent / "state.npz.corrupt").exists()
    for name in (layout.PREDICTIONS, layout.HISTORY):
        pd.testing.assert_frame_equal(pd.read_csv(run / name), pd.read_csv(runs["train"] / name))


def test_a_signal_while_the_sweep_writes_its_table_ends_130_marked_interrupted(
    tmp_path: Path, capsys: Any, spec_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrun.runs import sweep

    spec = spec_file(tiny_spec(epochs=1))
    folder = tmp_path / "sw"
    real = sweep._sweep_plots

    def plots_then_signal(*args: Any, **kwargs: Any) -> Any:
        signals._handler(signal.SIGTERM, None)  # arrives while the plots are drawn
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "_sweep_plots", plots_then_signal)
    try:
        code, _, err = run_main(["sweep", spec, "--grid", "training.batch_size=8,16", "--out", folder], capsys)
    finally:
        signals.reset_stop()
    assert code == 130
    assert report.read_json(folder / layout.SWEEP_STATE)["status"] == "interrupted"
    assert f"dlrun sweep {spec} --grid training.batch_size=8,16 --out {folder} --resume" in err
    assert (folder / layout.SWEEP_CSV).exists()  # written whole before the stop


@pytest.mark.parametrize("change", ["none", "epochs", "splits"])
def test_a_damaged_fingerprint_is_checked_against_config_and_folds(
    runs: dict[str, Path], tmp_path: Path, capsys: Any, change: str
) -> None:
    cv = _copy(runs["cv"], tmp_path / "cv")
    (cv / layout.STATE).write_text(json.dumps({**json.loads((cv / layout.STATE).read_text()), "status": "running"}))
    fp = cv / layout.FINGERPRINT
    fp.write_text(fp.read_text()[:25])  # a kill or a full disk cut it
    if change == "splits":
        folds = pd.read_csv(cv / layout.FOLDS)
        folds.loc[0, "test_index"], folds.loc[1, "test_index"] = folds.loc[1, "test_index"], folds.loc[0, "test_index"]
        folds.to_csv(cv / layout.FOLDS, index=False)
    extra = ["--set", "training.epochs=3"] if change == "epochs" else []
    code, stdout, err = run_main(["cv", runs["cv_spec"], "--out", cv, "--resume", *extra], capsys)
    assert f"{fp} " in stdout + err and (cv / "fingerprint.json.corrupt").exists()
    if change == "none":
        assert code == 0, err
        assert json.loads(fp.read_text())["splits"]  # recorded again, whole
        assert pd.read_csv(cv / layout.SCORES).equals(pd.read_csv(runs["cv"] / layout.SCORES))
    else:
        assert code == 2
        assert ("training.epochs: 2 → 3" if change == "epochs" else "the splits") in err
