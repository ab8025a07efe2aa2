"""numba's first use without importing scipy.linalg (fastinit._first_use)."""

from __future__ import annotations

import json

from tests.conftest import run_python

# A fresh process loads a small network's kernels (cached or compiled), then reports
# what numba's BLAS probe answered and which modules got imported; then compiles
# np.dot, which must still go through numba's own probe (and SciPy).
FIRST_USE = """
import json, sys
import numpy as np
from numba import njit
import fastinit

fastinit.MLP([4, 3, 2], seed=0).forward(np.ones((2, 4), np.float32))
from fastinit import _first_use
import numba.np.arraymath as arraymath
import numba.np.linalg as linalg

report = {
    "scipy_linalg_imported": "scipy.linalg" in sys.modules,
    "have_blas": arraymath._HAVE_BLAS,
    "ships": _first_use.scipy_ships_cython_blas(),
    "probe_restored": arraymath.ensure_blas is linalg.ensure_blas
    and linalg.ensure_blas.__module__ == "numba.np.linalg",
}
dot = njit(lambda a, b: np.dot(a, b))
report["dot"] = float(dot(np.arange(3.0), np.arange(3.0)))
report["scipy_linalg_after_dot"] = "scipy.linalg" in sys.modules
print(json.dumps(report))
"""

# What numba's own probe answers: can scipy.linalg.cython_blas be imported?
NUMBA_PROBE = """
try:
    import scipy.linalg.cython_blas
    print("true")
except ImportError:
    print("false")
"""


def test_first_use_skips_scipy_linalg_and_keeps_numbas_answer():
    report = json.loads(run_python(FIRST_USE).strip().splitlines()[-1])
    importable = run_python(NUMBA_PROBE).strip() == "true"
    assert report["have_blas"] is importable is report["ships"]
    assert report["scipy_linalg_imported"] is False
    assert report["probe_restored"] is True
    assert report["dot"] == 5.0
    assert report["scipy_linalg_after_dot"] is importable


# numba 0.59-0.62 (fastinit supports numba>=0.59): their ensure_blas only imports
# scipy.linalg.cython_blas, and numba.np.linalg has no _check_lapack_int_width.
OLD_NUMBA_FIRST_USE = """
import json, sys
import numba.np.linalg as linalg

def ensure_blas():  # numba 0.59-0.62's probe, word for word
    try:
        import scipy.linalg.cython_blas
    except ImportError:
        raise ImportError("scipy 0.16+ is required for linear algebra")

linalg.ensure_blas = ensure_blas
vars(linalg).pop("_check_lapack_int_width", None)
import numpy as np
import fastinit

fastinit.MLP([4, 3, 2], seed=0).forward(np.ones((2, 4), np.float32))
import numba.np.arraymath as arraymath

print(json.dumps({
    "scipy_linalg_imported": "scipy.linalg" in sys.modules,
    "have_blas": arraymath._HAVE_BLAS,
    "probe_restored": arraymath.ensure_blas is ensure_blas is linalg.ensure_blas,
}))
"""


def test_first_use_skips_scipy_linalg_on_numbas_without_the_width_check():
    report = json.loads(run_python(OLD_NUMBA_FIRST_USE).strip().splitlines()[-1])
    importable = run_python(NUMBA_PROBE).strip() == "true"
    assert report["have_blas"] is importable
    assert report["scipy_linalg_imported"] is False
    assert report["probe_restored"] is True
