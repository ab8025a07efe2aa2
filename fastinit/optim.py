"""Optimizers: hyperparameter holders that lower to an integer code and a float64 array.

The update itself runs inside the compiled training loop
(:func:`call_update`), one fused pass over all parameters of a network.  With
``g`` the gradient plus the L2 term ``weight_decay * p`` (PyTorch's
``weight_decay``, applied to every parameter, biases included) and ``t`` the
1-based step count, the formulas are PyTorch's (``torch.optim``, defaults
``dampening=0``, ``centered=False``, ``amsgrad=False``, ``lr_decay=0``,
``initial_accumulator_value=0``):

============  ==================================================================
class         update
============  ==================================================================
SGD           ``p -= lr * g``
Momentum      ``v = momentum * v + g;  p -= lr * v``  (``SGD(momentum=...)``)
Nesterov      ``v = momentum * v + g;  p -= lr * (g + momentum * v)``
AdaGrad       ``s += g**2;  p -= lr * g / (sqrt(s) + eps)``, eps = 1e-10
RMSprop       ``s = decay * s + (1 - decay) g**2;  p -= lr * g / (sqrt(s) + eps)``,
              decay is PyTorch's ``alpha`` (0.99), eps = 1e-8
Adam          ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2;``
              ``p -= (lr / (1 - b1**t)) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``,
              eps = 1e-8 (PyTorch's arrangement of the bias corrections)
============  ==================================================================

Plain SGD without weight decay runs fused into the backward pass: the weight
GEMM computes ``W = W - lr * A.T @ dZ`` in place (BLAS ``alpha`` and
``beta = 1``), the same formula, without a gradient array or a separate pass.
With weight decay it runs as the others do: the decay factor ``1 - lr *
weight_decay`` as BLAS's ``beta`` would be rounded to float32 once for the whole
run (``lr * weight_decay = 1e-8`` rounds to no decay at all), where PyTorch's
``p - lr * (g + weight_decay * p)`` rounds each step's terms.  A separate pass
``W -= (lr * weight_decay) W`` before the fused GEMM was measured and is no
better: a decay below half a unit in the last place of ``W`` rounds away in it
every step; only added to the gradient first does it survive on average.  The
unfused update costs about 8% of an MNIST step on a quiet host (602 against
558 us per step, medians of 7 alternating runs of 1000 steps, 1.07-1.09x
each after the first; the update pass over the 110k parameters takes under
24 us, measured from Python), 15% on a busy one; the other optimizers always
run unfused.
State (``v``, ``s``, ``m``) lives in arrays, zero at the start, owned by the
optimizer object per model: fitting the same model again with the same
optimizer object continues from its state, like a PyTorch optimizer; a new
optimizer object (or a name) starts afresh.  The scalar factors are computed in
float64 and rounded once to the model dtype.

``weight_decay``, and AdaGrad's ``eps``, are keyword-only: PyTorch's positional
order differs (``SGD(params, lr, momentum, ...)``, ``Adagrad(params, lr,
lr_decay, ...)``), and ``SGD(0.1, 0.9)`` ported from it would otherwise train
with a decay of 0.9 instead of refusing.
"""

from __future__ import annotations

import inspect
import math
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numba import carray, njit, types

from fastinit._native import call_void, compile_kernel, dispatch_by_code, kernel_factory, pointer_to
from fastinit._validate import (
    DTYPES,
    check_int,
    check_nonneg,
    check_positive,
    check_unit_interval,
)

__all__ = ["SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSprop", "get"]

NONE, SGD_CODE, MOMENTUM, NESTEROV, ADAGRAD, RMSPROP, ADAM = range(7)
N_HYPER = 6  # lr, a, b, eps, weight_decay, (spare)
LR, HA, HB, EPS, WD = range(5)


# ----------------------------------------------------------------------------- compiled
@njit(inline="always", cache=True, error_model="numpy")
def _sgd(p, g, wd, lr):
    for i in range(p.shape[0]):
        p[i] -= lr * (g[i] + wd * p[i])


@njit(inline="always", cache=True, error_model="numpy")
def _momentum(p, g, v, wd, lr, mu, nesterov):
    for i in range(p.shape[0]):
        gi = g[i] + wd * p[i]
        vi = mu * v[i] + gi
        v[i] = vi
        p[i] -= lr * (gi + mu * vi) if nesterov else lr * vi


@njit(inline="always", cache=True, error_model="numpy")
def _adaptive(p, g, s, wd, lr, decay, eps, rho):
    # s = decay * s + rho * g**2 (AdaGrad: decay = rho = 1); p -= lr * g / (sqrt(s) + eps)
    for i in range(p.shape[0]):
        gi = g[i] + wd * p[i]
        si = decay * s[i] + rho * gi * gi
        s[i] = si
        p[i] -= lr * gi / (np.sqrt(si) + eps)


@njit(inline="always", cache=True, error_model="numpy")
def _adam(p, g, m, v, wd, step_size, b1, c1, b2, c2, root_bc2, eps):
    # c1 = 1 - b1, c2 = 1 - b2 from float64: 1 - float32(0.99999) is 1.3e-3 off
    for i in range(p.shape[0]):
        gi = g[i] + wd * p[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / root_bc2 + eps)


# One step function per optimizer: (hyper, step, p, g, s0, s1), the scalar
# factors computed in float64 and rounded once to the model dtype.  Plain
# functions: dispatch_by_code compiles the one a kernel uses, for compiled callers only.
def _sgd_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    _sgd(p, g, t(hyper[WD]), t(hyper[LR]))


def _momentum_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    _momentum(p, g, s0, t(hyper[WD]), t(hyper[LR]), t(hyper[HA]), False)


def _nesterov_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    _momentum(p, g, s0, t(hyper[WD]), t(hyper[LR]), t(hyper[HA]), True)


def _adagrad_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    _adaptive(p, g, s0, t(hyper[WD]), t(hyper[LR]), t(1.0), t(hyper[EPS]), t(1.0))


def _rmsprop_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    decay = hyper[HA]
    _adaptive(p, g, s0, t(hyper[WD]), t(hyper[LR]), t(decay), t(hyper[EPS]), t(1.0 - decay))


def _adam_step(hyper, step, p, g, s0, s1):
    t = type(p[0])
    b1 = hyper[HA]
    b2 = hyper[HB]
    step_size = hyper[LR] / (1.0 - b1**step)
    root_bc2 = math.sqrt(1.0 - b2**step)
    wd, eps = t(hyper[WD]), t(hyper[EPS])
    _adam(p, g, s0, s1, wd, t(step_size), t(b1), t(1.0 - b1), t(b2), t(1.0 - b2), t(root_bc2), eps)


_STEPS = {
    SGD_CODE: _sgd_step,
    MOMENTUM: _momentum_step,
    NESTEROV: _nesterov_step,
    ADAGRAD: _adagrad_step,
    RMSPROP: _rmsprop_step,
    ADAM: _adam_step,
}
_step_by_code = dispatch_by_code(_STEPS, "optimizer_step_by_code")  # f(code, hyper, step, ...)
_SLOTS = {SGD_CODE: 0, MOMENTUM: 1, NESTEROV: 1, ADAGRAD: 1, RMSPROP: 1, ADAM: 2}  # state used


@kernel_factory
def optimizer_kernel(code: int, dtype: Any) -> int:
    """Address of the compiled update of one optimizer, for one dtype (0 for ``NONE``).

    Compiled on first use (or loaded from numba's cache), so a run compiles
    only the optimizers it uses; called through :func:`call_update`.

    Parameters
    ----------
    code : int
        Optimizer code (``NONE``, ``SGD_CODE`` ... ``ADAM``).
    dtype : numpy.dtype or str
        float32 or float64: the parameters' type.

    Returns
    -------
    int
        Address of a C function ``void(p, g, s0, s1, n, hyper, step)``.
    """
    if code == NONE:
        return 0
    slots = _SLOTS[code]
    item = pointer_to(dtype)
    i64 = types.int64
    sig = types.void(item, item, item, item, i64, types.CPointer(types.float64), i64)

    def kernel(p_ptr, g_ptr, s0_ptr, s1_ptr, n, hyper_ptr, step):
        p = carray(p_ptr, (n,))
        g = carray(g_ptr, (n,))
        s0 = carray(s0_ptr, (n if slots >= 1 else 0,))  # unused slots may be empty
        s1 = carray(s1_ptr, (n if slots >= 2 else 0,))
        hyper = carray(hyper_ptr, (N_HYPER,))
        _step_by_code(code, hyper, step, p, g, s0, s1)

    return compile_kernel(kernel, sig)


@njit(inline="always", cache=True, error_model="numpy")
def call_update(
    kernel: int,
    hyper: np.ndarray,
    step: int,
    p: np.ndarray,
    g: np.ndarray,
    s0: np.ndarray,
    s1: np.ndarray,
) -> None:
    """One optimizer step on the flat parameters ``p`` with gradients ``g``.

    Parameters
    ----------
    kernel : int
        :func:`optimizer_kernel` of the optimizer and the dtype of ``p``.
    hyper : float64 array
        ``[lr, a, b, eps, weight_decay, 0]`` (``a``, ``b``: momentum, decay or
        the betas).
    step : int
        1-based index of this step (Adam's bias corrections).
    p, g, s0, s1 : 1-D C-contiguous arrays of the model dtype
        Parameters, gradients and the two state slots (unused slots may be empty).
    """
    if kernel == 0:
        raise ValueError("no optimizer kernel: pass optim.optimizer_kernel(code, dtype)")
    call_void(kernel, (p, g, s0, s1, p.shape[0], hyper, step))


@njit(cache=True, error_model="numpy")
def _apply(kernel, hyper, step, p, g, s0, s1):
    call_update(kernel, hyper, step, p, g, s0, s1)


def check_update(
    code: int, hyper: Any, step: Any, p: Any, g: Any, s0: Any, s1: Any, *, contiguous: bool
) -> None:
    """Check the operands of one optimizer step (:func:`apply_update` and its CUDA twin).

    The kernels take their length from ``p`` and read ``g`` and the state slots
    the optimizer uses at the same indices (the CPU kernel through raw
    pointers): a shorter operand would be read and written out of bounds.

    Parameters
    ----------
    code : int
        Optimizer code (``NONE`` ... ``ADAM``).
    hyper : array
        ``Optimizer.hyper()``: ``N_HYPER`` float64 values.
    step : int
        1-based index of this step.
    p, g, s0, s1 : arrays (host or device)
        Parameters, gradients and the two state slots.  ``g`` and the slots the
        optimizer uses (none for SGD, ``s0`` for momentum, Nesterov, AdaGrad
        and RMSprop, both for Adam) must have ``p``'s 1-D shape and dtype;
        unused slots are not read.
    contiguous : bool
        Whether the operands must also be C-contiguous (the CPU kernel reads
        them as flat memory; the CUDA kernel indexes them).

    Raises
    ------
    ValueError
        Naming the operand and what was expected.
    TypeError
        If ``step`` is not an integer.
    """
    if code != NONE and code not in _SLOTS:
        raise ValueError(f"code: expected an optimizer code 0-{ADAM}, got {code!r}")
    hyper_shape = tuple(getattr(hyper, "shape", ()))
    if hyper_shape != (N_HYPER,) or np.dtype(getattr(hyper, "dtype", None)) != np.float64:
        raise ValueError(
            f"hyper: expected {N_HYPER} float64 values (Optimizer.hyper()), got "
            f"{getattr(hyper, 'dtype', type(hyper).__name__)} of shape {hyper_shape}"
        )
    check_int(step, "step", low=1, high=2**63 - 1)
    dtype = np.dtype(p.dtype)
    if dtype not in DTYPES.values() or len(p.shape) != 1:
        raise ValueError(f"p: expected a 1-D float32 or float64 array, got {dtype} {p.shape}")
    used = (("g", g), ("s0", s0), ("s1", s1))[: 1 + _SLOTS.get(code, 0)]
    for name, a in (("p", p), *used):
        if tuple(a.shape) != tuple(p.shape) or np.dtype(a.dtype) != dtype:
            raise ValueError(f"{name}: expected p's {dtype} {p.shape}, got {a.dtype} {a.shape}")
        if contiguous and not a.flags.c_contiguous:
            raise ValueError(f"{name}: expected a C-contiguous array, got a strided view")


def apply_update(code: int, hyper: np.ndarray, step: int, p: Any, g: Any, s0: Any, s1: Any) -> None:
    """One optimizer step on host arrays, in place (``NONE`` does nothing).

    Parameters
    ----------
    code : int
        Optimizer code.
    hyper : numpy.ndarray of float64
        ``Optimizer.hyper()``.
    step : int
        1-based index of this step.
    p, g, s0, s1 : numpy.ndarray
        Flat C-contiguous parameters, gradients and state slots of one dtype
        (see :func:`call_update`; unused slots are not read).

    Raises
    ------
    ValueError
        If the operands do not fit (:func:`check_update`).
    """
    check_update(code, hyper, step, p, g, s0, s1, contiguous=True)
    if code != NONE:
        _apply(optimizer_kernel(code, p.dtype), hyper, step, p, g, s0, s1)


# ----------------------------------------------------------------------------- Python side
@dataclass
class OptimizerState:
    """Per-model optimizer state.

    Attributes
    ----------
    slots : numpy.ndarray, (2, n_params), or (2, 0) when the optimizer keeps none
        The two state slots (velocity; Adam's moments; AdaGrad's and RMSprop's sums).
    step : int
        Updates taken so far (Adam's bias corrections).
    """

    slots: np.ndarray
    step: int = 0


# Every hyperparameter's check, applied whenever it is assigned (in __init__ or later).
_CHECKS = {
    "lr": check_positive,
    "weight_decay": check_nonneg,
    "momentum": check_unit_interval,
    "decay": check_unit_interval,
    "beta1": check_unit_interval,
    "beta2": check_unit_interval,
    "eps": check_positive,
}


def _check_nesterov_momentum(value: Any, name: str) -> float:
    """A momentum in (0, 1): with 0, Nesterov's update is plain SGD (PyTorch refuses it too)."""
    value = check_unit_interval(value, name)
    if value == 0:
        raise ValueError(
            f"{name}: expected a number in (0, 1) with Nesterov (0 is plain SGD), got {value}"
        )
    return value


class Optimizer:
    """Base class: hyperparameters, their lowering, and per-model state.

    Subclasses set ``code``, ``n_slots`` and implement :meth:`_extra` (the
    hyperparameters after ``lr``).

    Parameters
    ----------
    lr : float
        Learning rate, finite and > 0.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code: ClassVar[int] = NONE
    n_slots: ClassVar[int] = 0
    _checks: ClassVar[dict[str, Any]] = _CHECKS

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = lr
        self.weight_decay = weight_decay
        self._states: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __setattr__(self, name: str, value: Any) -> None:
        # A hyperparameter changed after construction (a learning-rate schedule
        # between fits) is checked like one given to __init__.
        check = self._checks.get(name)
        super().__setattr__(name, value if check is None else check(value, name))

    def _extra(self) -> tuple[float, float, float]:
        return 0.0, 0.0, 0.0

    def hyper(self) -> np.ndarray:
        """The hyperparameters as the kernel's float64 array ``[lr, a, b, eps, wd, 0]``.

        Returns
        -------
        numpy.ndarray of float64, shape (6,)
            ``a``, ``b``: momentum, decay or the betas (0 where unused); ``eps`` 0
            where unused; ``wd`` is ``weight_decay``.
        """
        a, b, eps = self._extra()
        return np.array([self.lr, a, b, eps, self.weight_decay, 0.0], dtype=np.float64)

    def state_for(self, model: Any, n_params: int, dtype: np.dtype) -> OptimizerState:
        """The state this optimizer keeps for ``model`` (created at zero on first use).

        The state is created afresh (zero slots, step 0) when none exists for
        ``model`` or its slots do not match ``n_params`` and ``dtype``.

        Parameters
        ----------
        model : object
            The model the state belongs to (held by a weak reference).
        n_params : int
            Number of parameters of the model (the length of each slot).
        dtype : numpy.dtype
            The model dtype, the slots' type.

        Returns
        -------
        OptimizerState
            ``slots`` of shape ``(2, n_params)``, or ``(2, 0)`` for an optimizer
            without state (plain SGD).
        """
        state = self._states.get(model)
        shape = (2, n_params if self.n_slots else 0)  # two slots; none for plain SGD
        if state is None or state.slots.shape != shape or state.slots.dtype != dtype:
            state = OptimizerState(np.zeros(shape, dtype=dtype))
            self._states[model] = state
        return state

    def reset(self) -> None:
        """Forget the state of every model."""
        self._states = weakref.WeakKeyDictionary()

    # A WeakKeyDictionary does not pickle (nor travel to a process pool): the
    # state goes as (model, state) pairs, so a model pickled with its optimizer
    # continues from its state, as a PyTorch optimizer pickled with its parameters.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k != "_states"}
        state["_states"] = list(self._states.items())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        pairs = state.pop("_states", [])
        for key, value in state.items():
            setattr(self, key, value)  # checked, as in __init__
        self._states = weakref.WeakKeyDictionary(pairs)

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class NoUpdate(Optimizer):
    """Leaves the parameters alone (used to compute gradients with the training kernel)."""

    code = NONE

    def __init__(self) -> None:
        super().__init__(1.0)


class SGD(Optimizer):
    """Plain SGD: ``p -= lr * (grad + weight_decay * p)`` (``torch.optim.SGD``).

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and > 0.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0.
    """

    code = SGD_CODE

    def __init__(self, lr: float = 0.01, *, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)


class Momentum(Optimizer):
    """Heavy-ball momentum, ``torch.optim.SGD(momentum=..., dampening=0)``.

    ``v = momentum * v + g;  p -= lr * v``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and > 0.
    momentum : float, default 0.9
        Decay of the velocity ``v``, in [0, 1).
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code = MOMENTUM
    n_slots = 1

    def __init__(
        self, lr: float = 0.01, momentum: float = 0.9, *, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = momentum

    def _extra(self) -> tuple[float, float, float]:
        return self.momentum, 0.0, 0.0


class Nesterov(Momentum):
    """Nesterov momentum, ``torch.optim.SGD(momentum=..., nesterov=True)``.

    ``v = momentum * v + g;  p -= lr * (g + momentum * v)``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and > 0.
    momentum : float, default 0.9
        Decay of the velocity ``v``, in (0, 1): 0, which would run plain SGD, is
        refused, as PyTorch refuses ``nesterov=True`` without momentum.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code = NESTEROV
    _checks: ClassVar[dict[str, Any]] = {**_CHECKS, "momentum": _check_nesterov_momentum}


class AdaGrad(Optimizer):
    """AdaGrad, ``torch.optim.Adagrad`` (eps 1e-10, no lr decay).

    ``s += g**2;  p -= lr * g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and > 0.
    eps : float, default 1e-10
        Added to ``sqrt(s)`` in the denominator, finite and > 0.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code = ADAGRAD
    n_slots = 1

    def __init__(self, lr: float = 0.01, *, eps: float = 1e-10, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.eps = eps

    def _extra(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.eps


class RMSprop(Optimizer):
    """RMSprop, ``torch.optim.RMSprop`` (``decay`` is PyTorch's ``alpha``).

    ``s = decay * s + (1 - decay) g**2;  p -= lr * g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, finite and > 0.
    decay : float, default 0.99
        Decay of the running mean ``s`` of ``g**2``, in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(s)`` in the denominator, finite and > 0.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code = RMSPROP
    n_slots = 1

    def __init__(
        self, lr: float = 0.01, decay: float = 0.99, eps: float = 1e-8, *, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        self.decay = decay
        self.eps = eps

    def _extra(self) -> tuple[float, float, float]:
        return self.decay, 0.0, self.eps


class Adam(Optimizer):
    """Adam with bias correction, ``torch.optim.Adam`` (L2 ``weight_decay``, not AdamW).

    ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2;``
    ``p -= (lr / (1 - b1**t)) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.

    Parameters
    ----------
    lr : float, default 0.001
        Learning rate, finite and > 0.
    beta1 : float, default 0.9
        ``b1``, decay of the first-moment estimate ``m``, in [0, 1).
    beta2 : float, default 0.999
        ``b2``, decay of the second-moment estimate ``v``, in [0, 1).
    eps : float, default 1e-8
        Added to the bias-corrected ``sqrt(v)`` in the denominator, finite and > 0.
    weight_decay : float, default 0.0
        L2 coefficient, finite and >= 0: ``g = grad + weight_decay * p``.
    """

    code = ADAM
    n_slots = 2

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def _extra(self) -> tuple[float, float, float]:
        return self.beta1, self.beta2, self.eps


_CLASSES: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}
NAMES: tuple[str, ...] = tuple(_CLASSES)


def get(spec: Any, name: str = "optimizer", **hyper: float) -> Optimizer:
    """Resolve an optimizer from an instance or a name (with the class's defaults).

    The defaults are the classes' own: lr 0.01 (Adam 0.001), momentum 0.9, the
    decays and eps of PyTorch (torch's SGD has lr 1e-3 and momentum 0).

    Parameters
    ----------
    spec : Optimizer or str
        An optimizer, or one of ``sgd, momentum, nesterov, adagrad, rmsprop, adam``
        (case-insensitive).
    name : str
        Argument name for error messages.
    **hyper : float
        Hyperparameters for a named optimizer (e.g. ``lr=0.1``).

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For an unknown name, a hyperparameter the named class does not take, or
        hyperparameters given with an instance (naming ``name``).
    """
    if isinstance(spec, Optimizer):
        if hyper:  # not silently dropped: an instance keeps its own hyperparameters
            raise ValueError(
                f"{name}: hyperparameters {sorted(hyper)} are for an optimizer given by "
                f"name; got an Optimizer instance, {spec!r}"
            )
        return spec
    if not isinstance(spec, str) or spec.lower() not in _CLASSES:
        raise ValueError(f"{name}: expected an Optimizer or one of {NAMES}, got {spec!r}")
    cls = _CLASSES[spec.lower()]
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(hyper) - set(accepted))
    if unknown:
        raise ValueError(
            f"{name}: {spec!r} takes the hyperparameters {accepted}, got {unknown} as well"
        )
    return cls(**hyper)
