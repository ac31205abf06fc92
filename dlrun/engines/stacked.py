"""The stacked engine: many copies of one Keras model trained as one JAX program.

The Keras model is built once. Its variables (trainable weights, BatchNormalization
statistics, dropout/noise seed-generator states), the optimizer's variables and the
metrics' variables get a leading model axis ``M``. One training step of one model is
Keras' own stateless path (the one ``keras/src/backend/jax/trainer.py`` runs):
``model.stateless_call`` inside ``jax.value_and_grad`` with the compiled Keras loss,
``optimizer.stateless_apply`` (clipping, weight decay, schedules, constraints) and the
Keras metrics' ``update_state`` in a ``StatelessScope``. ``jax.vmap`` runs it for every
model; ``lax.scan`` runs the steps of an epoch and the epochs of a block inside one
``jax.jit`` program, with validation, held-out (``test_``) scores, early stopping and
``restore_best_weights`` kept inside the program too (no host round trip per epoch).

Per model, as for a single ``model.fit``: its own fold (padded to the largest fold; a
padded row has sample weight 0 and the loss of a smaller last batch is rescaled exactly
as Keras' ``sum_over_batch_size`` reduction divides by the real batch size), its own
shuffle of each epoch (:func:`dlrun.engines.sequential.epoch_permutations`), its own
initial weights (each weight's Keras initializer drawn from a per-model seed generator:
the single model's fan-in and fan-out, one vectorized call for all models), its own
dropout and noise draws (the layers' seed-generator states, seeded per model), its own
BatchNormalization statistics (padded rows are masked out of the batch statistics),
class weights, per-model hyperparameters (:attr:`FitJob.hparams`), early stopping (a
stopped model is frozen) and Keras-named per-epoch history.

Models of a chunk (``runtime.memory_budget_mb``) are split into blocks of about
:data:`BLOCK_MODELS` that train through all epochs on a pool of one thread per core: a
block's weights stay in cache and two programs run at once.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.engines.base import EpochCallback, EpochEvent, FitJob, FitResult, check_spec
from dlrun.engines.runtime import usable_cores
from dlrun.errors import SpecError
from dlrun.spec.schema import Spec

BLOCK_MODELS = 5
"""Models per program: small enough that a block's weights stay in cache (Sonar, 300 models: 27 ms
per epoch in blocks of 10 against 64 in one program; 5 and 10 are equal for Sonar, and 5 trains the
digits CNN in 6.4 s against 7.4 s)."""

EPOCHS_PER_CALL = 50
"""Epochs one program call runs before it reports progress and checks whether all models stopped."""

BYTES = 4
SAFETY = 4.0

_LOCK = threading.RLock()  # tracing touches Keras' global state (scopes, the optimizer's attributes)


class _Unsupported(Exception):
    """The stacked engine cannot run this spec (the message says what and why)."""


# ============================================================================= support check
def unsupported_reason(spec: Spec, task: str) -> str | None:
    """``None`` when the stacked engine can run ``spec``; else one line naming what and why.

    Raises:
        SpecError: A problem any engine would refuse (e.g. early stopping on ``test_``).
    """
    check_spec(spec)
    from dlrun.engines.runtime import backend_name

    # without importing Keras: a support check may run before setup chose the backend
    asked = getattr(spec.runtime, "backend", "auto")
    backend = asked if asked != "auto" and "keras" not in sys.modules else backend_name()
    if backend != "jax":
        return f"the stacked engine runs on the JAX backend, and Keras runs on {backend}"
    if spec.runtime.mixed_precision:
        return "runtime.mixed_precision: the stacked engine trains in float32 only"
    for j, (name, _args) in enumerate(spec.training.callback_entries):
        if name != "EarlyStopping":
            return f"training.callbacks[{j}].{name}: the stacked engine supports only the EarlyStopping callback"
    for i, (name, args) in enumerate(spec.model.entries):
        if args.get("activity_regularizer") is not None:
            return (
                f"model.layers[{i}].{name}.activity_regularizer: Keras sums it over the rows of a batch, "
                "which padded batches would change"
            )
    opt_name, opt_args = spec.compile.optimizer_entry
    if opt_args.get("use_ema"):
        return f"compile.optimizer.{opt_name}.use_ema: the stacked engine does not keep moving averages of weights"
    if (opt_args.get("gradient_accumulation_steps") or 1) > 1:
        return f"compile.optimizer.{opt_name}.gradient_accumulation_steps: not supported by the stacked engine"
    if opt_name.lower() in ("lossscaleoptimizer", "multioptimizer"):
        return f"compile.optimizer.{opt_name}: wraps other optimizers; the stacked engine needs one optimizer"
    return None


# ============================================================================= per-model hyperparameters
_OPT_SCALARS = (
    "learning_rate",
    "momentum",
    "beta_1",
    "beta_2",
    "epsilon",
    "rho",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
)
_REG_SCALARS = ("l1", "l2")
_NOISE_SCALARS = {
    "Dropout": "rate",
    "SpatialDropout1D": "rate",
    "SpatialDropout2D": "rate",
    "SpatialDropout3D": "rate",
    "GaussianNoise": "stddev",
}
"""Noise layers whose scalar Keras only compares with 0 and otherwise computes with (the JAX
backend's ``dropout``: ``1 - rate`` into ``jax.random.bernoulli``; ``normal(...) * stddev``), so
a traced per-model value draws exactly what a model built with that value draws."""


def hparam_paths(spec: Spec) -> dict[str, float]:
    """The spec's scalars that may differ per model inside one program, by dotted path.

    Paths are the ones ``--set`` takes: ``compile.optimizer.Adam.learning_rate``,
    ``model.layers[0].Dense.kernel_regularizer.L2.l2`` and ``model.layers[0].Dropout.rate``.
    Values are the spec's own (Keras' default where the spec leaves one out is not listed:
    give it in the spec to sweep it).
    """
    out: dict[str, float] = {}
    name, args = spec.compile.optimizer_entry
    for key, val in args.items():
        if key in _OPT_SCALARS and isinstance(val, (int, float)) and not isinstance(val, bool):
            out[f"compile.optimizer.{name}.{key}"] = float(val)
    for i, (lname, largs) in enumerate(spec.model.entries):
        noise = _NOISE_SCALARS.get(lname)
        if noise is not None and isinstance(largs.get(noise), (int, float)) and not isinstance(largs[noise], bool):
            out[f"model.layers[{i}].{lname}.{noise}"] = float(largs[noise])
        for key, val in largs.items():
            if key.endswith("_regularizer") and isinstance(val, dict) and len(val) == 1:
                rname, rargs = next(iter(val.items()))
                for rk, rv in (rargs or {}).items():
                    if rk in _REG_SCALARS and isinstance(rv, (int, float)):
                        out[f"model.layers[{i}].{lname}.{key}.{rname}.{rk}"] = float(rv)
    return out


def _without(raw: Any, paths: set[str], prefix: str = "") -> Any:
    """``raw`` (a resolved spec dict) with the leaves at ``paths`` blanked out."""
    if isinstance(raw, dict):
        return {k: _without(v, paths, f"{prefix}.{k}" if prefix else str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_without(v, paths, f"{prefix}[{i}]") for i, v in enumerate(raw)]
    return None if prefix in paths else raw


def _structure(spec: Spec) -> Any:
    from dlrun.spec.schema import resolved_dict

    raw = resolved_dict(spec)
    # the layer list is a list of {Name: args}: make its paths read like --set paths
    layers = raw.get("model", {}).get("layers", [])
    raw = {**raw, "model": {**raw.get("model", {}), "layers": layers}}
    scal = hparam_paths(spec)
    blanked = _without(raw, set(scal))  # resolved_dict spells paths as --set does
    for key in ("name", "output_dir", "sweep"):
        blanked.pop(key, None)
    return blanked


def shared_groups(specs: Sequence[Spec]) -> list[list[int]]:
    """Group specs that can train as one stacked program.

    Two specs share a program when they differ only in per-model scalars
    (:func:`hparam_paths`: optimizer learning rate, momentum, betas, epsilon, rho, weight
    decay, clipping; L1/L2 regularization factors; dropout rates and Gaussian noise), with
    zero-ness and sign equal (Keras branches on ``momentum != 0``, ``clipnorm > 0`` or
    ``rate > 0`` while it traces).

    Returns:
        Lists of indices into ``specs``, in first-seen order; train each with :func:`fit_shared`.
    """
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(program_key(spec), []).append(i)
    return list(groups.values())


def program_key(spec: Spec) -> str:
    """What two specs must share to train in one program: everything but the per-model scalars' values."""
    import json

    signs = {k: (v > 0) - (v < 0) for k, v in hparam_paths(spec).items()}
    return json.dumps([_structure(spec), sorted(signs.items())], sort_keys=True, default=str)


_ENGINES: OrderedDict[tuple[Any, ...], StackedEngine] = OrderedDict()
_ENGINES_KEPT = 8


def shared_engine(spec: Spec, task: str, input_shape: tuple[int, ...], n_outputs: int) -> StackedEngine:
    """A :class:`StackedEngine` for ``spec``, reused by every later spec with the same :func:`program_key`.

    A search asks for the same few programs batch after batch (and nested cross-validation
    once per outer fold): reusing the engine reuses its compiled programs, since each model's
    own scalars are inputs of the program, not constants in it. The last
    :data:`_ENGINES_KEPT` engines are kept.
    """
    key = (program_key(spec), task, tuple(int(d) for d in input_shape), int(n_outputs))
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = StackedEngine(spec, task, input_shape, n_outputs, pad_blocks=True)
            _ENGINES[key] = engine
            while len(_ENGINES) > _ENGINES_KEPT:
                _ENGINES.popitem(last=False)
        _ENGINES.move_to_end(key)
        return engine


def fit_shared(
    specs: Sequence[Spec],
    jobs: Sequence[FitJob],
    task: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    on_epoch: EpochCallback | None = None,
) -> Iterator[tuple[int, FitResult]]:
    """Train every job under every spec of one :func:`shared_groups` group as one program.

    Args:
        specs: Specs that differ only in per-model scalars (one group).
        jobs: The folds, shared by all specs (same data and evaluation settings).
        task, input_shape, n_outputs: As for :class:`StackedEngine`.
        on_epoch: Progress callback.

    Yields:
        ``(spec index, result)`` for each spec and job, spec-major.

    Raises:
        SpecError: The specs cannot share a program.
    """
    if len(shared_groups(specs)) != 1:
        raise SpecError([("sweep", "these specs differ in more than per-model scalars; group them with shared_groups")])
    import dataclasses

    base = specs[0]
    all_jobs: list[FitJob] = []
    owner: list[int] = []
    for si, spec in enumerate(specs):
        hp = hparam_paths(spec)
        for job in jobs:
            all_jobs.append(dataclasses.replace(job, hparams={**(job.hparams or {}), **hp}))
            owner.append(si)
    engine = shared_engine(base, task, input_shape, n_outputs)
    for idx, result in enumerate(engine.fit(all_jobs, on_epoch)):
        yield owner[idx], result


# ============================================================================= the engine
@dataclass
class _Stop:
    monitor: str
    index: int  # position of the monitored value in the epoch's log vector
    sign: float  # +1: larger is better, -1: smaller is better
    min_delta: float  # Keras' signed min_delta (negative for mode min)
    patience: int
    baseline: float | None
    restore: bool
    start_from_epoch: int


class StackedEngine:
    """Train many models of one architecture at once (see the module docstring).

    Args:
        spec: The validated spec.
        task: ``binary``, ``multiclass`` or ``regression``.
        input_shape: Shape of one preprocessed sample.
        n_outputs: Width of the model's output.
        threads: Programs run at once (default: one per core).
        block_models: Models per program (default :data:`BLOCK_MODELS`).
        pad_blocks: Give every block exactly ``block_models`` models, even in a call of fewer
            (copies of the last, dropped after training), so calls of any size run one program.
    """

    name = "stacked"
    batched = True
    supports = staticmethod(unsupported_reason)

    def __init__(
        self,
        spec: Spec,
        task: str,
        input_shape: tuple[int, ...],
        n_outputs: int,
        threads: int | None = None,
        block_models: int | None = None,
        jit: bool = True,
        pad_blocks: bool = False,
    ) -> None:
        reason = unsupported_reason(spec, task)
        if reason is not None:
            raise SpecError([("runtime.engine", f"the stacked engine cannot run this spec: {reason}")])
        self.spec = spec
        self.task = task
        self.input_shape = tuple(int(d) for d in input_shape)
        self.n_outputs = int(n_outputs)
        self.threads = threads
        self.block_models = block_models or BLOCK_MODELS
        self.pad_blocks = pad_blocks
        self.jit = jit
        self.batch_size = int(spec.training.batch_size)
        self.epochs = int(spec.training.epochs)
        self._programs: dict[Any, Any] = {}
        self._warm: set[Any] = set()
        self._build()

    # ------------------------------------------------------------------ model
    def _build(self) -> None:

        from dlrun.engines import keras_compat as kc
        from dlrun.engines.keras_build import build_model, compile_model, make_callbacks, resolve_compile

        cfg = resolve_compile(self.spec, self.task)
        kc.set_random_seed(self.spec.seed)
        with kc.recording_initializers(draw=False) as inits:
            model = build_model(self.spec, self.input_shape, self.n_outputs, self.task)
        compile_model(model, cfg)
        self.model = model
        self.opt = model.optimizer
        self.opt.build(model.trainable_variables)
        self.loss = kc.loss_object(model.loss)
        out_shape = tuple(int(d) for d in model.output_shape[1:])
        self.out_shape = out_shape
        self.reduction = str(getattr(self.loss, "reduction", "sum_over_batch_size"))
        self.tvars = list(model.trainable_variables)
        self.ntvars = list(model.non_trainable_variables)
        self.ovars = list(self.opt.variables)
        self.lr_index = next((i for i, v in enumerate(self.ovars) if v.path.split("/")[-1] == "learning_rate"), None)
        ids_t = {id(v): i for i, v in enumerate(self.tvars)}
        ids_n = {id(v): i for i, v in enumerate(self.ntvars)}
        # model.get_weights() order -> ("t" | "n", index)
        self.weight_slots = [("t", ids_t[id(v)]) if id(v) in ids_t else ("n", ids_n[id(v)]) for v in model.weights]
        self.inits = {id(v): inits.get(id(v)) for v in [*self.tvars, *self.ntvars]}
        self.seed_states = [i for i, v in enumerate(self.ntvars) if id(v) not in {id(w) for w in model.weights}]
        self.has_bn = any(type(layer).__name__.startswith("BatchNormalization") for layer in model.layers)
        self.callbacks = make_callbacks(self.spec)
        self.metrics_built = False

    def _build_metrics(self, y_sample: np.ndarray) -> None:
        """Build the compiled metrics on the real target shape (as ``fit`` does on its first batch)."""
        if self.metrics_built:
            return
        from dlrun.engines import keras_compat as kc

        model = self.model
        y = np.zeros((2, *y_sample.shape[1:]), np.float32)
        model.compute_metrics(None, y, np.zeros((2, *self.out_shape), np.float32), None)
        model.reset_metrics()
        self.mvars = list(model.metrics_variables)
        self.metric_objs = kc.compiled_metrics(model)
        names = list(model.get_metrics_result().keys())
        self.metric_names = [n for n in names if n != "loss"]
        self.log_names = ["loss", *self.metric_names]
        self.stops = self._stops(self.callbacks)
        self.metrics_built = True

    def _stops(self, callbacks: list[Any]) -> list[_Stop]:
        from dlrun.engines import keras_compat as kc

        out = []
        for cb in callbacks:
            monitor = str(cb.monitor)
            base = monitor.removeprefix("val_")
            if base not in self.log_names:
                continue  # Keras warns and never stops
            mode, delta = kc.early_stopping_rule(cb, self.model)
            out.append(
                _Stop(
                    monitor=monitor,
                    index=self.log_names.index(base),
                    sign=1.0 if mode == "max" else -1.0,
                    min_delta=delta,
                    patience=int(cb.patience),
                    baseline=None if cb.baseline is None else float(cb.baseline),
                    restore=bool(cb.restore_best_weights),
                    start_from_epoch=int(cb.start_from_epoch),
                )
            )
        return out

    # ------------------------------------------------------------------ sizing
    def models_per_chunk(self, jobs: Sequence[FitJob]) -> int:
        """How many models fit ``runtime.memory_budget_mb`` (and ``max_models_per_chunk``) at once."""
        params = sum(int(np.prod(v.shape)) for v in self.tvars)
        state = params * (3 + len(self.ovars) / max(1, len(self.tvars)))
        rows = max(len(j.x_train) for j in jobs)
        vrows = max((len(j.x_val) for j in jobs if j.x_val is not None), default=0)
        trows = max((len(j.x_test) for j in jobs if j.x_test is not None), default=0)
        feat = int(np.prod(self.input_shape))
        widest = max([feat, *(int(np.prod(v.shape)) for v in self.tvars)])
        acts = (self.batch_size + vrows + trows) * widest * (2 * len(self.model.layers) + 2)
        # a chunk holds every model's data, weights (with the best weights early stopping keeps,
        # and the results) and history; activations exist only for the blocks running at once
        logs = self.epochs * 3 * (len(self.metric_objs) + 1 if self.metrics_built else 4)
        per_model = (2 * state + (rows + vrows + trows) * (feat + 2) + logs) * BYTES * SAFETY
        running = acts * BYTES * SAFETY * self.block_models * self._n_threads()
        budget = self.spec.runtime.memory_budget_mb * 1024 * 1024
        m = max(1, int(max(budget - running, budget / 4) // per_model))
        cap = self.spec.runtime.max_models_per_chunk
        return min(m, cap) if cap is not None else m

    # ------------------------------------------------------------------ public
    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        """Train ``jobs`` chunk by chunk; yield one result per job, in job order."""
        if not jobs:
            return
        self._check_hparams(jobs)
        with _LOCK:
            self._build_metrics(jobs[0].y_train)
        per = self.models_per_chunk(jobs)
        n_chunks = math.ceil(len(jobs) / per)
        size = math.ceil(len(jobs) / n_chunks)
        for start in range(0, len(jobs), size):
            yield from self._fit_chunk(jobs[start : start + size], on_epoch)

    def _check_hparams(self, jobs: list[FitJob]) -> None:
        known = hparam_paths(self.spec)
        for job in jobs:
            for path in job.hparams or {}:
                if path not in known:
                    raise SpecError(
                        [
                            (
                                path,
                                "a per-model hyperparameter must be one of the spec's own scalars: "
                                + (", ".join(sorted(known)) or "(none in this spec)"),
                            )
                        ]
                    )

    def _n_threads(self) -> int:
        if self.threads is not None:
            return max(1, self.threads)
        return usable_cores()

    def _fit_chunk(self, jobs: list[FitJob], on_epoch: EpochCallback | None) -> Iterator[FitResult]:
        t0 = time.perf_counter()
        n = len(jobs)
        threads = self._n_threads()
        if self.pad_blocks:
            # every block has exactly block_models models, the last one filled with copies of its
            # last job (trained, then dropped): one compiled program serves every call, whatever
            # its number of models (a search's batches and racing stages vary it all the time)
            size = self.block_models
        else:
            # a whole number of rounds of blocks, one block per thread (with blocks of 10 on two
            # threads, 30 models run as 4 blocks of 8 in two full rounds, not 3 blocks of 10 with a
            # core idle in the second round)
            n_blocks = min(n, -(-math.ceil(n / self.block_models) // threads) * threads)
            size = math.ceil(n / n_blocks)
        jobs = jobs + [jobs[-1]] * (-n % size)  # the last block as large as the others: one program
        blocks = [jobs[s : s + size] for s in range(0, len(jobs), size)]
        data = self._chunk_data(jobs)
        results: list[FitResult | None] = [None] * len(jobs)
        progress = _Progress(jobs, self.epochs, on_epoch)
        threads = min(threads, len(blocks))

        def run(bi: int) -> None:
            lo = bi * size
            sel = np.arange(lo, lo + len(blocks[bi]))
            for k, res in zip(sel, self._fit_block(blocks[bi], {k: v[sel] for k, v in data.items()}, progress)):
                results[int(k)] = res

        def done(upto: int) -> Iterator[FitResult]:
            # a block's results go out as soon as it and every block before it are trained, so the
            # caller scores and reports them while later blocks train; seconds: the chunk's time so
            # far over the models finished so far (the last block's models: the whole chunk's mean)
            seconds = (time.perf_counter() - t0) / min(upto, n)
            for res in results[sent[0] : min(upto, n)]:
                assert res is not None
                res.seconds = seconds
                yield res
            sent[0] = max(sent[0], min(upto, n))

        sent = [0]
        if threads > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                futures = [pool.submit(run, bi) for bi in range(len(blocks))]
                try:
                    for bi, fut in enumerate(futures):
                        fut.result()
                        yield from done((bi + 1) * size)
                finally:
                    for fut in futures:  # a consumer that stops early: blocks not started never run
                        fut.cancel()
        else:
            for bi in range(len(blocks)):
                run(bi)
                yield from done((bi + 1) * size)

    # ------------------------------------------------------------------ data
    def _chunk_data(self, jobs: list[FitJob]) -> dict[str, np.ndarray]:
        y_shape = tuple(jobs[0].y_train.shape[1:])
        out: dict[str, np.ndarray] = {}
        for part, xs, ys in (
            ("train", [j.x_train for j in jobs], [j.y_train for j in jobs]),
            ("val", [j.x_val for j in jobs], [j.y_val for j in jobs]),
            ("test", [j.x_test for j in jobs], [j.y_test for j in jobs]),
        ):
            have = [x is not None and y is not None and len(x) > 0 for x, y in zip(xs, ys)]
            counts = np.array([len(x) if h and x is not None else 0 for x, h in zip(xs, have)], np.int32)
            rows = _bucket(max(1, int(counts.max())))
            # one spare zero row at the end: padded batch slots index it
            x = np.zeros((len(jobs), rows + 1, *self.input_shape), np.float32)
            y = np.zeros((len(jobs), rows + 1, *y_shape), np.float32)
            w = np.zeros((len(jobs), rows + 1), np.float32)
            for m, (xi, yi, h) in enumerate(zip(xs, ys, have)):
                if not h or xi is None or yi is None:
                    continue
                k = len(xi)
                x[m, :k] = np.asarray(xi, np.float32).reshape((k, *self.input_shape))
                y[m, :k] = np.asarray(yi, np.float32).reshape((k, *y_shape))
                w[m, :k] = _class_weights(np.asarray(yi), jobs[m].class_weight) if part == "train" else 1.0
            out[f"x_{part}"], out[f"y_{part}"], out[f"w_{part}"], out[f"n_{part}"] = x, y, w, counts
        out["start"] = np.array([max(0, int(j.initial_epoch)) for j in jobs], np.int32)
        return out

    def _initial_state(self, jobs: list[FitJob]) -> dict[str, Any]:
        """Stacked initial variables of ``jobs``: weights drawn per model unless given (resume)."""
        with _LOCK:
            self._build_metrics(jobs[0].y_train)

        if all(j.initial_weights is not None for j in jobs):  # resume: nothing to draw
            tv = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in self.tvars]
            ntv = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in self.ntvars]
        else:
            keys = np.stack([_seed_pair(j.seed, 1) for j in jobs])
            with _LOCK:
                drawn_t, drawn_n = self._init_program()(_put(keys))
            tv = [np.array(a) for a in drawn_t]
            ntv = [np.array(a) for a in drawn_n]
        for m, job in enumerate(jobs):
            for si in self.seed_states:
                ntv[si][m] = _seed_pair(job.seed, 2 + si)
            if job.initial_weights is not None:
                if len(job.initial_weights) != len(self.weight_slots):
                    raise SpecError(
                        [("initial_weights", f"{len(job.initial_weights)} arrays, expected {len(self.weight_slots)}")]
                    )
                for (kind, i), w in zip(self.weight_slots, job.initial_weights):
                    dest = tv if kind == "t" else ntv
                    dest[i][m] = np.asarray(w).reshape(dest[i].shape[1:])
        m_count = len(jobs)
        ov = [np.repeat(np.asarray(v.value)[None], m_count, axis=0) for v in self.ovars]
        for m, job in enumerate(jobs):
            for path, value in (job.hparams or {}).items():
                if path.startswith("compile.") and path.endswith(".learning_rate"):
                    if self.lr_index is None:
                        raise SpecError([(path, "a learning-rate schedule cannot differ per model")])
                    ov[self.lr_index][m] = value
        mv = [np.repeat(np.asarray(v.value)[None], m_count, axis=0) for v in self.mvars]
        return {"tv": tv, "ntv": ntv, "ov": ov, "mv": mv}

    def _init_program(self) -> Any:
        """``keys (M, 2) -> (trainable, non-trainable)`` stacked initial values, one jitted call."""
        if "init" in self._programs:
            return self._programs["init"]
        import jax
        import keras

        from dlrun.engines import keras_compat as kc

        with _LOCK:
            sg = keras.random.SeedGenerator(0)
            fns: list[Any] = []
            for v in [*self.tvars, *self.ntvars]:
                init = self.inits.get(id(v))
                value = np.asarray(v.value)
                if init is None:
                    fns.append(functools.partial(np.asarray, value))
                else:
                    fns.append(functools.partial(kc.reseeded(init, sg), tuple(v.shape), dtype=v.dtype))

        def one(key: Any) -> Any:
            with keras.StatelessScope(state_mapping=[(sg.state, key)]):
                vals = [fn() for fn in fns]
            return vals[: len(self.tvars)], vals[len(self.tvars) :]

        prog = jax.jit(jax.vmap(one))
        self._programs["init"] = prog
        return prog

    # ------------------------------------------------------------------ one block
    def _fit_block(self, jobs: list[FitJob], data: dict[str, np.ndarray], progress: _Progress) -> list[FitResult]:

        m = len(jobs)
        state = {k: [_put(a) for a in v] for k, v in self._initial_state(jobs).items()}
        hp = self._hparams(jobs)
        n_train = data["n_train"]
        steps = max(1, math.ceil(int(n_train.max()) / self.batch_size))
        es = self._es_init(m, state)
        consts = {k: _put(v) for k, v in data.items()}
        has_val = data["n_val"] > 0
        has_test = data["n_test"] > 0
        first = int(data["start"].min())
        model_steps = {max(1, math.ceil(int(k) / self.batch_size)) for k in n_train}
        # gated: some step or epoch of some model must leave it untouched (fewer steps, early
        # stopping, a later start); else every step updates every model and selects are skipped
        gated = bool(self.stops) or len(model_steps) > 1 or len(set(data["start"].tolist())) > 1
        static = (bool(has_val.any()), bool(has_test.any()), gated)
        logs_all: list[np.ndarray] = []
        act_all: list[np.ndarray] = []
        for e0 in range(first, self.epochs, EPOCHS_PER_CALL):
            e1 = min(self.epochs, e0 + EPOCHS_PER_CALL)
            perms = self._perms(jobs, n_train, range(e0, e1), steps)
            prog = self._program(m, steps, e1 - e0, *static)
            args = (state, es, consts, hp, _put(perms), _put(np.arange(e0, e1, dtype=np.int32)))
            key = (m, steps, e1 - e0, *static)
            if key in self._warm:
                state, es, logs, active = prog(*args)
            else:
                with _LOCK:  # tracing sets the optimizer's per-model scalars: one thread at a time
                    state, es, logs, active = prog(*args)
                    self._warm.add(key)
            logs_np, act_np = np.asarray(logs), np.asarray(active)  # (M, E, K), (M, E)
            logs_all.append(logs_np)
            act_all.append(act_np)
            progress.report(jobs, range(e0, e1), logs_np, act_np, self._names())
            if not np.asarray(es["running"]).any():
                break
        logs_cat = np.concatenate(logs_all, axis=1)
        act_cat = np.concatenate(act_all, axis=1)
        tv = [np.asarray(a) for a in state["tv"]]
        ntv = [np.asarray(a) for a in state["ntv"]]
        if any(s.restore for s in self.stops):
            restore = np.asarray(es["has_best"])
            for dest, best in ((tv, es["best_tv"]), (ntv, es["best_ntv"])):
                for i, b in enumerate(best):
                    b = np.asarray(b)
                    dest[i] = np.where(restore.reshape((-1,) + (1,) * (b.ndim - 1)), b, dest[i])
        preds = self._predict(tv, ntv, jobs)
        out = []
        k_names = self._names()
        for i, job in enumerate(jobs):
            hist: dict[str, list[float]] = {}
            rows = logs_cat[i][act_cat[i]]
            for k, name in enumerate(k_names):
                if name.startswith("val_") and not has_val[i]:
                    continue
                if name.startswith("test_") and not has_test[i]:
                    continue
                hist[name] = [float(v) for v in rows[:, k]]
            weights = [(tv if kind == "t" else ntv)[idx][i].copy() for kind, idx in self.weight_slots]
            out.append(
                FitResult(
                    repeat=job.repeat,
                    fold=job.fold,
                    history=hist,
                    train_pred=preds[0][i],
                    test_pred=preds[1][i],
                    epochs_run=int(job.initial_epoch) + int(act_cat[i].sum()),
                    seconds=0.0,
                    engine=self.name,
                    weights=weights,
                )
            )
        return out

    def _names(self) -> list[str]:
        """Names of the per-epoch log vector: training, ``val_`` and ``test_`` loss and metrics."""
        names = list(self.log_names)
        return names + [f"val_{k}" for k in self.log_names] + [f"test_{k}" for k in self.log_names]

    def _perms(self, jobs: list[FitJob], n_train: np.ndarray, epochs: range, steps: int) -> np.ndarray:
        """Row indices ``(M, E, steps, B)`` of each model's batches; padding slots index the spare row."""
        from dlrun.engines.sequential import epoch_permutations

        rows_pad = steps * self.batch_size
        spare = int(n_train.max())
        out = np.full((len(jobs), len(epochs), rows_pad), spare, np.int32)
        shuffle = bool(self.spec.training.shuffle)
        for m, job in enumerate(jobs):
            n = int(n_train[m])
            out[m, :, :n] = epoch_permutations(job.seed, epochs, n, shuffle)
        return out.reshape(len(jobs), len(epochs), steps, self.batch_size)

    def _hparams(self, jobs: list[FitJob]) -> dict[str, Any]:

        known = hparam_paths(self.spec)
        keys = sorted({k for j in jobs for k in (j.hparams or {})})
        return {k: _put(np.array([float((j.hparams or {}).get(k, known[k])) for j in jobs], np.float32)) for k in keys}

    def _es_init(self, m: int, state: dict[str, Any]) -> dict[str, Any]:

        k = max(1, len(self.stops))
        restore = any(s.restore for s in self.stops)
        return {
            "running": _put(np.ones((m,), bool)),
            "wait": _put(np.zeros((m, k), np.int32)),
            "best": _put(np.full((m, k), np.nan, np.float32)),
            "has_best": _put(np.zeros((m,), bool)),
            "best_tv": list(state["tv"]) if restore else [],
            "best_ntv": list(state["ntv"]) if restore else [],
        }

    # ------------------------------------------------------------------ the program
    def _program(self, m: int, steps: int, n_epochs: int, val: bool, test: bool, gated: bool) -> Any:
        key = (m, steps, n_epochs, val, test, gated)
        if key not in self._programs:
            import functools

            import jax

            block = functools.partial(self._model_block, parts=(val, test), gated=gated)
            fn = jax.vmap(block, in_axes=(0, 0, 0, 0, 0, None))
            self._programs[key] = jax.jit(fn) if self.jit else fn
        return self._programs[key]

    def _model_block(
        self,
        state: Any,
        es: Any,
        data: Any,
        hp: Any,
        perms: Any,
        epochs: Any,
        parts: tuple[bool, bool],
        gated: bool = True,
    ) -> Any:
        """One model through the epochs of ``epochs``: ``perms`` ``(E, steps, B)``.

        ``parts``: whether any model of the block has validation and test rows (else those
        scores are NaN placeholders and cost nothing).
        """
        import jax
        import jax.numpy as jnp

        def epoch_body(carry: Any, inp: Any) -> Any:
            state, es = carry
            perm, epoch = inp
            active = es["running"] & (epoch >= data["start"])
            mv0 = state["mv"]

            def step_body(c: Any, idx: Any) -> Any:
                st, mv, lsum, cnt = c
                valid = idx < data["n_train"]
                x = data["x_train"][idx]
                y = data["y_train"][idx]
                w = data["w_train"][idx] * valid
                new, mv2, loss = self._train_step(st, mv, x, y, w, valid, hp)
                nval = jnp.sum(valid.astype(jnp.float32))
                ok = active & (nval > 0)
                if gated:
                    st = _select(ok, new, st)
                    mv = _select(ok, mv2, mv)
                else:
                    st, mv = new, mv2
                return (st, mv, lsum + jnp.where(ok, loss * nval, 0.0), cnt + jnp.where(ok, nval, 0.0)), None

            init = (
                {k: state[k] for k in ("tv", "ntv", "ov")},
                mv0,
                jnp.float32(0.0),
                jnp.float32(0.0),
            )
            (st, mv, lsum, cnt), _ = jax.lax.scan(step_body, init, perm)
            train_logs = jnp.stack([lsum / jnp.maximum(cnt, 1.0), *self._metric_results(mv)])
            blank = jnp.full((len(self.log_names),), jnp.nan, jnp.float32)
            val_logs = self._evaluate(st, mv0, data, "val") if parts[0] else blank
            test_logs = self._evaluate(st, mv0, data, "test") if parts[1] else blank
            logs = jnp.concatenate([train_logs, val_logs, test_logs])
            new_state = {**st, "mv": mv0}
            es = self._es_update(es, st, logs, epoch, active, data)
            return (new_state, es), (logs, active)

        (state, es), (logs, active) = jax.lax.scan(epoch_body, (state, es), (perms, epochs))
        return state, es, logs, active

    def _train_step(self, st: Any, mv: Any, x: Any, y: Any, w: Any, valid: Any, hp: Any) -> Any:
        """One Keras training step of one model on a padded batch."""
        import jax
        import jax.numpy as jnp
        import keras

        from dlrun.engines import keras_compat as kc

        model = self.model
        nval = jnp.sum(valid.astype(jnp.float32))
        if self.reduction in ("sum_over_batch_size", "mean"):
            # Keras divides by the batch size: a padded batch divides by the real rows instead
            loss_w = w * (valid.shape[0] / jnp.maximum(nval, 1.0))
        else:
            loss_w = w
        mask = valid if self.has_bn else None
        tv_in = st["tv"]

        def loss_fn(tv: Any) -> Any:
            with _overrides(self, hp):
                if mask is not None:  # padded rows stay out of BatchNormalization's batch statistics
                    y_pred, ntv, losses = kc.stateless_call_with_row_mask(model, tv, st["ntv"], x, mask)
                else:
                    y_pred, ntv, losses = model.stateless_call(tv, st["ntv"], x, training=True, return_losses=True)
                y_pred = kc.strip_mask(y_pred)
                loss = self.loss(y, y_pred, sample_weight=loss_w)
                if losses:
                    loss = loss + sum(losses)
            return loss, (y_pred, ntv)

        (loss, (y_pred, ntv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv_in)
        with _overrides(self, hp):
            tv, ov = self.opt.stateless_apply(st["ov"], grads, tv_in)
        with keras.StatelessScope(state_mapping=list(zip(self.mvars, mv))) as scope:
            self._update_metrics(y, y_pred, w, valid)
        mv2 = [scope.get_current_value(v) if scope.get_current_value(v) is not None else old
               for v, old in zip(self.mvars, mv)]  # fmt: skip
        return {"tv": list(tv), "ntv": list(ntv), "ov": list(ov)}, mv2, loss

    def _update_metrics(self, y: Any, y_pred: Any, w: Any, valid: Any) -> None:
        """Keras' compiled metrics on the real rows (``metrics`` unweighted, ``weighted_metrics`` by ``w``)."""
        mask = valid.astype("float32")
        for metric, weighted in self.metric_objs:
            metric.update_state(y, y_pred, sample_weight=mask * w if weighted and w is not None else mask)

    def _metric_results(self, mv: Any) -> list[Any]:
        import jax.numpy as jnp
        import keras

        with keras.StatelessScope(state_mapping=list(zip(self.mvars, mv))):
            res = self.model.get_metrics_result()
        return [jnp.asarray(res[k], jnp.float32) for k in self.metric_names]

    def _evaluate(self, st: Any, mv0: Any, data: Any, part: str) -> Any:
        """Inference-mode loss and metrics on a model's ``val`` or ``test`` rows, as ``evaluate`` gives."""
        import jax.numpy as jnp
        import keras

        from dlrun.engines import keras_compat as kc

        x, y = data[f"x_{part}"], data[f"y_{part}"]
        n = data[f"n_{part}"]
        valid = jnp.arange(x.shape[0]) < n
        w = valid.astype(jnp.float32)
        y_pred, _, losses = self.model.stateless_call(st["tv"], st["ntv"], x, training=False, return_losses=True)
        y_pred = kc.strip_mask(y_pred)
        scale = x.shape[0] / jnp.maximum(n.astype(jnp.float32), 1.0)
        loss_w = w * scale if self.reduction in ("sum_over_batch_size", "mean") else w
        loss = self.loss(y, y_pred, sample_weight=loss_w)
        if losses:
            loss = loss + sum(losses)
        with keras.StatelessScope(state_mapping=list(zip(self.mvars, mv0))):
            self._update_metrics(y, y_pred, None, valid)
            res = self.model.get_metrics_result()
        return jnp.stack(
            [jnp.asarray(loss, jnp.float32), *[jnp.asarray(res[k], jnp.float32) for k in self.metric_names]]
        )

    def _es_update(self, es: Any, st: Any, logs: Any, epoch: Any, active: Any, data: Any) -> Any:
        """Keras' EarlyStopping.on_epoch_end for each callback; a stopped model stops running."""
        import jax.numpy as jnp

        if not self.stops:
            return es
        k = len(self.log_names)
        stop_now = jnp.bool_(False)
        snap = jnp.bool_(False)
        wait, best = es["wait"], es["best"]
        new_wait, new_best = [], []
        for c, s in enumerate(self.stops):
            if s.monitor.startswith("val_"):
                current = logs[k + s.index]
                present = data["n_val"] > 0
            else:
                current = logs[s.index]
                present = jnp.bool_(True)
            look = active & present & (epoch >= s.start_from_epoch)
            ref = best[c]
            first = jnp.isnan(ref)
            improved = first | _better(s, current, ref)
            if s.restore:
                snap = snap | (look & (~es["has_best"] | improved))
            w = wait[c] + 1
            beats_base = True if s.baseline is None else _better(s, current, jnp.float32(s.baseline))
            w = jnp.where(improved & beats_base, 0, w)
            stop = (~improved) & (w >= s.patience) & (epoch > 0)
            new_wait.append(jnp.where(look, w, wait[c]))
            new_best.append(jnp.where(look & improved, current, ref))
            stop_now = stop_now | (look & stop)
        out = dict(es)
        out["wait"] = jnp.stack(new_wait)
        out["best"] = jnp.stack(new_best)
        out["running"] = es["running"] & ~stop_now
        if any(s.restore for s in self.stops):
            out["has_best"] = es["has_best"] | snap
            out["best_tv"] = [jnp.where(snap, a, b) for a, b in zip(st["tv"], es["best_tv"])]
            out["best_ntv"] = [jnp.where(snap, a, b) for a, b in zip(st["ntv"], es["best_ntv"])]
        return out

    # ------------------------------------------------------------------ predictions
    def _predict(self, tv: list[np.ndarray], ntv: list[np.ndarray], jobs: list[FitJob]) -> list[list[Any]]:
        """Inference outputs on each model's training and test rows: ``[[train (n, out)], [test or None]]``."""
        import jax

        if "predict" not in self._programs:

            def one(tv: Any, ntv: Any, x: Any) -> Any:
                from dlrun.engines import keras_compat as kc

                out, _ = self.model.stateless_call(tv, ntv, x, training=False)
                return kc.strip_mask(out)

            self._programs["predict"] = jax.jit(jax.vmap(one))
        prog = self._programs["predict"]
        result: list[list[Any]] = [[], []]
        parts: list[list[np.ndarray | None]] = [[j.x_train for j in jobs], [j.x_test for j in jobs]]
        for slot, xs in enumerate(parts):
            counts = [0 if x is None else len(x) for x in xs]
            rows = _bucket(max(1, max(counts)))
            x = np.zeros((len(jobs), rows, *self.input_shape), np.float32)
            for m, xi in enumerate(xs):
                if xi is not None and len(xi):
                    x[m, : len(xi)] = np.asarray(xi, np.float32).reshape((len(xi), *self.input_shape))
            with _LOCK:
                out = np.asarray(prog([_put(a) for a in tv], [_put(a) for a in ntv], _put(x)))
            for m, c in enumerate(counts):
                result[slot].append(out[m, :c].copy() if (slot == 0 or xs[m] is not None) else None)
        return result


# ============================================================================= helpers
def _put(a: Any) -> Any:
    """``a`` on the default device, without compiling: ``jnp.asarray`` of a host array stages it
    through a small program compiled once per shape and dtype (24 of them, about 0.3 s, before a
    Sonar run's first epoch)."""
    import jax

    return jax.device_put(np.asarray(a) if not hasattr(a, "devices") else a)


class _Progress:
    """Turns a block's epoch logs into :class:`EpochEvent` s: one per program call (epochs run
    inside the program, so reporting each of them would only repeat lines), at its last epoch."""

    def __init__(self, jobs: list[FitJob], epochs: int, on_epoch: EpochCallback | None) -> None:
        self.on_epoch = on_epoch
        self.epochs = epochs
        self.lock = threading.Lock()

    def report(self, jobs: list[FitJob], epochs: range, logs: np.ndarray, active: np.ndarray, names: list[str]) -> None:
        """``logs`` ``(M, E, K)`` and ``active`` ``(M, E)`` of the block's models over ``epochs``."""
        if self.on_epoch is None:
            return
        ran = np.flatnonzero(active.any(axis=0))
        if not len(ran):
            return
        e_i = int(ran[-1])
        act = active[:, e_i]
        vals = logs[act, e_i].mean(axis=0)
        keep = {n: float(v) for n, v in zip(names, vals) if not n.startswith(("val_", "test_"))}
        keys = tuple(dict.fromkeys(j.key for j, a in zip(jobs, act) if a))  # padding copies count once
        with self.lock:
            self.on_epoch(EpochEvent(keys=keys, epoch=epochs[e_i] + 1, epochs=self.epochs, logs=keep))


def _better(s: _Stop, current: Any, ref: Any) -> Any:
    """Keras' ``monitor_op(current - min_delta, ref)``."""
    if s.sign > 0:
        return (current - s.min_delta) > ref
    return (current - s.min_delta) < ref


def _select(ok: Any, new: Any, old: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


class _overrides:
    """Set the optimizer's, regularizers' and noise layers' per-model scalars to this model's traced values."""

    def __init__(self, engine: StackedEngine, hp: dict[str, Any]) -> None:
        self.targets = [(*_target(engine, path), value) for path, value in hp.items()]
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        for obj, attr, value in self.targets:
            if obj is None:
                continue
            self.saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, _Scalar(getattr(obj, attr), value))

    def __exit__(self, *exc: Any) -> None:
        for obj, attr, old in reversed(self.saved):
            setattr(obj, attr, old)
        self.saved.clear()


def _target(engine: StackedEngine, path: str) -> tuple[Any, str]:
    """The Keras object and attribute a per-model hyperparameter path sets (learning_rate: none, it is a variable)."""
    parts = path.split(".")
    if parts[0] == "compile":
        attr = parts[-1]
        if attr == "learning_rate":
            return None, attr
        return engine.opt, attr
    i = int(parts[1].split("[")[1].rstrip("]"))
    layer = engine.model.layers[i]
    if len(parts) == 4:  # model.layers[i].Dropout.rate
        return layer, parts[3]
    # model.layers[i].Name.<x>_regularizer.Reg.<l1|l2>
    return getattr(layer, parts[3]), parts[-1]


class _Scalar(float):
    """A Python float for Keras' control flow (``momentum != 0``) that computes with a traced value.

    Keras optimizers branch on their scalars while tracing and compute with them; the
    branch must agree for all models of a program (:func:`shared_groups` checks sign and
    zero-ness), the arithmetic uses each model's own value.
    """

    traced: Any

    def __new__(cls, base: Any, traced: Any) -> _Scalar:
        obj = super().__new__(cls, float(base) if base is not None else 0.0)
        obj.traced = traced
        return obj

    def __jax_array__(self) -> Any:
        return self.traced

    def __add__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced + o

    def __radd__(self, o: Any) -> Any:  # type: ignore[override]
        return o + self.traced

    def __sub__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced - o

    def __rsub__(self, o: Any) -> Any:  # type: ignore[override]
        return o - self.traced

    def __mul__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced * o

    def __rmul__(self, o: Any) -> Any:  # type: ignore[override]
        return o * self.traced

    def __truediv__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced / o

    def __rtruediv__(self, o: Any) -> Any:  # type: ignore[override]
        return o / self.traced

    def __pow__(self, o: Any) -> Any:  # type: ignore[override]
        return self.traced**o

    def __rpow__(self, o: Any) -> Any:  # type: ignore[override]
        return o**self.traced

    def __neg__(self) -> Any:
        return -self.traced


def _bucket(rows: int) -> int:
    """Rows to pad a part to: a multiple of 8, so folds one row apart (187 and 188 training rows)
    run the same compiled program; padded rows carry zero weight."""
    return -(-rows // 8) * 8


def _seed_pair(seed: int, salt: int) -> np.ndarray:
    """A per-model, per-purpose seed-generator state ``[s, 0]`` (uint32)."""
    s = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, salt]).generate_state(1)[0]
    return np.array([s, 0], np.uint32)


def _class_weights(y: np.ndarray, class_weight: dict[int, float] | None) -> np.ndarray:
    """Per-row weights from ``{class_code: weight}``, as Keras derives them from ``class_weight``."""
    if not class_weight:
        return np.ones(len(y), np.float32)
    if y.ndim > 1 and y.shape[1] > 1:
        codes = np.argmax(y, axis=1)
    else:
        codes = np.round(y.reshape(len(y))).astype(int)
    return np.array([class_weight.get(int(c), 1.0) for c in codes], np.float32)
