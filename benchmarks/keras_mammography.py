"""The plain-Keras tutorial script for the mammography set, as a baseline for `dlrun train`.

Dense(50, relu, he_normal) -> Dense(1, sigmoid), Adam, 300 epochs, batch 32, a stratified
50/50 split, no scaling (the file's features are already standardized), exactly as the
imbalanced-classification tutorial does it, with model.fit(..., verbose=0).

Usage: python benchmarks/keras_mammography.py [EPOCHS]
Prints one line: wall seconds for fit, held-out accuracy and ROC AUC.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    data_dir = Path(os.environ.get("DLRUN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    df = pd.read_csv(data_dir / "mammography.csv", header=None)
    x = df.iloc[:, :-1].to_numpy(dtype="float32")
    y = LabelEncoder().fit_transform(df.iloc[:, -1].astype(str))
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, stratify=y, random_state=42)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(50, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=32, verbose=0)
    fit_s = time.perf_counter() - t0
    p = model.predict(x_te, verbose=0)[:, 0]
    print(f"keras fit {fit_s:.1f}s accuracy {accuracy_score(y_te, p > 0.5):.4f} roc_auc {roc_auc_score(y_te, p):.4f}")


if __name__ == "__main__":
    main()
