"""The stacked engine: many copies of one Keras model trained as one JAX program.

The Keras model is built once. Its variables (trainable weights, BatchNormalization
statistics, dropout/noise seed-generator states), the optimizer's variables and the
metrics' variables get a leading model axis ``M``. One step of one model is Keras' own
stateless path (:mod:`~dlrun.engines.stacked.step`); ``jax.vmap`` runs it for every model and
``lax.scan`` runs the steps of an epoch and the epochs of a block inside one ``jax.jit``
program (:mod:`~dlrun.engines.stacked.program`), with validation, held-out (``test_``) scores,
early stopping and ``restore_best_weights`` kept inside the program too.

Per model, as for a single ``model.fit``: its own fold (padded to the largest fold; a
padded row has sample weight 0 and the loss of a smaller last batch is rescaled exactly
as Keras' ``sum_over_batch_size`` reduction divides by the real batch size), its own
shuffle of each epoch (:func:`dlrun.engines.sequential.epoch_permutations`), its own
initial weights (each weight's Keras initializer drawn from a per-model seed generator:
the single model's fan-in and fan-out, one vectorized call for all models), its own
dropout and noise draws (the layers' seed-generator states, seeded per model), its own
BatchNormalization statistics (padded rows are masked out of the batch statistics),
class weights, per-model scalars (:attr:`FitJob.hparams`), early stopping (a stopped
model is frozen) and Keras-named per-epoch history.

Models of a chunk (``runtime.memory_budget_mb``) are split into blocks of about
:data:`BLOCK_MODELS` that train through all epochs on a pool of one thread per core: a
block's weights stay in cache and two programs run at once.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import dlrun.engines.keras_compat as kc
import dlrun.engines.stacked.early_stopping as early_stopping
from dlrun.engines.base import EpochCallback, EpochEvent, FitJob, FitResult
from dlrun.engines.keras_build import build_model, compile_model, make_callbacks, resolve_compile
from dlrun.engines.runtime import usable_cores
from dlrun.engines.stacked.data import batch_orders, chunk_data, predict_inputs, put, seed_pair
from dlrun.engines.stacked.early_stopping import Stop
from dlrun.engines.stacked.hparams import hparam_paths
from dlrun.engines.stacked.program import block_program, predict_program
from dlrun.engines.stacked.step import Step
from dlrun.engines.stacked.support import unsupported_reason
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

LOCK = threading.RLock()
"""Tracing touches Keras' global state (scopes, the optimizer's attributes): one thread at a time."""


class StackedEngine:
    """Train many models of one architecture at once (see the module docstring).

    Args:
        spec: The validated spec.
        task: ``binary``, ``multiclass`` or ``regression``.
        input_shape: Shape of one preprocessed sample.
        n_outputs: Width of the model's output.
        threads: Programs run at once (default: one per core).
        block_models: Models per program (default :data:`BLOCK_MODELS`).
        jit: Compile the programs (``False``: run them op by op, for debugging).
        pad_blocks: Give every block exactly ``block_models`` models, even in a call of fewer
            (copies of the last, dropped after training), so calls of any size run one program.
    """

    name = "stacked"
    shares_programs = True
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
        self.step: Step | None = None
        self.stops: list[Stop] = []
        self._build()

    # ------------------------------------------------------------------ model
    def _build(self) -> None:
        cfg = resolve_compile(self.spec, self.task)
        kc.set_random_seed(self.spec.seed)
        with kc.recording_initializers(draw=False) as inits:
            model = build_model(self.spec, self.input_shape, self.n_outputs, self.task)
        compile_model(model, cfg)
        self.model = model
        self.opt = model.optimizer
        self.opt.build(model.trainable_variables)
        self.loss = kc.loss_object(model.loss)
        self.out_shape = tuple(int(d) for d in model.output_shape[1:])
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
        self.callbacks = make_callbacks(self.spec)

    def _build_step(self, y_sample: np.ndarray) -> Step:
        """The step, with the compiled metrics built on the real target shape (as ``fit`` does on its first batch)."""
        if self.step is not None:
            return self.step
        model = self.model
        y = np.zeros((2, *y_sample.shape[1:]), np.float32)
        model.compute_metrics(None, y, np.zeros((2, *self.out_shape), np.float32), None)
        model.reset_metrics()
        names = list(model.get_metrics_result().keys())
        step = Step(
            model=model,
            optimizer=self.opt,
            loss=self.loss,
            reduction=str(getattr(self.loss, "reduction", "sum_over_batch_size")),
            has_bn=any(type(layer).__name__.startswith("BatchNormalization") for layer in model.layers),
            mvars=list(model.metrics_variables),
            metric_objs=kc.compiled_metrics(model),
            metric_names=[n for n in names if n != "loss"],
        )
        self.stops = early_stopping.stops_from(self.callbacks, step.log_names, model)
        self.step = step
        return step

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
        logs = self.epochs * 3 * (len(self.step.metric_objs) + 1 if self.step is not None else 4)
        per_model = (2 * state + (rows + vrows + trows) * (feat + 2) + logs) * BYTES * SAFETY
        running = acts * BYTES * SAFETY * self.block_models * self._n_threads()
        budget = self.spec.runtime.memory_budget_mb * 1024 * 1024
        m = max(1, int(max(budget - running, budget / 4) // per_model))
        cap = self.spec.runtime.max_models_per_chunk
        return min(m, cap) if cap is not None else m

    def _n_threads(self) -> int:
        return max(1, self.threads) if self.threads is not None else usable_cores()

    # ------------------------------------------------------------------ public
    def fit(self, jobs: list[FitJob], on_epoch: EpochCallback | None = None) -> Iterator[FitResult]:
        """Train ``jobs`` chunk by chunk; yield one result per job, in job order."""
        if not jobs:
            return
        self._check_hparams(jobs)
        with LOCK:
            self._build_step(jobs[0].y_train)
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
                    listed = ", ".join(sorted(known)) or "(none in this spec)"
                    raise SpecError(
                        [(path, f"a per-model hyperparameter must be one of the spec's own scalars: {listed}")]
                    )

    # ------------------------------------------------------------------ chunks and blocks
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
        data = chunk_data(jobs, self.input_shape)
        results: list[FitResult | None] = [None] * len(jobs)
        progress = _Progress(self.epochs, on_epoch)
        threads = min(threads, len(blocks))

        def run(bi: int) -> None:
            lo = bi * size
            sel = np.arange(lo, lo + len(blocks[bi]))
            for k, res in zip(sel, self._fit_block(blocks[bi], {k: v[sel] for k, v in data.items()}, progress)):
                results[int(k)] = res

        sent = [0]

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

    def _initial_state(self, jobs: list[FitJob]) -> dict[str, Any]:
        """Stacked initial variables of ``jobs``: weights drawn per model unless given (resume)."""
        with LOCK:
            step = self._build_step(jobs[0].y_train)
        if all(j.initial_weights is not None for j in jobs):  # resume: nothing to draw
            tv = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in self.tvars]
            ntv = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in self.ntvars]
        else:
            keys = np.stack([seed_pair(j.seed, 1) for j in jobs])
            with LOCK:
                drawn_t, drawn_n = self._init_program()(put(keys))
            tv = [np.array(a) for a in drawn_t]
            ntv = [np.array(a) for a in drawn_n]
        for m, job in enumerate(jobs):
            for si in self.seed_states:
                ntv[si][m] = seed_pair(job.seed, 2 + si)
            if job.initial_weights is not None:
                if len(job.initial_weights) != len(self.weight_slots):
                    raise SpecError(
                        [("initial_weights", f"{len(job.initial_weights)} arrays, expected {len(self.weight_slots)}")]
                    )
                for (kind, i), w in zip(self.weight_slots, job.initial_weights):
                    dest = tv if kind == "t" else ntv
                    dest[i][m] = np.asarray(w).reshape(dest[i].shape[1:])
        ov = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in self.ovars]
        for m, job in enumerate(jobs):
            for path, value in (job.hparams or {}).items():
                if path.startswith("compile.") and path.endswith(".learning_rate"):
                    if self.lr_index is None:
                        raise SpecError([(path, "a learning-rate schedule cannot differ per model")])
                    ov[self.lr_index][m] = value
        mv = [np.repeat(np.asarray(v.value)[None], len(jobs), axis=0) for v in step.mvars]
        return {"tv": tv, "ntv": ntv, "ov": ov, "mv": mv}

    def _init_program(self) -> Any:
        """``keys (M, 2) -> (trainable, non-trainable)`` stacked initial values, one jitted call."""
        if "init" in self._programs:
            return self._programs["init"]
        import jax
        import keras

        with LOCK:
            sg = keras.random.SeedGenerator(0)
            fns: list[Any] = []
            for v in [*self.tvars, *self.ntvars]:
                init = self.inits.get(id(v))
                if init is None:
                    fns.append(functools.partial(np.asarray, np.asarray(v.value)))
                else:
                    fns.append(functools.partial(kc.reseeded(init, sg), tuple(v.shape), dtype=v.dtype))

        def one(key: Any) -> Any:
            with keras.StatelessScope(state_mapping=[(sg.state, key)]):
                vals = [fn() for fn in fns]
            return vals[: len(self.tvars)], vals[len(self.tvars) :]

        prog = jax.jit(jax.vmap(one))
        self._programs["init"] = prog
        return prog

    def _fit_block(self, jobs: list[FitJob], data: dict[str, np.ndarray], progress: _Progress) -> list[FitResult]:
        step = self._build_step(jobs[0].y_train)
        state = {k: [put(a) for a in v] for k, v in self._initial_state(jobs).items()}
        hp = self._hparams(jobs)
        n_train = data["n_train"]
        steps = max(1, math.ceil(int(n_train.max()) / self.batch_size))
        es = early_stopping.initial(self.stops, len(jobs), state)
        consts = {k: put(v) for k, v in data.items()}
        has_val = data["n_val"] > 0
        has_test = data["n_test"] > 0
        first = int(data["start"].min())
        model_steps = {max(1, math.ceil(int(k) / self.batch_size)) for k in n_train}
        # gated: some step or epoch of some model must leave it untouched (fewer steps, early
        # stopping, a later start); else every step updates every model and selects are skipped
        gated = bool(self.stops) or len(model_steps) > 1 or len(set(data["start"].tolist())) > 1
        parts = (bool(has_val.any()), bool(has_test.any()))
        names = self._names()
        logs_all: list[np.ndarray] = []
        act_all: list[np.ndarray] = []
        for e0 in range(first, self.epochs, EPOCHS_PER_CALL):
            e1 = min(self.epochs, e0 + EPOCHS_PER_CALL)
            perms = batch_orders(jobs, n_train, range(e0, e1), steps, self.batch_size, bool(self.spec.training.shuffle))
            key = (len(jobs), steps, e1 - e0, *parts, gated)
            if key not in self._programs:
                self._programs[key] = block_program(step, self.stops, parts, gated, self.jit)
            args = (state, es, consts, hp, put(perms), put(np.arange(e0, e1, dtype=np.int32)))
            if key in self._warm:
                state, es, logs, active = self._programs[key](*args)
            else:
                with LOCK:  # tracing sets the optimizer's per-model scalars: one thread at a time
                    state, es, logs, active = self._programs[key](*args)
                    self._warm.add(key)
            logs_np, act_np = np.asarray(logs), np.asarray(active)  # (M, E, K), (M, E)
            logs_all.append(logs_np)
            act_all.append(act_np)
            progress.report(jobs, range(e0, e1), logs_np, act_np, names)
            if not np.asarray(es["running"]).any():
                break
        logs_cat = np.concatenate(logs_all, axis=1)
        act_cat = np.concatenate(act_all, axis=1)
        tv = [np.asarray(a) for a in state["tv"]]
        ntv = [np.asarray(a) for a in state["ntv"]]
        early_stopping.best_weights(self.stops, es, tv, ntv)
        preds = self._predict(tv, ntv, jobs)
        out = []
        for i, job in enumerate(jobs):
            hist: dict[str, list[float]] = {}
            rows = logs_cat[i][act_cat[i]]
            for k, name in enumerate(names):
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
        assert self.step is not None
        names = self.step.log_names
        return names + [f"val_{k}" for k in names] + [f"test_{k}" for k in names]

    def _hparams(self, jobs: list[FitJob]) -> dict[str, Any]:
        known = hparam_paths(self.spec)
        keys = sorted({k for j in jobs for k in (j.hparams or {})})
        return {k: put(np.array([float((j.hparams or {}).get(k, known[k])) for j in jobs], np.float32)) for k in keys}

    def _predict(self, tv: list[np.ndarray], ntv: list[np.ndarray], jobs: list[FitJob]) -> list[list[Any]]:
        """Inference outputs on each model's training and test rows: ``[[train (n, out)], [test or None]]``."""
        if "predict" not in self._programs:
            assert self.step is not None
            self._programs["predict"] = predict_program(self.step)
        prog = self._programs["predict"]
        result: list[list[Any]] = [[], []]
        parts: list[list[np.ndarray | None]] = [[j.x_train for j in jobs], [j.x_test for j in jobs]]
        for slot, xs in enumerate(parts):
            x, counts = predict_inputs(xs, self.input_shape)
            with LOCK:
                out = np.asarray(prog([put(a) for a in tv], [put(a) for a in ntv], put(x)))
            for m, c in enumerate(counts):
                result[slot].append(out[m, :c].copy() if (slot == 0 or xs[m] is not None) else None)
        return result


class _Progress:
    """Turns a block's epoch logs into :class:`EpochEvent` s: one per program call (epochs run
    inside the program, so reporting each of them would only repeat lines), at its last epoch."""

    def __init__(self, epochs: int, on_epoch: EpochCallback | None) -> None:
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
