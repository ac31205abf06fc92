"""The stacked engine: exact per-model equivalence with Keras, statistics, early stopping, chunking, resume."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

keras = pytest.importorskip("keras")

from dlrun.engines.base import FitJob  # noqa: E402
from dlrun.engines.stacked import StackedEngine, unsupported_reason  # noqa: E402
from dlrun.models import build_model, compile_model, resolve_compile  # noqa: E402
from dlrun.spec import Spec, validate  # noqa: E402

ATOL = 1e-5


def make_spec(
    optimizer: Any = "adam",
    layers: list[dict[str, Any]] | None = None,
    epochs: int = 2,
    batch_size: int = 8,
    shuffle: bool = False,
    callbacks: list[Any] | None = None,
    loss: Any = "binary_crossentropy",
    metrics: list[str] | None = None,
    runtime: dict[str, Any] | None = None,
) -> Spec:
    if layers is None:
        layers = [{"Dense": {"units": 6, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}]
    return validate(
        {
            "data": {"source": "make_classification"},
            "model": {"layers": layers},
            "compile": {"optimizer": optimizer, "loss": loss, "metrics": metrics or ["accuracy"]},
            "training": {
                "batch_size": batch_size,
                "epochs": epochs,
                "shuffle": shuffle,
                "callbacks": callbacks or [],
            },
            "runtime": runtime or {},
        }
    )


def make_jobs(
    sizes: list[int], features: int = 5, seed: int = 0, val: bool = True, class_weight: dict[int, float] | None = None
) -> list[FitJob]:
    rng = np.random.default_rng(seed)
    jobs = []
    for m, n in enumerate(sizes):
        x = rng.normal(size=(n, features)).astype(np.float32)
        y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.float32)
        xv = rng.normal(size=(9, features)).astype(np.float32) if val else None
        yv = (xv[:, 0] > 0).astype(np.float32) if xv is not None else None
        jobs.append(FitJob(0, m, 100 + m, x, y, x_val=xv, y_val=yv, x_test=xv, class_weight=class_weight))
    return jobs


def keras_reference(
    spec: Spec, job: FitJob, features: int
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list[float]]]:
    """Initial weights, trained weights and history of a plain Keras model on the job (no shuffling)."""
    model = build_model(spec, (features,), 1, "binary")
    compile_model(model, resolve_compile(spec, "binary"), jit=False)
    w0 = [w.copy() for w in model.get_weights()]
    val = (job.x_val, job.y_val) if job.x_val is not None else None
    hist = model.fit(
        job.x_train,
        job.y_train,
        batch_size=spec.training.batch_size,
        epochs=spec.training.epochs,
        shuffle=False,
        verbose=0,
        validation_data=val,
        class_weight=job.class_weight,
    )
    return w0, model.get_weights(), hist.history


OPTIMIZERS = {
    "sgd_momentum": {"SGD": {"learning_rate": 0.05, "momentum": 0.9}},
    "sgd_nesterov": {"SGD": {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}},
    "adam": {"Adam": {"learning_rate": 0.01}},
    "rmsprop": {"RMSprop": {"learning_rate": 0.01}},
}


@pytest.mark.parametrize(
    ("opt", "maxnorm", "jit"),
    [("sgd_momentum", True, True), ("sgd_nesterov", False, False), ("adam", True, False), ("rmsprop", False, True)],
)
def test_exact_against_keras(opt: str, maxnorm: bool, jit: bool) -> None:
    """Same initial weights and batch order: every model's weights and history equal a single Keras model's."""
    extra = {"kernel_constraint": {"MaxNorm": {"max_value": 0.6}}} if maxnorm else {}
    layers = [
        {"Dense": {"units": 6, "activation": "relu", **extra}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    spec = make_spec(OPTIMIZERS[opt], layers)
    # differing fold sizes (padding, a model with one step fewer), class weights, validation data
    jobs = make_jobs([21, 16], class_weight={0: 1.0, 1: 2.5})
    refs = []
    for job in jobs:
        w0, w1, hist = keras_reference(spec, job, 5)
        job.initial_weights = w0
        refs.append((w1, hist))
    results = list(StackedEngine(spec, "binary", (5,), 1, jit=jit).fit(jobs))
    assert [r.fold for r in results] == [0, 1]
    for res, (w1, hist) in zip(results, refs):
        assert res.engine == "stacked" and res.epochs_run == 2
        assert len(res.weights or []) == len(w1)
        for a, b in zip(res.weights or [], w1):
            np.testing.assert_allclose(a, b, atol=ATOL)
        assert set(res.history) == set(hist)
        for key in hist:
            np.testing.assert_allclose(res.history[key], hist[key], atol=ATOL, err_msg=key)


@pytest.mark.parametrize(
    "optimizer",
    [{"SGD": {"learning_rate": 0.05}}, {"Adam": {"learning_rate": 0.01, "clipvalue": 0.05}}],
    ids=["sgd", "adam_clipvalue"],
)
def test_exact_batchnorm_and_regularizers(optimizer: Any) -> None:
    """BatchNormalization statistics, L1/L2 weight and activity regularizers match Keras."""
    layers = [
        {"Dense": {"units": 6, "activation": "tanh", "kernel_regularizer": {"L2": {"l2": 0.01}}}},
        {"BatchNormalization": {"momentum": 0.9}},
        {"Activation": {"activation": "relu", "activity_regularizer": {"L1": {"l1": 0.01}}}},
        {"Dense": {"units": 1, "activation": "sigmoid", "bias_regularizer": {"L1L2": {"l1": 0.01, "l2": 0.02}}}},
    ]
    spec = make_spec(optimizer, layers)
    jobs = make_jobs([20, 17])
    refs = []
    for job in jobs:
        w0, w1, hist = keras_reference(spec, job, 5)
        job.initial_weights = w0
        refs.append((w1, hist))
    results = list(StackedEngine(spec, "binary", (5,), 1, jit=False).fit(jobs))
    for res, (w1, hist) in zip(results, refs):
        for a, b in zip(res.weights or [], w1):
            np.testing.assert_allclose(a, b, atol=ATOL)
        for key in hist:
            np.testing.assert_allclose(res.history[key], hist[key], atol=ATOL, err_msg=key)


def test_predictions_are_inference_outputs() -> None:
    spec = make_spec(
        layers=[{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}]
    )
    jobs = make_jobs([12, 10])
    results = list(StackedEngine(spec, "binary", (5,), 1, jit=False).fit(jobs))
    for job, res in zip(jobs, results):
        model = build_model(spec, (5,), 1, "binary")
        model.set_weights(res.weights)
        np.testing.assert_allclose(res.train_pred, model.predict(job.x_train, verbose=0), atol=ATOL)
        assert res.test_pred is not None and res.test_pred.shape == (9, 1)


def _keras_heldout_accuracies(spec: Spec, folds: list[tuple[np.ndarray, ...]]) -> list[float]:
    """Plain sequential Keras: one compiled model, re-initialized and trained with train_on_batch per fold."""
    keras.utils.set_random_seed(0)  # independent of what ran before in this process
    model = build_model(spec, (folds[0][0].shape[1],), 1, "binary")
    compile_model(model, resolve_compile(spec, "binary"), jit=False)
    bs = spec.training.batch_size
    rng = np.random.default_rng(0)
    accs = []
    for i, (xtr, ytr, xte, yte) in enumerate(folds):
        keras.utils.set_random_seed(1000 + i)
        for layer in model.layers:
            for v in layer.weights:
                short = v.path.split("/")[-1]
                v.assign(getattr(layer, f"{short}_initializer")(v.shape))
        for v in model.optimizer.variables:
            if "learning_rate" not in v.path:
                v.assign(np.zeros(v.shape, v.dtype))
        for _ in range(spec.training.epochs):
            order = rng.permutation(len(xtr))
            for start in range(0, len(xtr), bs):
                rows = order[start : start + bs]
                model.train_on_batch(xtr[rows], ytr[rows])
        pred = np.asarray(model(xte, training=False))[:, 0]
        accs.append(float(np.mean((pred > 0.5) == yte)))
    return accs


def test_statistics_match_sequential_keras() -> None:
    """Held-out accuracy over 5 folds x 6 repeats: the stacked and the sequential distributions agree."""
    from scipy import stats
    from sklearn.datasets import make_classification
    from sklearn.model_selection import RepeatedStratifiedKFold

    x, y = make_classification(n_samples=150, n_features=8, n_informative=4, flip_y=0.1, random_state=3)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = y.astype(np.float32)
    layers = [{"Dense": {"units": 16, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}]
    spec = make_spec({"Adam": {"learning_rate": 0.01}}, layers, epochs=10, batch_size=32, shuffle=True)
    folds = []
    jobs = []
    split = RepeatedStratifiedKFold(n_splits=5, n_repeats=6, random_state=0)
    for i, (tr, te) in enumerate(split.split(x, y)):
        folds.append((x[tr], y[tr], x[te], y[te]))
        jobs.append(FitJob(i // 5, i % 5, 7000 + i, x[tr], y[tr], x_test=x[te]))
    stacked = [
        float(np.mean((r.test_pred[:, 0] > 0.5) == f[3]))  # type: ignore[index]
        for r, f in zip(StackedEngine(spec, "binary", (8,), 1, jit=False).fit(jobs), folds)
    ]
    sequential = _keras_heldout_accuracies(spec, folds)

    def ci(a: list[float]) -> tuple[float, float]:
        m, se = float(np.mean(a)), float(stats.sem(a))
        h = se * float(stats.t.ppf(0.975, len(a) - 1))
        return m - h, m + h

    lo_s, hi_s = ci(stacked)
    lo_q, hi_q = ci(sequential)
    assert lo_s <= np.mean(sequential) <= hi_s, (stacked, sequential)
    assert lo_q <= np.mean(stacked) <= hi_q, (stacked, sequential)
    assert stats.ttest_ind(stacked, sequential).pvalue > 0.01
    assert stats.mannwhitneyu(stacked, sequential).pvalue > 0.01


def test_early_stopping_freezes_a_model() -> None:
    """Models with validation data stop after epoch 2 (monitor val_loss, impossible min_delta) and stay frozen."""
    cb = [{"EarlyStopping": {"monitor": "val_loss", "patience": 0, "min_delta": 100.0}}]
    opt = {"Adam": {"learning_rate": 0.01}}
    jobs = make_jobs([16, 15, 16, 14])
    for j in jobs[2:]:
        j.x_val = j.y_val = None  # no val_loss: Keras warns and never stops
    long = list(StackedEngine(make_spec(opt, epochs=6, callbacks=cb), "binary", (5,), 1, jit=False).fit(jobs))
    short = list(StackedEngine(make_spec(opt, epochs=2), "binary", (5,), 1, jit=False).fit(jobs))
    plain = list(StackedEngine(make_spec(opt, epochs=6), "binary", (5,), 1, jit=False).fit(jobs))
    for m in (0, 1):
        assert long[m].epochs_run == 2
        assert all(len(v) == 2 for v in long[m].history.values())
        for a, b in zip(long[m].weights or [], short[m].weights or []):
            np.testing.assert_allclose(a, b, atol=1e-6)  # weights and Adam state untouched after the stop
    for m in (2, 3):
        assert long[m].epochs_run == 6 and len(long[m].history["loss"]) == 6
        for a, b in zip(long[m].weights or [], plain[m].weights or []):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_early_stopping_restore_best_weights_matches_keras() -> None:
    cb = [{"EarlyStopping": {"monitor": "val_loss", "patience": 1, "restore_best_weights": True}}]
    spec = make_spec({"SGD": {"learning_rate": 0.8}}, epochs=8, callbacks=cb)
    jobs = make_jobs([20, 18], seed=4)
    refs = []
    for job in jobs:
        model = build_model(spec, (5,), 1, "binary")
        compile_model(model, resolve_compile(spec, "binary"), jit=False)
        job.initial_weights = [w.copy() for w in model.get_weights()]
        es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
        h = model.fit(
            job.x_train, job.y_train, batch_size=8, epochs=8, shuffle=False, verbose=0,
            validation_data=(job.x_val, job.y_val), callbacks=[es],
        )  # fmt: skip
        refs.append((model.get_weights(), h.history))
    for res, (w, hist) in zip(StackedEngine(spec, "binary", (5,), 1, jit=False).fit(jobs), refs):
        assert res.epochs_run == len(hist["loss"])
        for a, b in zip(res.weights or [], w):
            np.testing.assert_allclose(a, b, atol=ATOL)


def test_chunking_and_threads_do_not_change_results() -> None:
    layers = [
        {"Dense": {"units": 8, "activation": "relu"}},
        {"Dropout": {"rate": 0.3}},
        {"GaussianNoise": {"stddev": 0.1}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    jobs = make_jobs([14, 13, 14, 12, 14], seed=2)
    spec = make_spec("adam", layers, epochs=3, shuffle=True)
    tiny = make_spec("adam", layers, epochs=3, shuffle=True, runtime={"memory_budget_mb": 0.001})
    capped = make_spec("adam", layers, epochs=3, shuffle=True, runtime={"max_models_per_chunk": 2})
    assert StackedEngine(tiny, "binary", (5,), 1, jit=False).models_per_chunk(jobs) == 1
    assert StackedEngine(capped, "binary", (5,), 1, jit=False).models_per_chunk(jobs) == 2
    whole = list(StackedEngine(spec, "binary", (5,), 1, jit=False, threads=1).fit(jobs))
    for other in (
        StackedEngine(tiny, "binary", (5,), 1, jit=False),
        StackedEngine(capped, "binary", (5,), 1, jit=False),
        StackedEngine(spec, "binary", (5,), 1, jit=False, threads=2),
    ):
        seen = list(other.fit(jobs))
        assert [r.fold for r in seen] == [r.fold for r in whole]
        for a, b in zip(seen, whole):
            assert a.history.keys() == b.history.keys()
            for k in a.history:
                np.testing.assert_allclose(a.history[k], b.history[k], atol=1e-6)
            for wa, wb in zip(a.weights or [], b.weights or []):
                np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_models_differ_and_initialization_has_keras_scale() -> None:
    layers = [
        {"Dense": {"units": 40, "activation": "relu", "kernel_initializer": "he_normal"}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    spec = make_spec(layers=layers, epochs=1)
    jobs = make_jobs([8] * 6, features=50)
    w = StackedEngine(spec, "binary", (50,), 1, jit=False)._initial_weights(jobs)[0]
    assert w.shape == (6, 50, 40)
    assert not np.allclose(w[0], w[1])
    # he_normal: truncated normal with stddev sqrt(2 / fan_in) for a single model's fan_in of 50
    np.testing.assert_allclose(w.std(), np.sqrt(2 / 50), rtol=0.05)


def test_unsupported_reason() -> None:
    assert unsupported_reason(make_spec(), "binary") is None
    conv = make_spec(layers=[{"Conv2D": {"filters": 2, "kernel_size": 3}}, {"Flatten": {}}, {"Dense": {"units": 1}}])
    reason = unsupported_reason(conv, "binary")
    assert reason is not None and reason.startswith("model.layers[0].Conv2D") and "Dense" in reason
    plateau = make_spec(callbacks=[{"ReduceLROnPlateau": {"patience": 2}}])
    reason = unsupported_reason(plateau, "binary")
    assert reason is not None and "ReduceLROnPlateau" in reason and "EarlyStopping" in reason
    assert unsupported_reason(make_spec({"Adafactor": {}}), "binary") is not None
    assert unsupported_reason(make_spec(metrics=["AUC"]), "binary") is not None


def test_resume_equals_straight_run_with_plain_sgd() -> None:
    """Resume restarts the optimizer state; with stateless SGD, 2 + 2 epochs equal 4 straight epochs."""
    layers = [
        {"Dense": {"units": 6, "activation": "relu"}},
        {"Dropout": {"rate": 0.2}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    opt = {"SGD": {"learning_rate": 0.1}}
    jobs = make_jobs([15, 13], seed=5)
    straight = list(
        StackedEngine(make_spec(opt, layers, epochs=4, shuffle=True), "binary", (5,), 1, jit=False).fit(jobs)
    )
    first = list(StackedEngine(make_spec(opt, layers, epochs=2, shuffle=True), "binary", (5,), 1, jit=False).fit(jobs))
    for job, res in zip(jobs, first):
        job.initial_weights = res.weights
        job.initial_epoch = 2
    second = list(StackedEngine(make_spec(opt, layers, epochs=4, shuffle=True), "binary", (5,), 1, jit=False).fit(jobs))
    for a, b, c in zip(straight, first, second):
        assert c.epochs_run == 2
        np.testing.assert_allclose(b.history["loss"] + c.history["loss"], a.history["loss"], atol=1e-6)
        for wa, wc in zip(a.weights or [], c.weights or []):
            np.testing.assert_allclose(wa, wc, atol=1e-6)


@pytest.mark.parametrize("rows", [3, 16, 40])
def test_batched_dense_gradient_equals_matmul(rows: int) -> None:
    """The product's own gradient (multiply-and-reduce up to 32 rows, a dot past) is matmul's gradient."""
    import tensorflow as tf

    from dlrun.engines.stacked import _batched_dense

    rng = np.random.default_rng(rows)
    x = tf.constant(rng.normal(size=(4, rows, 7)).astype(np.float32))
    w = tf.constant(rng.normal(size=(4, 7, 5)).astype(np.float32))
    up = tf.constant(rng.normal(size=(4, rows, 5)).astype(np.float32))

    def grads(fn: Any) -> list[np.ndarray]:
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            out = tf.reduce_sum(fn(x, w) * up)
        return [g.numpy() for g in tape.gradient(out, [x, w])]

    np.testing.assert_allclose(_batched_dense(x, w).numpy(), tf.matmul(x, w).numpy(), rtol=1e-6)
    for ours, ref in zip(grads(_batched_dense), grads(tf.matmul)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_dropout_random_numbers_are_uniform_and_independent() -> None:
    """The hash RNG behind dropout and noise: uniform on (0, 1), no correlation across models, steps or layers."""
    import tensorflow as tf
    from scipy import stats as st

    from dlrun.engines.stacked import _uniform

    keys = tf.constant(np.arange(1000, 1064, dtype=np.uint32))  # 64 models with consecutive seeds
    shape = (64, 16, 60)  # models x batch rows x units
    draws = {
        (epoch, step, layer): _uniform(keys, shape, epoch, step, layer).numpy()
        for epoch, step, layer in [(0, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 1)]
    }
    u = draws[(0, 0, 0)]
    assert 0.0 < u.min() and u.max() < 1.0
    assert st.kstest(u.ravel(), "uniform").pvalue > 1e-3
    # a dropout mask at rate 0.2 keeps 80% of units, within a 99.9% binomial interval
    kept = int((u >= 0.2).sum())
    lo, hi = st.binom.ppf([0.0005, 0.9995], u.size, 0.8)
    assert lo <= kept <= hi
    # streams of neighbouring models, of the next step, epoch and layer are uncorrelated
    pairs = [u[:-1].ravel(), u[1:].ravel()]
    others = [draws[k].ravel() for k in [(0, 1, 0), (1, 0, 0), (0, 0, 1)]]
    limit = 4.0 / np.sqrt(u.size)  # about 4 standard errors of a correlation of independent draws
    assert abs(np.corrcoef(*pairs)[0, 1]) < limit
    for other in others:
        assert abs(np.corrcoef(u.ravel(), other)[0, 1]) < limit
        assert not np.array_equal(u.ravel(), other)
