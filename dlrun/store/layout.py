"""Every file name dlrun writes or reads in a run, sweep or batch folder: decided here only.

Other modules name files through these constants and functions (``report`` re-exports the
run-folder names for its callers), so the layout of an output folder can be read in one place:

run folder (``dlrun train`` / ``dlrun cv``)::

    config.yaml  env.json  state.json  progress.jsonl  .lock
    summary.json  summary.md  scores.csv  folds.csv  history.csv  predictions.csv
    model.keras  preprocessor.*          (train: the model and its fitted preprocessing)
    parts/r0000_f0000.*                  (cv: one finished fold until the run is assembled)
    checkpoint/state.*                   (train: the last mid-training checkpoint)
    plots/<name>.png

sweep folder: ``sweep.json``, ``sweep.csv``, ``plots/``, ``report.html``, one run folder per point;
batch folder: ``batch.csv``, one run folder per config;
search folder: ``search.json``, ``trials.csv``, ``top_trials.csv``, ``best_config.yaml``, ``search.md``
(nested search: ``nested.json``, ``nested.md``, ``nested.csv``), one run folder per trial.
"""

from __future__ import annotations

from pathlib import Path

# ----------------------------------------------------------------------------- a run folder
CONFIG = "config.yaml"
ENV = "env.json"
HISTORY = "history.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PREDICTIONS = "predictions.csv"
SCORES = "scores.csv"
FOLDS = "folds.csv"
STATE = "state.json"
PROGRESS = "progress.jsonl"
MODEL = "model.keras"
PREPROCESSOR = "preprocessor.json"  # sealed JSON; scikit-learn objects via skops.io, never pickle
LOCK = ".lock"
PLOTS = "plots"
PARTS = "parts"
CHECKPOINT = "checkpoint"
CHECKPOINT_STATE = "state.npz"  # sealed NPZ, loaded with allow_pickle=False
FINGERPRINT = "fingerprint.json"  # what determines the results; --resume must match it

REPORT_HTML = "report.html"  # the run's (or sweep's) own page: tables, plots, links
PART_GLOB = "r*_f*.json"  # saved folds under parts/, named by the first of them

# ----------------------------------------------------------------------------- sweep and batch folders
SWEEP_CSV = "sweep.csv"
SWEEP_STATE = "sweep.json"
BATCH_CSV = "batch.csv"

# ----------------------------------------------------------------------------- search folders
SEARCH_STATE = "search.json"
TRIALS_CSV = "trials.csv"
TOP_CSV = "top_trials.csv"
BEST_CONFIG = "best_config.yaml"
SEARCH_MD = "search.md"
NESTED_JSON = "nested.json"
NESTED_MD = "nested.md"
NESTED_CSV = "nested.csv"
JOURNAL = "optuna.journal"  # Optuna's journal storage of the study
TRIALS_DIR = "trials"  # one run folder per trial under it


def checkpoint_file(folder: Path) -> Path:
    """Where ``dlrun train`` keeps its mid-training checkpoint."""
    return Path(folder) / CHECKPOINT / CHECKPOINT_STATE
