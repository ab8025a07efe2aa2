"""fastinit: a Numba-accelerated neural-network micro-framework for weight-initialization research.

Importing the package compiles nothing: submodules load on first use and numba
kernels compile (or load from the on-disk cache) on their first call.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

_EXPORTED = ("random", "init", "optim", "activations", "losses", "datasets", "experiments")
_SUBMODULES = (  # every public module but the CUDA twins (each imports numba.cuda)
    *_EXPORTED, "dense", "narrow", "model", "train", "lsuv", "diagnostics", "sweep", "cli",
)  # fmt: skip
_ATTRS = {
    "MLP": "fastinit.model",
    "History": "fastinit.model",
    "diagnose": "fastinit.diagnostics",
    "Diagnosis": "fastinit.diagnostics",
}

# `from fastinit import *` gives what it gave before every module loaded lazily: it
# neither loads the command line and the sweeps nor binds names such as `train`
__all__ = ["Diagnosis", "History", "MLP", "__version__", "diagnose", *_EXPORTED]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"fastinit.{name}")
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    raise AttributeError(f"module 'fastinit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})
