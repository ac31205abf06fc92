import inspect, keras
def names(mod, base):
    out=set()
    for n,o in vars(mod).items():
        if inspect.isclass(o) and issubclass(o, base) and not n.startswith("_"):
            out.add(n)
    return sorted(out)
layers = names(keras.layers, keras.layers.Layer)
opts = names(keras.optimizers, keras.optimizers.Optimizer)
opt_aliases = ["sgd","adam","adamw","rmsprop","adagrad","adadelta","adamax","nadam","ftrl","lion","lamb","muon"]
losses = names(keras.losses, keras.losses.Loss)
loss_fns = [n for n,o in vars(keras.losses).items() if inspect.isfunction(o) and not n.startswith("_") and n not in ("get","serialize","deserialize")]
loss_alias = ["mse","mae","mape","msle","bce","MSE","MAE","MAPE","MSLE","kld","KLD","huber_loss","logcosh"]
metrics_cls = names(keras.metrics, keras.metrics.Metric)
metric_fns = [n for n,o in vars(keras.metrics).items() if inspect.isfunction(o) and not n.startswith("_") and n not in ("get","serialize","deserialize")]
metric_alias = ["accuracy","acc","crossentropy","ce","mse","mae","mape","msle","MSE","MAE","MAPE","MSLE","auc","AUC"]
inits = names(keras.initializers, keras.initializers.Initializer)
init_fns = [n for n in dir(keras.initializers) if not n.startswith("_") and n[0].islower() and n not in ("get","serialize","deserialize")]
regs = names(keras.regularizers, keras.regularizers.Regularizer)
reg_fns = ["l1","l2","l1_l2","orthogonal_regularizer"]
cons = names(keras.constraints, keras.constraints.Constraint)
con_fns = [n for n in dir(keras.constraints) if not n.startswith("_") and n[0].islower() and n not in ("get","serialize","deserialize")]
acts = [n for n in dir(keras.activations) if not n.startswith("_") and n not in ("get","serialize","deserialize")]
cbs = names(keras.callbacks, keras.callbacks.Callback)
from keras.src import initializers as _i, regularizers as _r, constraints as _c, losses as _l, metrics as _m, optimizers as _o, activations as _a
inits += list(_i.ALL_OBJECTS_DICT); regs += list(_r.ALL_OBJECTS_DICT); cons += list(_c.ALL_OBJECTS_DICT)
losses += list(_l.ALL_OBJECTS_DICT); metrics_cls += list(_m.ALL_OBJECTS_DICT); opts += list(_o.ALL_OBJECTS_DICT)
acts += list(getattr(_a, "ALL_OBJECTS_DICT", {}))
def fmt(name, items):
    items = sorted(set(items))
    body = "".join(f'    "{i}",\n' for i in items)
    return f"{name}: tuple[str, ...] = (\n{body})\n\n"
src = '"""Names of Keras classes and functions, so a spec can be checked without importing Keras.\n\nGenerated from keras ' + keras.__version__ + ' by scripts/gen_keras_names.py; a test keeps it in sync.\n"""\n\n'
src += "KERAS_VERSION = " + repr(keras.__version__) + "\n\n"
src += fmt("LAYERS", layers)
src += fmt("OPTIMIZERS", opts + opt_aliases)
src += fmt("LOSSES", losses + loss_fns + loss_alias)
src += fmt("METRICS", metrics_cls + metric_fns + metric_alias)
src += fmt("INITIALIZERS", inits + init_fns)
src += fmt("REGULARIZERS", regs + reg_fns)
src += fmt("CONSTRAINTS", cons + con_fns)
src += fmt("ACTIVATIONS", acts + ["linear"])
src += fmt("CALLBACKS", cbs)
import sys
open(sys.argv[1] if len(sys.argv) > 1 else "dlrun/_keras_names.py","w").write(src.rstrip()+"\n")
