"""Regenerate dlrun/spec/keras_names.json from the installed Keras.

Usage: python scripts/gen_keras_names.py [OUTPUT]

tests/spec/test_keras_names.py checks that the committed tables still match Keras;
:mod:`dlrun.spec.keras_names` loads them once.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from types import ModuleType

import keras
from keras.src import activations, constraints, initializers, losses, metrics, optimizers, regularizers

SKIP = {"get", "serialize", "deserialize"}


def classes(mod: ModuleType, base: type) -> list[str]:
    """Public subclasses of ``base`` exported by ``mod``."""
    return [n for n, o in vars(mod).items() if inspect.isclass(o) and issubclass(o, base) and not n.startswith("_")]


def functions(mod: ModuleType) -> list[str]:
    """Public functions exported by ``mod``."""
    return [n for n, o in vars(mod).items() if inspect.isfunction(o) and not n.startswith("_") and n not in SKIP]


def lower_names(mod: ModuleType) -> list[str]:
    """Public lower-case names exported by ``mod`` (aliases such as ``he_normal``)."""
    return [n for n in dir(mod) if not n.startswith("_") and n[0].islower() and n not in SKIP]


def tables() -> dict[str, list[str]]:
    """Every name table of dlrun/spec/keras_names.json."""
    alias = lambda mod: list(getattr(mod, "ALL_OBJECTS_DICT", {}))  # noqa: E731
    return {
        "LAYERS": classes(keras.layers, keras.layers.Layer),
        "OPTIMIZERS": classes(keras.optimizers, keras.optimizers.Optimizer) + alias(optimizers),
        "LOSSES": classes(keras.losses, keras.losses.Loss) + functions(keras.losses) + alias(losses),
        "METRICS": classes(keras.metrics, keras.metrics.Metric) + functions(keras.metrics) + alias(metrics),
        "INITIALIZERS": classes(keras.initializers, keras.initializers.Initializer)
        + lower_names(keras.initializers)
        + alias(initializers),
        "REGULARIZERS": [
            *classes(keras.regularizers, keras.regularizers.Regularizer),
            "l1",
            "l2",
            "l1_l2",
            "orthogonal_regularizer",
            *alias(regularizers),
        ],
        "CONSTRAINTS": classes(keras.constraints, keras.constraints.Constraint)
        + lower_names(keras.constraints)
        + alias(constraints),
        "ACTIVATIONS": [*lower_names(keras.activations), "linear", *alias(activations)],
        "CALLBACKS": classes(keras.callbacks, keras.callbacks.Callback),
    }


_POPPED = re.compile(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']")


def init_args(cls: type) -> list[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class tree.

    None when the set is open (``**kwargs`` reaches ``object`` or is passed elsewhere): such a
    class is not checked, so a valid argument is never refused.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return None
        try:
            params = inspect.signature(init).parameters.values()
            source = inspect.getsource(init)
        except (TypeError, ValueError, OSError):
            return None
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        names.update(_POPPED.findall(source))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            names.discard("self")
            return sorted(names)
        if re.search(r"if kwargs:\s*\n\s*raise", source):  # takes **kwargs, refuses any left over
            names.discard("self")
            return sorted(names)
        # **kwargs: the parent class takes the rest (Keras passes them to super().__init__)
    return None


def arg_tables() -> dict[str, dict[str, list[str]]]:
    """Constructor arguments of the classes a spec names, for checks before Keras loads."""

    def table(mod: ModuleType, base: type) -> dict[str, list[str]]:
        out = {}
        for name in classes(mod, base):
            args = init_args(getattr(mod, name))
            if args is not None:
                out[name] = args
        return out

    return {
        "LAYER_ARGS": table(keras.layers, keras.layers.Layer),
        "OPTIMIZER_ARGS": table(keras.optimizers, keras.optimizers.Optimizer),
        "LOSS_ARGS": table(keras.losses, keras.losses.Loss),
        "CALLBACK_ARGS": table(keras.callbacks, keras.callbacks.Callback),
        "INITIALIZER_ARGS": table(keras.initializers, keras.initializers.Initializer),
        "REGULARIZER_ARGS": table(keras.regularizers, keras.regularizers.Regularizer),
        "CONSTRAINT_ARGS": table(keras.constraints, keras.constraints.Constraint),
    }


def render() -> str:
    """The text of dlrun/spec/keras_names.json: sorted names, and each class's sorted arguments
    (classes whose ``**kwargs`` are open are left out: they are not checked)."""
    data: dict[str, object] = {"KERAS_VERSION": keras.__version__}
    for name, items in tables().items():
        data[name] = sorted(set(items))
    for name, by_class in arg_tables().items():
        data[name] = {cls: sorted(args) for cls, args in sorted(by_class.items())}
    return json.dumps(data, indent=1) + "\n"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "dlrun/spec/keras_names.json"
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(render())
