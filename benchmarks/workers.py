"""Baselines the benchmark runs as separate processes: the tutorial's plain Keras loop and scikit-learn's MLP.

Usage:
    python benchmarks/workers.py keras   DATASET REPEATS FOLDS EPOCHS BATCH
    python benchmarks/workers.py sklearn DATASET REPEATS FOLDS EPOCHS BATCH

DATASET is sonar or mammography (read from $DLRUN_DATA_DIR). Prints ``RESULT accuracy=<mean> n=<models>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.preprocessing import LabelEncoder, StandardScaler


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    data_dir = Path(os.environ.get("DLRUN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    file = {"sonar": "sonar.csv", "mammography": "mammography.csv"}[name]
    df = pd.read_csv(data_dir / file, header=None)
    return df.iloc[:, :-1].to_numpy(dtype="float32"), LabelEncoder().fit_transform(df.iloc[:, -1].astype(str))


def splitter(repeats: int, folds: int) -> StratifiedKFold | RepeatedStratifiedKFold:
    if repeats == 1:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=7)
    return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=7)


def keras_loop(name: str, repeats: int, folds: int, epochs: int, batch: int) -> list[float]:
    """The tutorial: a fresh model per fold, model.fit(verbose=0), one after another."""
    import keras

    x, y = load(name)
    scores = []
    for i, (tr, te) in enumerate(splitter(repeats, folds).split(x, y)):
        # the sonar tutorial standardizes inside each fold; the mammography file is already standardized
        scaler = (
            StandardScaler().fit(x[tr])
            if name == "sonar"
            else StandardScaler(with_mean=False, with_std=False).fit(x[tr])
        )
        keras.utils.set_random_seed(i)
        if name == "sonar":
            layers = [
                keras.layers.Dense(60, activation="relu", kernel_initializer="normal"),
                keras.layers.Dense(30, activation="relu", kernel_initializer="normal"),
                keras.layers.Dense(1, activation="sigmoid", kernel_initializer="normal"),
            ]
            opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.8)
        else:
            layers = [
                keras.layers.Dense(50, activation="relu", kernel_initializer="he_normal"),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
            opt = keras.optimizers.Adam()
        model = keras.Sequential([keras.Input((x.shape[1],)), *layers])
        model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(scaler.transform(x[tr]), y[tr], epochs=epochs, batch_size=batch, verbose=0)
        p = model.predict(scaler.transform(x[te]), verbose=0)[:, 0]
        scores.append(float(np.mean((p > 0.5) == y[te])))
    return scores


def sklearn_mlp(name: str, repeats: int, folds: int, epochs: int, batch: int) -> list[float]:
    """scikit-learn's MLPClassifier with the same architecture and optimizer, cross_val_score(n_jobs=-1)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    x, y = load(name)
    hidden = (60, 30) if name == "sonar" else (50,)
    solver = {"solver": "sgd", "learning_rate_init": 0.01, "momentum": 0.8, "nesterovs_momentum": False}
    if name != "sonar":
        solver = {"solver": "adam"}
    mlp = MLPClassifier(
        hidden_layer_sizes=hidden,
        batch_size=batch,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,  # train all epochs, as the Keras models do
        tol=0.0,
        random_state=0,
        **solver,
    )
    pipe = make_pipeline(StandardScaler(), mlp) if name == "sonar" else mlp
    return list(cross_val_score(pipe, x, y, cv=splitter(repeats, folds), n_jobs=-1, scoring="accuracy"))


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    kind, dataset, reps, k, ep, bs = sys.argv[1:7]
    fn = keras_loop if kind == "keras" else sklearn_mlp
    s = fn(dataset, int(reps), int(k), int(ep), int(bs))
    print(f"RESULT accuracy={np.mean(s):.4f} n={len(s)}", flush=True)
