"""The classic weight-initialization experiments, one module each.

=============  =====================================================================
``histogram``  per-layer activation and gradient histograms of a deep plain network
``mnist``      MNIST 784-100x4-10: std=0.01 vs Xavier vs He, same minibatches
``planar``     the planar 'flower': 2-4-1 tanh/sigmoid with zeros, randn, x0.01 ...
``symmetry``   zero and constant inits never break the symmetry between units
``depth``      signal propagation at init: per-layer std of activations and gradients
=============  =====================================================================

Each ``run_*`` function returns a result object (``.table()``, ``.summary()``)
and, given ``out=DIR``, writes PNG figures, ``summary.json`` (with the full
configuration and versions) and the raw curves as CSV.

Every ``run_*`` checks all its arguments before anything is computed or
written: a bad one raises ``ValueError`` naming it, and one of the wrong type
(``progress=1``) an error that is both a ``ValueError``, as ``MLP.fit`` raises,
and a ``TypeError`` (:func:`fastinit._validate.value_errors`).  On Ctrl-C
(``KeyboardInterrupt``) nothing is written: ``out`` keeps the files it held,
and a Ctrl-C that comes while the files are renamed into place is raised once
they all are (:func:`fastinit.experiments._common.commit_all`).  A run that
fails or is interrupted after creating ``out`` removes the directories it
created if they are still empty, as the ``fastinit`` command does; one that
existed before, or holds anything, stays
(:func:`fastinit.experiments._common.prepared_output`).
"""

from __future__ import annotations

import importlib
from typing import Any

_RUNNERS = {
    "run_histogram": "histogram",
    "run_mnist": "mnist",
    "run_planar": "planar",
    "run_symmetry": "symmetry",
    "run_depth": "depth",
}

__all__ = list(_RUNNERS)


def __getattr__(name: str) -> Any:
    if name in _RUNNERS:
        module = importlib.import_module(f"fastinit.experiments.{_RUNNERS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'fastinit.experiments' has no attribute {name!r}")
