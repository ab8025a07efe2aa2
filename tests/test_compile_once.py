"""Compiled functions have one signature per dtype, whatever the numbers of a run.

The promise of :mod:`fastinit.train` (and the README): depth, widths, batch
size, iterations, learning rate and the other hyperparameters, seeds, streams,
fill shapes and the number of networks in ``fit_many`` never add a signature to
a numba function nor compile a new one; kernels called by address compile once,
the first time a run uses them.

A fresh interpreter (sharing the test run's numba cache) runs a first pass that
uses every compiled path once per dtype (fit with each sampling, ``fit_many``,
the feature-major narrow path and the BLAS path, statistics recording,
forward/predict/evaluate, ``loss_and_grads``, ``diagnose``, several
initializers), snapshots every numba dispatcher and C callback defined in a
``fastinit`` module with its signatures, then runs a second pass with the same
categorical choices (activation, loss, optimizer, sampling, initializer, dtype)
and different numbers, and reports whatever the second pass added.
"""

from __future__ import annotations

import json

SCRIPT = r'''
import gc, json
import numpy as np
from numba.core import event
from numba.core.ccallback import CFunc
from numba.core.dispatcher import Dispatcher

import fastinit
from fastinit import _native, init, optim
from fastinit.model import MLP
from fastinit.train import fit_many

compiled_now = []  # numba:compile events (real compilations, not cache loads) while armed


class _Listener(event.Listener):
    def on_start(self, ev):
        if armed:
            d = ev.data["dispatcher"]
            compiled_now.append(f"{d.py_func.__module__}.{d.py_func.__qualname__}{ev.data['args']}")

    def on_end(self, ev):
        pass


armed = False
event.register("numba:compile", _Listener())


def _name(fn):
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def snapshot():
    """{(name, id): set of signatures} of every fastinit dispatcher and C callback alive,
    and the number of kernels compiled by address (:data:`fastinit._native._ALIVE`)."""
    gc.collect()
    found = {}
    for obj in gc.get_objects():
        if isinstance(obj, Dispatcher) and str(obj.py_func.__module__).startswith("fastinit"):
            found[(_name(obj.py_func), id(obj))] = set(map(str, obj.signatures))
        elif isinstance(obj, CFunc) and str(obj._pyfunc.__module__).startswith("fastinit"):
            found[("cfunc " + _name(obj._pyfunc), id(obj))] = {str(obj._sig)}
    found[("fastinit._native._ALIVE", 0)] = {f"{len(_native._ALIVE)} kernels"}
    return found


def gained(before, after):
    """{function name: [signature gained (or compiled anew), ...]} from ``before`` to ``after``."""
    new = {}
    for key, sigs in after.items():
        for sig in sorted(sigs - before.get(key, set())):
            new.setdefault(key[0], []).append(sig)
    return new


def data(rng, n, n_in, n_out, dtype, form):
    """Inputs and labels; ``form`` 1 and 2 pass them as other array types, cast once."""
    X, y = rng.standard_normal((n, n_in)).astype(dtype), rng.integers(0, n_out, n)
    if form == 1:
        X, y = np.asfortranarray(X), y.astype(np.int32)
    elif form == 2:
        X, y = X.astype(np.float64 if dtype == "float32" else np.float32), list(y)
        X.flags.writeable = False
    return X, y


def use(dtype, depth_sizes, batch, iters, lr, b1, b2, seed, stream, shapes, n_many, every, form):
    """Every compiled path once, with these numbers (categorical choices fixed)."""
    rng = np.random.default_rng(seed % 1000)
    adam = lambda: optim.Adam(lr=lr, beta1=b1, beta2=b2, eps=lr * 1e-5, weight_decay=lr / 10)
    for sizes in depth_sizes:  # narrow (all widths <= 16) and BLAS-path networks
        m = MLP(sizes, activation="tanh", init="he_normal", seed=seed, dtype=dtype)
        X, y = data(rng, batch + 3, sizes[0], sizes[-1], dtype, form)
        kw = dict(optimizer=adam(), batch_size=batch, progress=False, seed=seed)
        for sampling in ("replacement", "shuffle", "full"):
            m.fit(X, y, iterations=iters, sampling=sampling, **kw)
        m.fit(X, y, epochs=2, sampling="shuffle", record_stats=True, stats_every=every, **kw)
        m.forward(X), m.predict(X), m.evaluate(X, y), m.loss_and_grads(X, y)
        fastinit.diagnose(m, X, y, grad_seed=seed)
    for sizes in depth_sizes:  # fit_many: networks sharing input and output sizes
        hidden = [[w] * (k + 1) for k, w in zip(range(n_many), (3, 20, 5, 40))]  # depth k + 1
        many = [MLP(sizes[:1] + h + sizes[-1:], activation="tanh", seed=seed, dtype=dtype)
                for h in hidden]
        X, y = data(rng, 2 * batch, sizes[0], sizes[-1], dtype, form)
        fit_many(many, X, y, optimizer=adam(), batch_size=batch, iterations=iters,
                 progress=False, seed=seed, record_stats=True, stats_every=every)
    for shape in shapes:
        for name in ("normal", "uniform", "truncated_normal", "he_normal", "glorot_uniform",
                     "kaiming_normal", "lecun_uniform", "zeros"):
            getattr(init, name)(shape, seed=seed, stream=stream, dtype=dtype)
        out = np.empty(shape, dtype)
        init.normal(shape, mean=lr, std=b1, seed=seed, stream=stream, out=out)
        if len(shape) == 2:
            init.orthogonal(shape, seed=seed, stream=stream, dtype=dtype)
            init.sparse(shape, sparsity=b1 / 2, seed=seed, stream=stream, dtype=dtype)


PASS1 = dict(depth_sizes=[[2, 4, 3], [5, 20, 3]], batch=8, iters=5, lr=1e-2, b1=0.9, b2=0.999,
             seed=0, stream=0, shapes=[(4, 6)], n_many=2, every=3, form=0)
PASS2 = [
    dict(depth_sizes=[[3, 16, 2, 2], [7, 33, 17, 9, 25, 4]], batch=5, iters=7, lr=0.3,
         b1=0.5, b2=0.9, seed=2**64 - 1, stream=2**63 + 7, shapes=[(9,), (3, 3, 2, 5), (5, 2)],
         n_many=3, every=1, form=1),
    dict(depth_sizes=[[1, 5, 6, 7, 8, 2], [4, 17, 2]], batch=1, iters=1, lr=1, b1=0,
         b2=0.5, seed=12345, stream=3, shapes=[(1, 1), (2, 3, 4)], n_many=4, every=100, form=2),
]

DTYPES = ("float32", "float64")
for dtype in DTYPES:
    use(dtype, **PASS1)
before = snapshot()
armed = True
for dtype in DTYPES:
    for numbers in PASS2:
        use(dtype, **numbers)
after = snapshot()
report = {
    "dispatchers": sum(k[1] != 0 and not k[0].startswith("cfunc") for k in before),
    "signatures": sum(len(v) for k, v in before.items() if k[1]),
    "train_chunk": sum(len(v) for k, v in before.items() if k[0].endswith(".train_chunk")),
    "gained": gained(before, after),
    "compile_events": compiled_now,
}
print("REPORT" + json.dumps(report))
'''


def _report(run_python) -> dict:
    """Run :data:`SCRIPT` in a fresh interpreter; its report (what the second pass added)."""
    return json.loads(run_python(SCRIPT).split("REPORT", 1)[1])


def test_second_pass_compiles_nothing(python_subprocess):
    report = _report(python_subprocess)
    # the first pass did compile (or load) the paths it exercised
    assert report["dispatchers"] > 20 and report["signatures"] > 20, report
    # ... the training loop with and without statistics, row-major and narrow: 4 per dtype
    assert report["train_chunk"] == 8, report
    gained = "\n".join(
        f"  {name}: {len(sigs)} new, e.g. {sigs[0]}" for name, sigs in report["gained"].items()
    )
    assert not gained, f"the second pass added signatures or compiled functions:\n{gained}"
    assert report["compile_events"] == [], report["compile_events"]
