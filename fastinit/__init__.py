"""fastinit: a Numba-accelerated neural-network micro-framework for weight-initialization research.

Importing the package compiles nothing: submodules load on first use and numba
kernels compile (or load from the on-disk cache) on their first call.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

_SUBMODULES = (  # every public module but the CUDA twins (each imports numba.cuda)
    "random", "init", "optim", "activations", "losses", "dense", "narrow", "model", "train",
    "lsuv", "diagnostics", "datasets", "experiments", "sweep", "cli",
)  # fmt: skip
_ATTRS = {
    "MLP": "fastinit.model",
    "History": "fastinit.model",
    "diagnose": "fastinit.diagnostics",
    "Diagnosis": "fastinit.diagnostics",
}

__all__ = ["Diagnosis", "History", "MLP", "__version__", "diagnose", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"fastinit.{name}")
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    raise AttributeError(f"module 'fastinit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
