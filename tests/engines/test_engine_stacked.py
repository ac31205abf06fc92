"""The stacked engine: exact per-model equivalence with ``model.fit``, statistics, early stopping, chunking, resume."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the stacked engine runs on JAX")

from dlrun.engines.base import FitJob  # noqa: E402
from dlrun.engines.keras_build import build_model, compile_model, resolve_compile  # noqa: E402
from dlrun.engines.sequential import SequentialEngine  # noqa: E402
from dlrun.engines.stacked import StackedEngine, unsupported_reason  # noqa: E402
from dlrun.errors import SpecError  # noqa: E402
from dlrun.spec.schema import Spec, validate  # noqa: E402

ATOL = 2e-5
DENSE = [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}]


def make_spec(
    optimizer: Any = "adam",
    layers: list[dict[str, Any]] | None = None,
    epochs: int = 2,
    batch_size: int = 4,
    shuffle: bool = False,
    callbacks: list[Any] | None = None,
    loss: Any = "binary_crossentropy",
    metrics: list[str] | None = None,
    runtime: dict[str, Any] | None = None,
) -> Spec:
    return validate(
        {
            "data": {"source": "make_classification"},
            "model": {"layers": layers or DENSE},
            "compile": {"optimizer": optimizer, "loss": loss, "metrics": metrics or ["accuracy"]},
            "training": {"batch_size": batch_size, "epochs": epochs, "shuffle": shuffle, "callbacks": callbacks or []},
            "runtime": runtime or {},
            # callbacks watching val_ scores need validation rows to pass spec validation
            "evaluation": {"validation_split": 0.2} if callbacks else {},
        }
    )


def make_jobs(
    sizes: list[int],
    shape: tuple[int, ...] = (3,),
    seed: int = 0,
    val: bool = True,
    class_weight: dict[int, float] | None = None,
    integers: int = 0,
) -> list[FitJob]:
    """Binary jobs of the given fold sizes (unequal sizes: padding and a smaller last batch)."""
    rng = np.random.default_rng(seed)
    jobs = []

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        if integers:
            x = rng.integers(0, integers, size=(n, *shape)).astype(np.float32)
            return x, (x[:, 0] > integers / 2).astype(np.float32)
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        return x, (x.reshape(n, -1)[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.float32)

    for m, n in enumerate(sizes):
        x, y = draw(n)
        xv, yv = draw(7) if val else (None, None)
        jobs.append(FitJob(0, m, 100 + m, x, y, x_val=xv, y_val=yv, x_test=xv, y_test=yv, class_weight=class_weight))
    return jobs


def keras_references(spec: Spec, jobs: list[FitJob], shape: tuple[int, ...]) -> list[tuple[Any, dict[str, Any]]]:
    """Trained weights and history of a plain Keras ``model.fit`` per job (no shuffling).

    One compiled model serves every job (weights and optimizer state reset in between), so
    Keras compiles its training function once; each job's initial weights are set on it.
    """
    model = build_model(spec, shape, 1, "binary")
    compile_model(model, resolve_compile(spec, "binary"))
    model.optimizer.build(model.trainable_variables)
    opt0 = [np.array(v.value) for v in model.optimizer.variables]
    out = []
    for job in jobs:
        if job.initial_weights is None:
            job.initial_weights = [np.array(w) for w in build_model(spec, shape, 1, "binary").get_weights()]
        model.set_weights(job.initial_weights)
        for v, value in zip(model.optimizer.variables, opt0):
            v.assign(value)
        val = (job.x_val, job.y_val) if job.x_val is not None else None
        hist = model.fit(
            job.x_train, job.y_train, batch_size=spec.training.batch_size, epochs=spec.training.epochs,
            shuffle=False, verbose=0, validation_data=val, class_weight=job.class_weight,
        )  # fmt: skip
        out.append(([np.array(w) for w in model.get_weights()], hist.history))
    return out


def assert_matches_keras(spec: Spec, jobs: list[FitJob], shape: tuple[int, ...]) -> list[Any]:
    refs = keras_references(spec, jobs, shape)
    results = list(StackedEngine(spec, "binary", shape, 1).fit(jobs))
    assert [r.fold for r in results] == [j.fold for j in jobs]
    for res, (w1, hist) in zip(results, refs):
        assert res.engine == "stacked" and res.epochs_run == spec.training.epochs
        assert len(res.weights or []) == len(w1)
        for a, b in zip(res.weights or [], w1):
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-4)
        for key in hist:
            np.testing.assert_allclose(res.history[key], hist[key], atol=ATOL, rtol=1e-4, err_msg=key)
    return results


SCHEDULE = {"ExponentialDecay": {"initial_learning_rate": 0.05, "decay_steps": 2, "decay_rate": 0.5}}
OPTIMIZERS = {
    "sgd": {"SGD": {"learning_rate": 0.05}},
    "sgd_momentum_clipnorm": {"SGD": {"learning_rate": 0.05, "momentum": 0.9, "clipnorm": 0.1}},
    "sgd_nesterov_schedule": {"SGD": {"learning_rate": SCHEDULE, "momentum": 0.8, "nesterov": True}},
    "adam_clipvalue": {"Adam": {"learning_rate": 0.01, "clipvalue": 0.05}},
    "adam_amsgrad_global_clipnorm": {"Adam": {"learning_rate": 0.01, "amsgrad": True, "global_clipnorm": 0.2}},
    "adamw": {"AdamW": {"learning_rate": 0.01, "weight_decay": 0.1}},
    "rmsprop_centered_momentum": {"RMSprop": {"learning_rate": 0.01, "momentum": 0.5, "centered": True}},
    "adagrad": {"Adagrad": {"learning_rate": 0.1}},
    "adadelta": {"Adadelta": {"learning_rate": 1.0}},
    "adamax_schedule": {"Adamax": {"learning_rate": SCHEDULE}},
    "nadam": {"Nadam": {"learning_rate": 0.01}},
    "ftrl": {"Ftrl": {"learning_rate": 0.1, "l1_regularization_strength": 0.01}},
    "lion": {"Lion": {"learning_rate": 0.01}},
    "lamb": {"Lamb": {"learning_rate": 0.01}},
    "adafactor": {"Adafactor": {"learning_rate": 0.1}},
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_exact_against_keras_for_every_optimizer(opt: str) -> None:
    """Same initial weights and batches: each model's weights and history equal one ``model.fit``'s.

    Unequal folds (13 and 9 rows, batch 4: padding and a smaller last batch), class weights,
    validation data, a MaxNorm constraint.
    """
    layers = [
        {"Dense": {"units": 4, "activation": "relu", "kernel_constraint": {"MaxNorm": {"max_value": 0.8}}}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    spec = make_spec(OPTIMIZERS[opt], layers)
    assert_matches_keras(spec, make_jobs([13, 9], val=False, class_weight={0: 1.0, 1: 2.5}), (3,))


LAYERS: dict[str, tuple[list[dict[str, Any]], tuple[int, ...], int]] = {
    "conv2d_pooling": (
        [
            {"Conv2D": {"filters": 2, "kernel_size": 2, "activation": "relu"}},
            {"MaxPooling2D": {"pool_size": 2}},
            {"Flatten": {}},
            {"Dense": {"units": 1, "activation": "sigmoid"}},
        ],
        (4, 4, 1),
        0,
    ),
    "conv2d_batchnorm": (
        [
            {"Conv2D": {"filters": 2, "kernel_size": 2}},
            {"BatchNormalization": {}},
            {"Flatten": {}},
            {"Dense": {"units": 1, "activation": "sigmoid"}},
        ],
        (3, 3, 1),
        0,
    ),
    "lstm": ([{"LSTM": {"units": 3}}, {"Dense": {"units": 1, "activation": "sigmoid"}}], (4, 2), 0),
    "embedding_gru": (
        [
            {"Embedding": {"input_dim": 6, "output_dim": 2}},
            {"GRU": {"units": 2}},
            {"Dense": {"units": 1, "activation": "sigmoid"}},
        ],
        (4,),
        6,
    ),
    "batchnorm_l2_layernorm": (
        [
            {"Dense": {"units": 4, "activation": "tanh", "kernel_regularizer": {"L2": {"l2": 0.01}}}},
            {"BatchNormalization": {"momentum": 0.9}},
            {"LayerNormalization": {}},
            {"Dense": {"units": 1, "activation": "sigmoid", "bias_regularizer": {"L1L2": {"l1": 0.01, "l2": 0.02}}}},
        ],
        (3,),
        0,
    ),
}


@pytest.mark.parametrize("arch", list(LAYERS))
def test_exact_against_keras_for_layers(arch: str) -> None:
    """Conv2D, pooling, LSTM, Embedding, GRU, BatchNormalization (padded rows kept out of its statistics)."""
    layers, shape, integers = LAYERS[arch]
    # a convolution's bias before BatchNormalization has a zero gradient up to rounding, which
    # Adam would blow up to full-size steps of either sign: SGD keeps that case comparable
    opt = (
        {"SGD": {"learning_rate": 0.05, "momentum": 0.9}}
        if arch == "conv2d_batchnorm"
        else {"Adam": {"learning_rate": 0.02}}
    )
    spec = make_spec(opt, layers)
    jobs = make_jobs([13, 9], shape, integers=integers, class_weight={0: 2.0, 1: 1.0})
    results = assert_matches_keras(spec, jobs, shape)
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(results[0].history)


def test_sequential_and_stacked_agree_with_shuffling() -> None:
    """Both engines draw the same batches per (seed, epoch); the sequential one records test_ scores too."""
    spec = make_spec({"SGD": {"learning_rate": 0.1}}, epochs=3, shuffle=True)
    jobs = make_jobs([11, 8], val=False)
    for job in jobs:
        job.x_test, job.y_test = make_jobs([6], seed=9)[0].x_train, make_jobs([6], seed=9)[0].y_train
    seq = SequentialEngine(spec, "binary", (3,), 1)
    seq_results = [seq.fit_one(job) for job in jobs]
    for job in jobs:
        job.initial_weights = seq.build(job.seed).get_weights()
    stacked = list(StackedEngine(spec, "binary", (3,), 1).fit(jobs))
    for a, b in zip(seq_results, stacked):
        assert set(a.history) == set(b.history) == {"loss", "accuracy", "test_loss", "test_accuracy"}
        for key in a.history:
            np.testing.assert_allclose(a.history[key], b.history[key], atol=ATOL, err_msg=key)
        for wa, wb in zip(a.weights or [], b.weights or []):
            np.testing.assert_allclose(wa, wb, atol=ATOL)


def _keras_heldout_accuracies(spec: Spec, folds: list[tuple[np.ndarray, ...]]) -> list[float]:
    """Plain sequential Keras: one compiled model, re-initialized and trained with train_on_batch per fold."""
    keras.utils.set_random_seed(0)
    model = build_model(spec, (folds[0][0].shape[1],), 1, "binary")
    compile_model(model, resolve_compile(spec, "binary"))
    fresh = keras.models.clone_model(model)
    bs = spec.training.batch_size
    rng = np.random.default_rng(0)
    accs = []
    for i, (xtr, ytr, xte, yte) in enumerate(folds):
        keras.utils.set_random_seed(1000 + i)
        clone = keras.models.clone_model(fresh)
        model.set_weights(clone.get_weights())
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


def test_dropout_statistics_match_sequential_keras() -> None:
    """Held-out accuracy of 30 Dropout models per engine: the two distributions agree."""
    from scipy import stats
    from sklearn.datasets import make_classification
    from sklearn.model_selection import RepeatedStratifiedKFold

    x, y = make_classification(n_samples=150, n_features=8, n_informative=4, flip_y=0.1, random_state=3)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = y.astype(np.float32)
    layers = [
        {"Dense": {"units": 16, "activation": "relu"}},
        {"Dropout": {"rate": 0.3}},
        {"GaussianNoise": {"stddev": 0.1}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    spec = make_spec({"Adam": {"learning_rate": 0.01}}, layers, epochs=8, batch_size=32, shuffle=True)
    folds, jobs = [], []
    for i, (tr, te) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=6, random_state=0).split(x, y)):
        folds.append((x[tr], y[tr], x[te], y[te]))
        jobs.append(FitJob(i // 5, i % 5, 7000 + i, x[tr], y[tr], x_test=x[te]))
    stacked = [
        float(np.mean((r.test_pred[:, 0] > 0.5) == f[3]))  # type: ignore[index]
        for r, f in zip(StackedEngine(spec, "binary", (8,), 1).fit(jobs), folds)
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
    assert stats.mannwhitneyu(stacked, sequential).pvalue > 0.01


def test_dropout_masks_differ_between_models() -> None:
    """Identical models on identical data: their own seed-generator states give different dropout draws."""
    layers = [
        {"Dense": {"units": 8, "activation": "relu"}},
        {"Dropout": {"rate": 0.5}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    spec = make_spec("sgd", layers, epochs=1)
    jobs = make_jobs([8, 8], val=False)
    jobs[1].x_train, jobs[1].y_train = jobs[0].x_train, jobs[0].y_train
    w0 = StackedEngine(spec, "binary", (3,), 1)._initial_state(jobs[:1])["tv"]
    for job in jobs:
        job.initial_weights = [w[0] for w in w0]
    a, b = StackedEngine(spec, "binary", (3,), 1).fit(jobs)
    assert not np.allclose(a.weights[0], b.weights[0])  # type: ignore[index]


def test_early_stopping_freezes_a_model() -> None:
    """Models with validation data stop after epoch 2 (impossible min_delta) and stay frozen."""
    cb = [{"EarlyStopping": {"monitor": "val_loss", "patience": 0, "min_delta": 100.0}}]
    opt = {"Adam": {"learning_rate": 0.01}}
    jobs = make_jobs([10, 9, 10, 8])
    for j in jobs[2:]:
        j.x_val = j.y_val = None  # no val_loss: Keras warns and never stops
    long = list(StackedEngine(make_spec(opt, epochs=5, callbacks=cb), "binary", (3,), 1).fit(jobs))
    short = list(StackedEngine(make_spec(opt, epochs=2), "binary", (3,), 1).fit(jobs))
    plain = list(StackedEngine(make_spec(opt, epochs=5), "binary", (3,), 1).fit(jobs))
    for m in (0, 1):
        assert long[m].epochs_run == 2
        assert all(len(v) == 2 for v in long[m].history.values())
        for a, b in zip(long[m].weights or [], short[m].weights or []):
            np.testing.assert_allclose(a, b, atol=1e-6)
    for m in (2, 3):
        assert long[m].epochs_run == 5 and len(long[m].history["loss"]) == 5
        for a, b in zip(long[m].weights or [], plain[m].weights or []):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_early_stopping_restore_best_weights_matches_keras() -> None:
    cb = [{"EarlyStopping": {"monitor": "val_loss", "patience": 1, "restore_best_weights": True}}]
    spec = make_spec({"SGD": {"learning_rate": 0.8}}, epochs=8, callbacks=cb)
    jobs = make_jobs([12, 10], seed=4)
    refs = []
    for job in jobs:
        model = build_model(spec, (3,), 1, "binary")
        compile_model(model, resolve_compile(spec, "binary"))
        job.initial_weights = [np.array(w) for w in model.get_weights()]
        es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
        h = model.fit(
            job.x_train, job.y_train, batch_size=4, epochs=8, shuffle=False, verbose=0,
            validation_data=(job.x_val, job.y_val), callbacks=[es],
        )  # fmt: skip
        refs.append((model.get_weights(), h.history))
    for res, (w, hist) in zip(StackedEngine(spec, "binary", (3,), 1).fit(jobs), refs):
        assert res.epochs_run == len(hist["loss"])
        for a, b in zip(res.weights or [], w):
            np.testing.assert_allclose(a, b, atol=ATOL)


def test_chunks_blocks_and_threads_do_not_change_results() -> None:
    layers = [
        {"Dense": {"units": 8, "activation": "relu"}},
        {"Dropout": {"rate": 0.3}},
        {"GaussianNoise": {"stddev": 0.1}},
        {"Dense": {"units": 1, "activation": "sigmoid"}},
    ]
    jobs = make_jobs([10, 9, 10, 8, 10], seed=2)
    spec = make_spec("adam", layers, epochs=2, shuffle=True)
    tiny = make_spec("adam", layers, epochs=2, shuffle=True, runtime={"memory_budget_mb": 0.001})
    capped = make_spec("adam", layers, epochs=2, shuffle=True, runtime={"max_models_per_chunk": 2})
    engine = StackedEngine(spec, "binary", (3,), 1, threads=1, block_models=5)
    engine.spec = tiny
    assert engine.models_per_chunk(jobs) == 1
    engine.spec = spec
    whole = list(engine.fit(jobs))
    # one engine throughout, so the block programs of 2 and 1 models compile once
    engine.threads, engine.block_models = 2, 2
    threaded = list(engine.fit(jobs))
    engine.spec, engine.threads, engine.block_models = capped, 1, 5
    assert engine.models_per_chunk(jobs) == 2
    chunked = list(engine.fit(jobs))
    for seen in (threaded, chunked):
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
    jobs = make_jobs([8] * 6, shape=(50,))
    w = StackedEngine(spec, "binary", (50,), 1)._initial_state(jobs)["tv"][0]
    assert w.shape == (6, 50, 40)
    assert not np.allclose(w[0], w[1])
    # he_normal: truncated normal with stddev sqrt(2 / fan_in) for a single model's fan_in of 50
    np.testing.assert_allclose(w.std(), np.sqrt(2 / 50), rtol=0.05)


def test_unsupported_reason_and_spec_errors() -> None:
    assert unsupported_reason(make_spec(), "binary") is None
    conv = make_spec(layers=[{"Conv1D": {"filters": 2, "kernel_size": 2}}, {"Flatten": {}}, {"Dense": {"units": 1}}])
    assert unsupported_reason(conv, "binary") is None
    plateau = make_spec(callbacks=[{"ReduceLROnPlateau": {"patience": 2}}])
    reason = unsupported_reason(plateau, "binary")
    assert reason is not None and "ReduceLROnPlateau" in reason and "EarlyStopping" in reason
    act = make_spec(
        layers=[{"Dense": {"units": 1, "activation": "sigmoid", "activity_regularizer": {"L1": {"l1": 0.1}}}}]
    )
    assert "activity_regularizer" in (unsupported_reason(act, "binary") or "")
    with pytest.raises(SpecError, match="test_loss"):  # from spec validation or from the engine's own check
        unsupported_reason(make_spec(callbacks=[{"EarlyStopping": {"monitor": "test_loss"}}]), "binary")


def test_resume_equals_straight_run_with_plain_sgd() -> None:
    """Resume restarts the optimizer state; with stateless SGD, 2 + 2 epochs equal 4 straight epochs."""
    opt = {"SGD": {"learning_rate": 0.1}}
    jobs = make_jobs([9, 8], seed=5)
    straight = list(StackedEngine(make_spec(opt, epochs=4, shuffle=True), "binary", (3,), 1).fit(jobs))
    first = list(StackedEngine(make_spec(opt, epochs=2, shuffle=True), "binary", (3,), 1).fit(jobs))
    for job, res in zip(jobs, first):
        job.initial_weights = res.weights
        job.initial_epoch = 2
    second = list(StackedEngine(make_spec(opt, epochs=4, shuffle=True), "binary", (3,), 1).fit(jobs))
    for a, b, c in zip(straight, first, second):
        assert c.epochs_run == 4 and len(c.history["loss"]) == 2
        np.testing.assert_allclose(b.history["loss"] + c.history["loss"], a.history["loss"], atol=1e-6)
        for wa, wc in zip(a.weights or [], c.weights or []):
            np.testing.assert_allclose(wa, wc, atol=1e-6)


def test_padded_blocks_give_the_results_of_unpadded_ones() -> None:
    """Blocks filled with copies (and parts padded to 8 rows) train each real model as alone."""
    spec = make_spec("adam", epochs=3)
    jobs = make_jobs([10, 9, 11])
    plain = StackedEngine(spec, "binary", (3,), 1)
    w0 = plain._initial_state(jobs)
    for m, job in enumerate(jobs):
        job.initial_weights = [w0["tv"][i][m] for i in range(4)]
    padded = StackedEngine(spec, "binary", (3,), 1, block_models=2, pad_blocks=True)
    a, b = list(plain.fit(jobs)), list(padded.fit(jobs))
    assert [(r.repeat, r.fold) for r in b] == [(j.repeat, j.fold) for j in jobs]  # the copies are dropped
    for ra, rb in zip(a, b):
        for wa, wb in zip(ra.weights or [], rb.weights or []):
            np.testing.assert_allclose(wa, wb, atol=1e-6)
        np.testing.assert_allclose(ra.history["test_loss"], rb.history["test_loss"], atol=1e-6)
        assert ra.test_pred is not None and rb.test_pred is not None and ra.test_pred.shape == rb.test_pred.shape
