"""numba's first use in a process, without importing SciPy's linear algebra.

The first time a process compiles or loads a numba function from the cache,
numba imports the implementations of everything it supports, among them
``numba.np.arraymath``, which asks at import whether BLAS is available
(``_HAVE_BLAS``, used by one fallback for inner products) by importing
``scipy.linalg.cython_blas``, and with it all of ``scipy.linalg``: about 0.2 s
of a 2.9 s MNIST script on the machine fastinit was built on, for a package
fastinit never calls (it calls NumPy's OpenBLAS, ``fastinit/dense.py``).

:func:`install` (run when :mod:`fastinit._native` or :mod:`fastinit._fastmath`
is imported, before anything compiles) imports ``numba.np.arraymath`` itself,
with numba's probe answered from the files SciPy installed instead of by
importing them: SciPy is installed and ships the ``cython_blas`` extension,
and, where numba has one (0.59-0.62 do not), numba's own check that SciPy's
BLAS integer width matches numba's build (read from ``scipy.__config__``,
which does not import ``scipy.linalg``); without one, numba's probe only imports.
Then numba's ``ensure_blas`` is put back, so compiling ``np.dot`` or
``np.linalg`` code still imports and checks SciPy the usual way.  Only a
SciPy that is installed but cannot be imported answers differently (it makes
``np.convolve``-style inner products fail at compile time instead of falling
back to a loop).  Nothing is changed if ``numba.np.arraymath`` is already
imported or numba has no ``numba.np.linalg.ensure_blas``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["install", "scipy_ships_cython_blas"]


def scipy_ships_cython_blas() -> bool:
    """Whether SciPy is installed with its ``scipy.linalg.cython_blas`` extension (no import)."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return False
    names = {f"cython_blas{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES}
    for location in spec.submodule_search_locations:
        directory = os.path.join(location, "linalg")
        if os.path.isdir(directory) and names.intersection(os.listdir(directory)):
            return True
    return False


def install() -> None:
    """Import ``numba.np.arraymath`` with its BLAS probe answered without importing SciPy."""
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.np import linalg

    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:
        return
    check_width = getattr(linalg, "_check_lapack_int_width", None)  # not in numba 0.59-0.62

    def probe_files() -> None:
        if not scipy_ships_cython_blas():
            raise ImportError("scipy.linalg.cython_blas is not installed")
        if check_width is not None:
            check_width()

    linalg.ensure_blas = probe_files
    try:
        from numba.np import arraymath
    finally:
        linalg.ensure_blas = probe
    if getattr(arraymath, "ensure_blas", None) is probe_files:
        arraymath.ensure_blas = probe
