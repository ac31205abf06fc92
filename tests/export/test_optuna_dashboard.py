"""A search's optuna.journal as optuna-dashboard reads it (Optuna's JournalStorage), finished and while
the search holds it; the user attributes dlrun adds for the dashboard (dlrun.runs.search.dashboard)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_spec
from export_folders import folders_fixture  # noqa: F401 (the `folders` fixture)

from dlrun.reporting import NullReporter
from dlrun.runs.search import run_search
from dlrun.runs.search.dashboard import best_so_far, set_study_attrs, set_trial_attrs, study_attrs, trial_attrs
from dlrun.runs.search.study import STUDY
from dlrun.store.layout import JOURNAL
from dlrun.store.lock import RunLock, is_locked

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.xdist_group("export")


def _open(journal: Path) -> Any:
    """The study the way optuna-dashboard opens a journal file: a JournalStorage on its file backend."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=STUDY, storage=JournalStorage(JournalFileBackend(str(journal))))


@pytest.mark.slow
def test_a_finished_search_journal_reads_in_optuna(folders: dict[str, Path]) -> None:
    study = _open(folders["search"] / JOURNAL)
    trials = study.get_trials()
    assert len(trials) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(0.0 <= t.value <= 1.0 for t in trials)
    assert all("training.batch_size" in t.params for t in trials)
    assert study.best_trial.number in (0, 1)
    for t in trials:  # what only dlrun knows, as the dashboard shows it
        assert Path(t.user_attrs["run_folder"]).name == f"trial_{t.number:04d}"
        assert t.user_attrs["accuracy_ci_low"] <= t.user_attrs["accuracy_mean"] <= t.user_attrs["accuracy_ci_high"]
    assert study.user_attrs["search_folder"] == str(folders["search"].resolve())
    assert study.user_attrs["metric"] == "accuracy"


class _ReadsTheJournal(NullReporter):
    """When trial 0 is told, opens the journal the way the dashboard does, while the search holds it."""

    def __init__(self, search_dir: Path) -> None:
        self.search_dir = search_dir
        self.seen: dict[str, Any] = {}

    def note(self, text: str) -> None:
        if re.match(r"trial 0: ", text) and not self.seen:
            study = _open(self.search_dir / JOURNAL)
            self.seen = {
                "locked": is_locked(self.search_dir),
                "states": [t.state.name for t in study.get_trials()],
                "value": study.get_trials()[0].value,
            }


@pytest.mark.slow
def test_a_running_search_journal_reads_in_optuna(tmp_path: Path) -> None:
    raw = tiny_spec("binary", mode="kfold", epochs=2, evaluation={"folds": 2})
    raw["search"] = {"training.batch_size": {"type": "categorical", "choices": [8, 16]}, "trials": 2}
    raw["search"]["sampler"] = "random"
    search_dir = tmp_path / "search"
    reporter = _ReadsTheJournal(search_dir)
    with RunLock(search_dir):  # as `dlrun search` holds it
        run_search(raw, search_dir, reporter, batch=1)
    assert reporter.seen, "the search never reported trial 0"
    assert reporter.seen["locked"] is True
    assert reporter.seen["states"] == ["COMPLETE"]  # trial 1 not asked yet: read mid-search
    assert 0.0 <= reporter.seen["value"] <= 1.0


def _summary() -> dict[str, Any]:
    block = {"headline": "corrected", "corrected": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "se": 0.05}}
    return {
        "main_metric": "accuracy",
        "confidence": 0.95,
        "metrics": {"accuracy": block},
        "headline": {"text": "accuracy 0.8000 (95% CI 0.7 to 0.9)"},
    }


def test_trial_attrs_carry_the_folder_and_the_interval(tmp_path: Path) -> None:
    attrs = trial_attrs(tmp_path / "trial_0003", _summary())
    assert attrs["run_folder"] == str((tmp_path / "trial_0003").resolve())
    assert (attrs["accuracy_mean"], attrs["accuracy_ci_low"], attrs["accuracy_ci_high"]) == (0.8, 0.7, 0.9)
    assert attrs["estimate"] == "corrected" and attrs["headline"].startswith("accuracy 0.8")
    json.dumps(attrs)  # Optuna stores user attributes as JSON


def test_attrs_set_on_a_study_show_in_its_storage(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / JOURNAL
    study = optuna.create_study(study_name=STUDY, storage=JournalStorage(JournalFileBackend(str(journal))))
    set_study_attrs(study, tmp_path, "tiny", "accuracy", ["dlrun", "search", "x.yaml"])
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    set_trial_attrs(trial, tmp_path / "trials" / "trial_0000", _summary())
    study.tell(trial, 0.8)
    again = _open(journal)  # a second reader, as the dashboard is
    assert again.user_attrs == study_attrs(tmp_path, "tiny", "accuracy", ["dlrun", "search", "x.yaml"])
    assert again.trials[0].user_attrs["accuracy_ci_high"] == 0.9
    assert again.trials[0].user_attrs["run_folder"].endswith("trial_0000")
    assert best_so_far(again, "accuracy") == "trial 0, accuracy 0.8000 [0.7000, 0.9000]"


def test_best_so_far_of_a_study_without_finished_trials() -> None:
    study = optuna.create_study(direction="maximize")
    assert best_so_far(study, "accuracy") == ""
    study.enqueue_trial({"x": 0.5})
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.7)
    assert best_so_far(study, "accuracy") == "trial 0, accuracy 0.7000"


def test_trial_attrs_of_a_summary_without_interval(tmp_path: Path) -> None:
    attrs = trial_attrs(tmp_path, {"main_metric": "mae", "metrics": {"mae": 1.5}})
    assert attrs == {"run_folder": str(tmp_path.resolve()), "metric": "mae"}
