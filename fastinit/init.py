"""Weight initializers with the exact semantics of the frameworks they come from.

Every initializer has the signature::

    name(shape, *, <its parameters>, seed=0, stream=0, dtype=None, out=None, device="cpu")

``dtype`` is float32 unless ``out`` is given (then ``out.dtype``); with ``out`` the
array is filled in place and returned.

``device="cuda"`` returns a numba CUDA device array (``out``, if given, must be
one) holding the same bits as the CPU result for the same ``(seed, stream,
shape, dtype)``.  One wrapper, :func:`_device_aware`, handles the device for every
initializer: the random fills run as CUDA kernels (:mod:`fastinit.random_cuda`;
float64 normal and truncated normal are computed on the host and copied, see
there); ``constant``, ``identity``, ``orthogonal`` (QR), ``sparse`` and
``martens_sparse`` are computed on the host and copied to the device.

Random values are pure functions of ``(seed, stream, element index)`` (see
:mod:`fastinit.random`), so they do not depend on the number of threads, and two
tensors with different ``stream`` are independent.

Shapes follow Keras: a dense weight is ``(fan_in, fan_out)`` (the ``x @ W``
convention), an N-d kernel is ``(*receptive_field, in, out)``; see
:func:`fan_in_and_fan_out`.

One source of truth per formula: :func:`variance_scaling` is the general
initializer, and the Keras names (``glorot_*``, ``he_*``, ``lecun_*``) and the
PyTorch names (``xavier_*``, ``kaiming_*``) are thin specialisations of it.

=====================  ===================  =========================================  ==========
name                   distribution         variance / bounds                          semantics
=====================  ===================  =========================================  ==========
zeros, ones, constant  constant             0                                          Keras
identity               ``gain * eye``       0                                          Keras
normal                 N(mean, std^2)       std^2                                      PyTorch
uniform                U(low, high)         (high - low)^2 / 12                        PyTorch
truncated_normal       N trunc. to [a, b]   < std^2 (no rescaling)                     PyTorch
variance_scaling       see below            scale / n, n = fan_in|fan_out|fan_avg      Keras
glorot_normal          trunc. normal        2 / (fan_in + fan_out)                     Keras
glorot_uniform         U(-l, l)             l = sqrt(6 / (fan_in + fan_out))           Keras
he_normal              trunc. normal        2 / fan_in                                 Keras
he_uniform             U(-l, l)             l = sqrt(6 / fan_in)                       Keras
lecun_normal           trunc. normal        1 / fan_in                                 Keras
lecun_uniform          U(-l, l)             l = sqrt(3 / fan_in)                       Keras
xavier_normal          N(0, std^2)          std = gain sqrt(2 / (fan_in + fan_out))    PyTorch
xavier_uniform         U(-l, l)             l = gain sqrt(6 / (fan_in + fan_out))      PyTorch
kaiming_normal         N(0, std^2)          std = gain / sqrt(fan)                     PyTorch
kaiming_uniform        U(-l, l)             l = gain sqrt(3 / fan)                     PyTorch
orthogonal             Haar orthogonal      W^T W = gain^2 I                           PyTorch
sparse                 N(0, std^2), zeros   ceil(sparsity * rows) zeros per column     PyTorch
martens_sparse         N(0, std^2), zeros   k non-zero incoming weights per unit       Martens
uniform_unit_scaling   U(-l, l)             l = factor sqrt(3 / prod(shape[:-1]))      TF1
=====================  ===================  =========================================  ==========

Keras' truncated normal is cut at two standard deviations; its standard
deviation is divided by 0.87962566103423978, the std of a standard normal
truncated to [-2, 2], so the variance is exactly ``scale / n``.

The Keras normals (``glorot_normal``, ``he_normal``, ``lecun_normal``) are that
truncated normal; the PyTorch normals (``xavier_normal``, ``kaiming_normal``) are
untruncated, as ``torch.nn.init.xavier_normal_`` and ``kaiming_normal_`` are: same
variance, different distributions (no draw of ``he_normal`` lies beyond
``2 sqrt(2 / fan_in) / 0.8796`` as rounded to the dtype).  The alias ``msra``
(Caffe's ``MSRAFiller``, the Gaussian of He et al. 2015) is ``kaiming_normal``;
``he`` is Keras' ``he_normal``.

Shapes are tuples of non-negative integers.  A shape with a zero dimension,
such as ``(0, 5)`` or ``(0,)``, gives an empty array of that shape and dtype
(on the device too, where no kernel is launched), without a warning: nothing
is drawn, and the other arguments are checked as for any shape.  PyTorch's initializers leave
an empty tensor as it is (with a warning) and Keras and JAX return an empty
array.  A negative or non-integer dimension is refused (``ValueError`` or
``TypeError`` naming ``shape``), and so is a shape of more than ``2**60 - 1``
elements, zero dimensions left out (NumPy's limit for float64, which it
applies to empty arrays too: ``ValueError`` naming ``shape``).  Shapes with fewer than two
dimensions get Keras' fans (:func:`fan_in_and_fan_out`), also under the PyTorch
names, where PyTorch and JAX refuse them; ``orthogonal``, ``identity``,
``sparse`` and ``martens_sparse`` need a matrix, as in both frameworks.
"""

from __future__ import annotations

import functools
import inspect
import math
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from fastinit import random as _rng
from fastinit._cuda import check_device, cuda_module, device_memory, is_device_array
from fastinit._validate import (
    check_choice,
    check_dtype,
    check_finite,
    check_int,
    check_nonneg,
    check_out,
    check_positive,
    check_representable,
    check_shape,
)

Initializer = Callable[..., np.ndarray]

# std of a standard normal truncated to [-2, 2] (Keras' VarianceScaling constant)
TRUNCATED_NORMAL_STD = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")
_F64_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64


# ----------------------------------------------------------------------------- helpers
def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight shape, Keras convention.

    Keras' ``compute_fans``: a weight ``(*receptive_field, in, out)`` has
    ``fan_in = in * prod(receptive_field)`` and ``fan_out = out *
    prod(receptive_field)``.  These are PyTorch's
    ``_calculate_fan_in_and_fan_out`` fans of the same layer's weight, laid out
    ``(out, in, *receptive_field)`` there (``(out, in)`` for a dense layer), and
    JAX's with its default axes.  PyTorch and JAX refuse shapes with fewer than
    two dimensions; Keras' rule below is used for them.

    Parameters
    ----------
    shape : tuple of int
        ``()`` and ``(n,)`` give ``(1, 1)`` and ``(n, n)``; ``(fan_in, fan_out)``
        for a dense layer; ``(*receptive_field, in, out)`` for convolutions, where
        both fans are multiplied by ``prod(receptive_field)``.  Dimensions are
        non-negative: a zero-size shape has a zero fan, as in Keras (the
        initializers divide by ``max(1, fan)``).

    Returns
    -------
    tuple of int
        ``(fan_in, fan_out)``.
    """
    shape = check_shape(shape, allow_zero=True)
    if len(shape) == 0:  # a scalar
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _target(
    shape: Any, dtype: Any, out: np.ndarray | None, min_ndim: int = 0
) -> tuple[tuple[int, ...], np.ndarray]:
    """Validate shape, dtype and out; return the shape and the array to fill."""
    shape = check_shape(shape, "shape", min_ndim=min_ndim, allow_zero=True)
    if out is None:
        return shape, np.empty(shape, dtype=check_dtype("float32" if dtype is None else dtype))
    if _on_device(out):
        return shape, _check_device_out(out, shape, dtype)
    if not isinstance(out, np.ndarray):
        return shape, check_out(out, shape, None)  # raises: names out and what it is
    dt = check_dtype(out.dtype, "out") if dtype is None else check_dtype(dtype)
    return shape, check_out(out, shape, dt)


def _on_device(out: Any) -> bool:
    """Whether ``out`` is a CUDA device array (an attribute check: imports nothing)."""
    return out is not None and not isinstance(out, np.ndarray) and is_device_array(out)


def _check_device_out(out: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Check a device ``out`` against the expected shape and dtype (``dtype`` None: its own)."""
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out: expected shape {tuple(shape)}, got {tuple(out.shape)}")
    expected = check_dtype(out.dtype, "out") if dtype is None else check_dtype(dtype)
    if out.dtype != expected:
        raise TypeError(f"out: expected dtype {expected}, got {out.dtype}")
    if not out.is_c_contiguous():
        raise ValueError("out: expected a C-contiguous device array")
    return out


def _fills(out: Any) -> Any:
    """The module whose ``fill_*`` functions fill ``out``: the CPU or the CUDA one."""
    if _on_device(out):
        from fastinit import random_cuda

        return random_cuda
    return _rng


_DEVICE_DOC = """device : {'cpu', 'cuda'}
    Where the result lives.  ``'cuda'`` returns a numba CUDA device array
    (``out``, if given, must be one) with the CPU result's exact bits; a
    device ``out`` without ``device`` also means ``'cuda'``.
"""


def _device_aware(fn: Initializer, on_host: bool) -> Initializer:
    """Give the initializer ``fn`` the ``device`` keyword (the one place handling it).

    ``on_host`` initializers (constant, identity, orthogonal, sparse) are
    computed on the host and copied to the device; the others receive a device
    ``out`` and fill it with the CUDA twins of the random fills (``_fills``).
    A zero-size shape is computed on the host (which checks the arguments) and
    gives an empty device array: no kernel is launched, nothing is copied.
    Without ``device``, a device ``out`` means ``'cuda'`` (how the initializers
    that call one another pass the device on).
    """

    @functools.wraps(fn)
    def init(shape: tuple[int, ...], **kw: Any) -> Any:
        out = kw.get("out")
        dev_out = _on_device(out)
        device = kw.pop("device", "cuda" if dev_out else "cpu")
        device = check_device(device)
        if device == "cpu":
            if dev_out:
                raise ValueError("out: a CUDA device array needs device='cuda', got device='cpu'")
            return fn(shape, **kw)
        if out is not None and not dev_out:
            raise ValueError(
                f"out: device='cuda' needs a numba CUDA device array, got {type(out).__name__}"
            )
        cuda = cuda_module()
        dims = check_shape(shape, allow_zero=True)
        if on_host or 0 in dims:  # an empty array: no kernel, nothing to copy
            dtype = kw.get("dtype")
            if dtype is None and out is not None:
                dtype = check_dtype(out.dtype, "out")  # named as on the CPU
            host = fn(shape, **{**kw, "out": None, "dtype": dtype})
            if out is None:
                with device_memory("shape", host.shape, host.dtype):
                    return cuda.to_device(host)
            _check_device_out(out, host.shape, host.dtype)
            if host.size:  # the simulator's copy of an empty N-d array fails on its strides
                out.copy_to_device(host)
            return out
        if out is None:
            dtype = check_dtype("float32" if kw.get("dtype") is None else kw["dtype"])
            with device_memory("shape", dims, dtype):
                kw["out"] = cuda.device_array(dims, dtype)
        return fn(shape, **kw)

    sig = inspect.signature(fn)
    # "str": the module's annotations are strings (``from __future__ import annotations``)
    device = inspect.Parameter(
        "device", inspect.Parameter.KEYWORD_ONLY, default="cpu", annotation="str"
    )
    init.__signature__ = sig.replace(parameters=[*sig.parameters.values(), device])
    init.__annotations__ = {**fn.__annotations__, "device": "str"}  # a copy: fn keeps its own
    doc = inspect.cleandoc(fn.__doc__ or "")  # as Python 3.13 stores it: not indented
    if "\n\nReturns\n" in doc:
        doc = doc.replace("\n\nReturns\n", "\n" + _DEVICE_DOC + "\nReturns\n", 1)
    else:
        doc += "\n\n``device``: ``'cpu'`` or ``'cuda'``, as for :func:`normal`.\n"
    init.__doc__ = doc
    return init


# ----------------------------------------------------------------------------- constants
def constant(
    shape: tuple[int, ...],
    *,
    value: float = 0.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Every entry equal to ``value``.

    A constant (zero included) initialization leaves every hidden unit of a layer
    computing the same function, and gradient descent keeps them identical: the
    symmetry is never broken (see the ``symmetry`` experiment).  D. E. Rumelhart,
    G. E. Hinton and R. J. Williams, 'Learning internal representations by error
    propagation', Parallel Distributed Processing vol. 1, ch. 8, 1986 (why the
    weights start small and random); I. Goodfellow, Y. Bengio and A. Courville,
    'Deep Learning', MIT Press 2016, section 8.4.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    value : float
        The constant, finite.
    seed, stream : int
        Accepted for a uniform signature; unused.
    dtype : {'float32', 'float64'}, optional
        float32 unless ``out`` is given.
    out : numpy.ndarray, optional
        Array to fill in place.

    Returns
    -------
    numpy.ndarray
    """
    value = check_finite(value, "value")
    _rng.split_key(seed, stream)
    shape, out = _target(shape, dtype, out)
    out.fill(check_representable(value, "value", out.dtype))
    return out


def zeros(
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """All zeros: ``constant(value=0)``; the symmetry :func:`constant` cites never breaks.

    Parameters
    ----------
    shape, seed, stream, dtype, out
        As for :func:`constant`.

    Returns
    -------
    numpy.ndarray
        ``out`` if given, else a new array.
    """
    return constant(shape, value=0.0, seed=seed, stream=stream, dtype=dtype, out=out)


def ones(
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """All ones: ``constant(value=1)``; the symmetry :func:`constant` cites never breaks.

    Parameters
    ----------
    shape, seed, stream, dtype, out
        As for :func:`constant`.

    Returns
    -------
    numpy.ndarray
        ``out`` if given, else a new array.
    """
    return constant(shape, value=1.0, seed=seed, stream=stream, dtype=dtype, out=out)


def identity(
    shape: tuple[int, ...],
    *,
    gain: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``gain`` times the (possibly rectangular) identity matrix, Keras ``Identity``.

    Q. V. Le, N. Jaitly and G. E. Hinton, 'A simple way to initialize recurrent
    networks of rectified linear units', arXiv:1504.00941, 2015 (the IRNN).

    Parameters
    ----------
    shape : tuple of 2 int
        Matrix shape; rectangular shapes get ones on the main diagonal.
    gain : float
        Multiplier of the diagonal, finite.
    seed, stream, dtype, out
        As for :func:`constant`.

    Returns
    -------
    numpy.ndarray
    """
    gain = check_finite(gain, "gain")
    _rng.split_key(seed, stream)
    shape, out = _target(shape, dtype, out, min_ndim=2)
    if len(shape) != 2:
        raise ValueError(f"shape: identity needs a 2-D shape, got {shape}")
    gain = check_representable(gain, "gain", out.dtype)  # before ``out`` is written
    out.fill(0.0)
    np.fill_diagonal(out, gain)
    return out


# ----------------------------------------------------------------------------- plain random
def normal(
    shape: tuple[int, ...],
    *,
    mean: float = 0.0,
    std: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draws from N(mean, std^2), PyTorch ``normal_`` defaults.

    ``std=0.01`` is the classic small random init (AlexNet, Krizhevsky et al.
    2012), which in deep plain networks makes the activations vanish layer by layer.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    mean : float
        Mean, finite.
    std : float
        Standard deviation, finite and >= 0.
    seed, stream : int
        Key and stream of the counter-based generator, in [0, 2**64).
    dtype : {'float32', 'float64'}, optional
        float32 unless ``out`` is given.
    out : numpy.ndarray, optional
        Array to fill in place.

    Returns
    -------
    numpy.ndarray
    """
    shape, out = _target(shape, dtype, out)
    return _fills(out).fill_normal(out, mean, std, seed=seed, stream=stream)  # checks the rest


def uniform(
    shape: tuple[int, ...],
    *,
    low: float = 0.0,
    high: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draws from U[low, high), PyTorch ``uniform_`` defaults.

    With ``high = -low = 1 / sqrt(fan_in)`` it is the "commonly used heuristic"
    that X. Glorot and Y. Bengio, AISTATS 2010, eq. 1, start from.

    ``high`` itself can come out of rounding ``low + (high - low) u`` to the
    dtype (as in PyTorch), nothing above it, in float32 and float64 alike: where
    the spacing of the draws, ``(high - low) 2**-24`` or ``2**-53``, is finer than
    the dtype's spacing near ``high`` (e.g. a span of a few ulps of ``high``).

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    low, high : float
        Bounds, finite, ``low <= high``; in float32, ``high - low`` is 0 or at
        least ``2**-102`` (about 2e-31, see
        :func:`fastinit.random.uniform_constants`).
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    shape, out = _target(shape, dtype, out)
    return _fills(out).fill_uniform(out, low, high, seed=seed, stream=stream)  # checks the rest


def truncated_normal(
    shape: tuple[int, ...],
    *,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """N(mean, std^2) truncated to the absolute bounds [a, b], PyTorch ``trunc_normal_``.

    Inverse-CDF method, no rescaling: with ``alpha = (a - mean) / std`` and
    ``beta = (b - mean) / std``, ``x = mean + std sqrt(2) erfinv(u)`` for ``u``
    uniform on ``[2 Phi(alpha) - 1, 2 Phi(beta) - 1)``.  The variance is
    ``std^2 (1 - (beta phi(beta) - alpha phi(alpha)) / Z - ((phi(alpha) - phi(beta)) / Z)^2)``
    with ``Z = Phi(beta) - Phi(alpha)``: less than ``std^2``.  An interval so far
    in one tail that the inverse CDF cannot resolve it in ``dtype`` is drawn by
    rejection instead (:func:`fastinit.random.fill_truncated_normal`; C. P. Robert,
    'Simulation of truncated normal variables', Statistics and Computing 5, 1995).

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    mean : float
        Mean of the untruncated normal, finite.
    std : float
        Std of the untruncated normal, finite and > 0.
    a, b : float
        Absolute bounds, finite, ``a < b``.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    shape, out = _target(shape, dtype, out)
    return _fills(out).fill_truncated_normal(out, mean, std, a, b, seed=seed, stream=stream)


# ----------------------------------------------------------------------------- variance scaling
def variance_scaling(
    shape: tuple[int, ...],
    *,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Keras ``VarianceScaling``: variance ``scale / n`` whatever the distribution.

    The one formula behind LeCun (``scale=1, fan_in``: Y. LeCun et al., 'Efficient
    BackProp', 1998), Glorot (``scale=1, fan_avg``: X. Glorot and Y. Bengio,
    AISTATS 2010) and He (``scale=2, fan_in``: K. He, X. Zhang, S. Ren and J. Sun,
    'Delving deep into rectifiers', ICCV 2015).

    ``n`` is ``max(1, fan_in)``, ``max(1, fan_out)`` or ``max(1, (fan_in + fan_out) / 2)``
    for ``mode`` = ``fan_in``, ``fan_out``, ``fan_avg``.  Then

    - ``truncated_normal``: N(0, s^2) truncated to [-2 s, 2 s] with
      ``s = sqrt(scale / n) / 0.87962566103423978`` (the truncation's std correction);
    - ``untruncated_normal``: N(0, scale / n);
    - ``uniform``: U(-l, l) with ``l = sqrt(3 scale / n)``.

    ``distribution='normal'`` is refused as ambiguous: Keras' and TensorFlow's
    ``VarianceScaling`` read it as ``truncated_normal``, JAX's ``variance_scaling``
    as ``untruncated_normal``.

    Parameters
    ----------
    shape : tuple of int
        Array shape; fans from :func:`fan_in_and_fan_out`.
    scale : float
        Variance multiplier, finite and > 0.
    mode : {'fan_in', 'fan_out', 'fan_avg'}
        Which fan divides the scale.
    distribution : {'truncated_normal', 'untruncated_normal', 'uniform'}
        Sampling distribution.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    scale = check_positive(scale, "scale")
    kw = {"seed": seed, "stream": stream, "dtype": dtype, "out": out}
    return _variance_scaling(shape, scale, mode, distribution, kw, ("scale", scale))


def _variance_scaling(shape, scale, mode, distribution, kw, source, root=None) -> np.ndarray:
    """``variance_scaling`` with ``scale`` > 0; ``source`` = (name, value) the user gave;
    ``root`` the gain whose square ``scale`` is, if one was given (:func:`_spread`)."""
    mode = check_choice(mode, "mode", _MODES)
    distribution = check_choice(distribution, "distribution", _DISTRIBUTIONS)
    shape = check_shape(shape, allow_zero=True)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    std, limit = _spread(scale, max(1.0, fan), root)
    if distribution == "truncated_normal":
        s = std / TRUNCATED_NORMAL_STD
        _check_reach(2.0 * s, source, kw)
        return truncated_normal(shape, mean=0.0, std=s, a=-2.0 * s, b=2.0 * s, **kw)
    if distribution == "untruncated_normal":
        _check_reach(_rng.Z_MAX * std, source, kw)
        return normal(shape, mean=0.0, std=std, **kw)
    _check_reach(2.0 * limit, source, kw)
    return uniform(shape, low=-limit, high=limit, **kw)


def _spread(scale: float, n: float, root: float | None) -> tuple[float, float]:
    """``(sqrt(scale / n), sqrt(3 scale / n))``, the std and the uniform bound of variance
    ``scale / n``; where that variance is not a normal float64 (a gain of 1e-170 or 1e200
    squared, a scale of 5e-324), from ``root = sqrt(scale)`` (the gain, or taken here)."""
    variance = scale / n
    if _F64_TINY <= variance < math.inf:
        return math.sqrt(variance), math.sqrt(3.0 * variance)
    std = (math.sqrt(scale) if root is None else root) / math.sqrt(n)
    return std, math.sqrt(3.0) * std


def _check_reach(reach: float, source: tuple[str, float], kw: dict[str, Any]) -> None:
    """Raise naming the user's parameter when the fill needs a magnitude ``reach`` (its
    largest draw, or a uniform's span) beyond the target dtype, before the fill would
    name its own ``std`` or ``low``."""
    dtype, out = kw["dtype"], kw["out"]
    if dtype is None and out is not None:  # a bad ``out`` is left to the fill to name
        dtype = getattr(out, "dtype", None)
        if dtype not in (np.float32, np.float64):
            return
    dtype = check_dtype("float32" if dtype is None else dtype)
    top = float(np.finfo(dtype).max)
    if not reach <= top:
        name, value = source
        raise ValueError(
            f"{name}: {value:.4g} is too large for this shape in {dtype}: the fill needs "
            f"{reach:.4g}, beyond the range ({top:.4g})"
        )


_KERAS_DOC = """{doc}

``variance_scaling(scale={scale}, mode='{mode}', distribution='{distribution}')``; parameters
as for :func:`variance_scaling`.

Parameters
----------
shape : tuple of int
    Array shape; fans from :func:`fan_in_and_fan_out`.
seed, stream : int
    Key and stream of the counter-based generator, in [0, 2**64).
dtype : {{'float32', 'float64'}}, optional
    float32 unless ``out`` is given.
out : numpy.ndarray, optional
    Array to fill in place.

Returns
-------
numpy.ndarray
    ``out`` if given, else a new array.
"""


def _keras(scale: float, mode: str, distribution: str, doc: str) -> Initializer:
    """A Keras-named initializer: ``variance_scaling`` with fixed arguments.

    ``doc`` is the summary and references; the rest of the docstring
    (``Parameters``, ``Returns``) is generated here, indented as a docstring.
    """

    def init(
        shape: tuple[int, ...],
        *,
        seed: int = 0,
        stream: int = 0,
        dtype: Any = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        return variance_scaling(
            shape,
            scale=scale,
            mode=mode,
            distribution=distribution,
            seed=seed,
            stream=stream,
            dtype=dtype,
            out=out,
        )

    text = _KERAS_DOC.format(doc=doc, scale=scale, mode=mode, distribution=distribution)
    summary, _, rest = text.partition("\n")
    init.__doc__ = summary + "\n" + textwrap.indent(rest, "    ") + "    "
    return init


glorot_normal = _keras(
    1.0,
    "fan_avg",
    "truncated_normal",
    "Glorot (Xavier) normal, Keras: truncated normal with variance 2 / (fan_in + fan_out).\n\n"
    "X. Glorot and Y. Bengio, 'Understanding the difficulty of training deep feedforward\n"
    "neural networks', AISTATS 2010.  For tanh and sigmoid networks.  Keras'\n"
    "``GlorotNormal``: N(0, s^2) cut at +-2 s, s = sqrt(2 / (fan_in + fan_out)) / 0.8796...;\n"
    "PyTorch's ``xavier_normal_`` is untruncated: :func:`xavier_normal`, same variance.",
)
glorot_uniform = _keras(
    1.0,
    "fan_avg",
    "uniform",
    "Glorot (Xavier) uniform, Keras: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).\n\n"
    "X. Glorot and Y. Bengio, AISTATS 2010.",
)
he_normal = _keras(
    2.0,
    "fan_in",
    "truncated_normal",
    "He normal, Keras: truncated normal with variance 2 / fan_in.\n\n"
    "K. He, X. Zhang, S. Ren and J. Sun, 'Delving deep into rectifiers', ICCV 2015.\n"
    "For ReLU-family networks: keeps the activations' second moment constant with depth.\n"
    "Keras' ``HeNormal``: N(0, s^2) cut at +-2 s, s = sqrt(2 / fan_in) / 0.87962566103423978.\n"
    "The paper's Gaussian and PyTorch's ``kaiming_normal_`` are untruncated: that is\n"
    ":func:`kaiming_normal` (alias ``msra``), same variance.",
)
he_uniform = _keras(
    2.0,
    "fan_in",
    "uniform",
    "He uniform, Keras: U(-l, l), l = sqrt(6 / fan_in).\n\nK. He et al., ICCV 2015.",
)
lecun_normal = _keras(
    1.0,
    "fan_in",
    "truncated_normal",
    "LeCun normal, Keras: truncated normal with variance 1 / fan_in.\n\n"
    "Y. LeCun, L. Bottou, G. Orr and K.-R. Mueller, 'Efficient BackProp', 1998;\n"
    "the init of self-normalizing (SELU) networks (Klambauer et al., NeurIPS 2017).\n"
    "Keras' ``LecunNormal``: N(0, s^2) cut at +-2 s, s = sqrt(1 / fan_in) / 0.8796...;\n"
    "the untruncated N(0, 1 / fan_in) is ``kaiming_normal(nonlinearity='linear')``.",
)
lecun_uniform = _keras(
    1.0,
    "fan_in",
    "uniform",
    "LeCun uniform, Keras: U(-l, l), l = sqrt(3 / fan_in).\n\nY. LeCun et al., 1998.",
)


# ----------------------------------------------------------------------------- PyTorch names
_GAIN_ONE = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain for a nonlinearity.

    ================================  ===========================================
    nonlinearity                      gain
    ================================  ===========================================
    linear, conv*, identity, sigmoid  1
    tanh                              5/3
    relu                              sqrt(2)
    leaky_relu                        sqrt(2 / (1 + negative_slope^2)), slope 0.01
                                      by default
    selu                              3/4
    ================================  ===========================================

    Parameters
    ----------
    nonlinearity : str
        Name, as in ``torch.nn.init.calculate_gain``.
    param : float, optional
        The negative slope of ``leaky_relu``.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        ``nonlinearity`` is no str.
    ValueError
        An unknown ``nonlinearity``, or a ``param`` that is not finite.
    """
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity: expected a name (str), got {type(nonlinearity).__name__}")
    name = nonlinearity.lower()
    if name in _GAIN_ONE:
        return 1.0
    if name == "tanh":
        return 5.0 / 3
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        slope = 0.01 if param is None else check_finite(param, "param")
        if abs(slope) < 1e150:
            return math.sqrt(2.0 / (1 + slope**2))
        return math.sqrt(2.0) / abs(slope)  # 1 + slope**2 would overflow; equal to rounding
    if name == "selu":
        return 3.0 / 4
    valid = ", ".join(repr(n) for n in (*_GAIN_ONE, "tanh", "relu", "leaky_relu", "selu"))
    raise ValueError(f"nonlinearity: expected one of {valid}, got {nonlinearity!r}")


def xavier_normal(
    shape: tuple[int, ...],
    *,
    gain: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Xavier normal, PyTorch: N(0, std^2), ``std = gain sqrt(2 / (fan_in + fan_out))``.

    X. Glorot and Y. Bengio, 'Understanding the difficulty of training deep
    feedforward neural networks', AISTATS 2010.  ``variance_scaling(scale=gain^2,
    mode='fan_avg', distribution='untruncated_normal')``.  Untruncated, as
    ``torch.nn.init.xavier_normal_``; Keras' ``GlorotNormal`` is a truncated
    normal of the same variance (:func:`glorot_normal`).  Fans from
    :func:`fan_in_and_fan_out` (shapes below 2-D included, which PyTorch refuses).

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    gain : float
        Multiplier of the std, finite and >= 0 (see :func:`calculate_gain`).
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    source = ("gain", gain)
    gain = check_nonneg(gain, "gain")  # as PyTorch, which rejects the negative std
    return _scaled(shape, gain, "fan_avg", "untruncated_normal", seed, stream, dtype, out, source)


def xavier_uniform(
    shape: tuple[int, ...],
    *,
    gain: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Xavier uniform, PyTorch: U(-l, l), ``l = gain sqrt(6 / (fan_in + fan_out))``.

    X. Glorot and Y. Bengio, AISTATS 2010.  ``variance_scaling(scale=gain^2,
    mode='fan_avg', distribution='uniform')``; with ``gain=1``, Keras'
    ``GlorotUniform``.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    gain : float
        Multiplier of the bound, finite and >= 0 (see :func:`calculate_gain`).
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    source = ("gain", gain)
    gain = check_nonneg(gain, "gain")  # as PyTorch, which rejects the negative std
    return _scaled(shape, gain, "fan_avg", "uniform", seed, stream, dtype, out, source)


def _kaiming_gain(a: float, mode: str, nonlinearity: str) -> tuple[float, str]:
    mode = check_choice(mode, "mode", ("fan_in", "fan_out"))
    return calculate_gain(nonlinearity, check_finite(a, "a")), mode


def kaiming_normal(
    shape: tuple[int, ...],
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Kaiming (He) normal, PyTorch: N(0, std^2), ``std = gain / sqrt(fan)``.

    K. He, X. Zhang, S. Ren and J. Sun, 'Delving deep into rectifiers: surpassing
    human-level performance on ImageNet classification', ICCV 2015.
    ``gain = calculate_gain(nonlinearity, a)``; PyTorch's defaults (leaky_relu with
    a = 0) give ``gain = sqrt(2)``, i.e. variance ``2 / fan_in``.  Untruncated,
    as ``torch.nn.init.kaiming_normal_``, the paper and Caffe's ``MSRAFiller``
    (alias ``msra``); Keras' ``HeNormal`` is a truncated normal of the same
    variance (:func:`he_normal`, alias ``he``).  ``fan`` from
    :func:`fan_in_and_fan_out` (shapes below 2-D included, which PyTorch refuses).

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    a : float
        Negative slope of the rectifier (used with ``leaky_relu``).
    mode : {'fan_in', 'fan_out'}
        ``fan_in`` preserves the forward variance, ``fan_out`` the backward one.
    nonlinearity : str
        As for :func:`calculate_gain`.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    gain, mode = _kaiming_gain(a, mode, nonlinearity)
    return _scaled(shape, gain, mode, "untruncated_normal", seed, stream, dtype, out, ("a", a))


def kaiming_uniform(
    shape: tuple[int, ...],
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Kaiming (He) uniform, PyTorch: U(-l, l), ``l = gain sqrt(3 / fan)``.

    K. He et al., ICCV 2015.  ``l = sqrt(3) std`` of :func:`kaiming_normal`, as in
    ``torch.nn.init.kaiming_uniform_``; with the defaults, Keras' ``HeUniform``.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    a : float
        Negative slope of the rectifier (used with ``leaky_relu``).
    mode : {'fan_in', 'fan_out'}
        Which fan.
    nonlinearity : str
        As for :func:`calculate_gain`.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    gain, mode = _kaiming_gain(a, mode, nonlinearity)
    return _scaled(shape, gain, mode, "uniform", seed, stream, dtype, out, ("a", a))


def _scaled(shape, gain, mode, distribution, seed, stream, dtype, out, source) -> np.ndarray:
    """``variance_scaling(scale=gain**2)``, allowing gain 0 (zeros); ``source`` is the
    (name, value) pair the gain came from, named if the draws would overflow."""
    kw = {"seed": seed, "stream": stream, "dtype": dtype, "out": out}
    if gain == 0.0:
        return zeros(shape, **kw)
    return _variance_scaling(shape, gain * gain, mode, distribution, kw, source, root=gain)


def uniform_unit_scaling(
    shape: tuple[int, ...],
    *,
    factor: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """TF1 ``uniform_unit_scaling_initializer``: U(-l, l), ``l = factor sqrt(3 / input_size)``.

    ``input_size = max(prod(shape[:-1]), 1)`` (the fan-in of a dense ``(fan_in,
    fan_out)`` weight; 1 for a 1-D, scalar or ``(0, n)`` shape, as in TensorFlow).
    D. Sussillo and L. F. Abbott, 'Random walk initialization for training very
    deep feedforward networks', 2014.

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    factor : float
        Multiplier of the bound, finite and > 0.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    factor = check_positive(factor, "factor")
    shape = check_shape(shape, allow_zero=True)
    input_size = max(math.prod(shape[:-1]), 1)  # () and 1-D shapes: the empty product
    limit = factor * math.sqrt(3.0 / input_size)
    _check_reach(2.0 * limit, ("factor", factor), {"dtype": dtype, "out": out})
    return uniform(shape, low=-limit, high=limit, seed=seed, stream=stream, dtype=dtype, out=out)


# ----------------------------------------------------------------------------- structured
def orthogonal(
    shape: tuple[int, ...],
    *,
    gain: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(Semi-)orthogonal matrix, PyTorch ``orthogonal_`` / Keras ``Orthogonal``.

    A. M. Saxe, J. L. McClelland and S. Ganguli, 'Exact solutions to the
    nonlinear dynamics of learning in deep linear neural networks', ICLR 2014.
    The array is viewed as ``rows = prod(shape[:-1])`` by ``cols = shape[-1]``
    (Keras and JAX, for this module's ``(*receptive_field, in, out)`` layout: the
    ``out`` filters are the orthonormal vectors, as they are in PyTorch's
    ``rows = shape[0]`` of its ``(out, in, *receptive_field)`` layout; for 2-D
    shapes both rules are ``(fan_in, fan_out)``).  A standard normal matrix of
    that shape (transposed if ``rows < cols``) is factored as ``QR`` (float64),
    ``Q`` is multiplied by ``sign(diag(R))`` so it is Haar-distributed,
    transposed back, and scaled by ``gain``.  Hence ``W^T W = gain^2 I`` when
    ``rows >= cols`` and ``W W^T = gain^2 I`` otherwise.  The QR is fastinit's own
    (Householder, as LAPACK's unblocked one; within 1e-13 of NumPy's), on one
    thread: its bits depend on no thread count, and it leaves OpenBLAS's alone.

    Parameters
    ----------
    shape : tuple of int
        At least 2-D.
    gain : float
        Multiplier, finite.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    gain = check_finite(gain, "gain")
    _rng.split_key(seed, stream)
    shape, out = _target(shape, dtype, out, min_ndim=2)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = np.empty((max(rows, cols), min(rows, cols)))
    _rng.fill_normal(flat, 0.0, 1.0, seed=seed, stream=stream)
    q = _haar_q(flat)
    if rows < cols:
        q = q.T
    out.reshape(rows, cols)[...] = check_representable(gain, "gain", out.dtype) * q
    return out


_QR_CHUNK = 128  # columns of a chunk of _reflect: rows of 1 KiB, walked in order


@njit(cache=True, error_model="numpy")
def _reflect(v: np.ndarray, j: int, tau: float, a: np.ndarray, k0: int) -> None:
    """``a[j:, k0:] = (I - tau v v^T) a[j:, k0:]``, ``v = (1, v[j+1:])``, a chunk of
    columns at a time.

    The sums live in a buffer of the chunk's own and the rows are 1-D views:
    LLVM then knows that they do not overlap, and vectorizes (4x faster than
    ``a[i, k]``).  One thread: the parallel version, a launch per reflection,
    was slower on two threads at every size measured (400 x 400: 74 ms against
    16; 2048 x 512: 698 against 262).
    """
    m, n = a.shape
    for c in range((n - k0 + _QR_CHUNK - 1) // _QR_CHUNK):
        lo = k0 + c * _QR_CHUNK
        hi = min(lo + _QR_CHUNK, n)
        w = a[j, lo:hi].copy()
        for i in range(j + 1, m):
            vi = v[i]
            row = a[i, lo:hi]
            for k in range(hi - lo):
                w[k] += vi * row[k]
        top = a[j, lo:hi]
        for k in range(hi - lo):
            w[k] *= tau
            top[k] -= w[k]
        for i in range(j + 1, m):
            vi = v[i]
            row = a[i, lo:hi]
            for k in range(hi - lo):
                row[k] -= vi * w[k]


@njit(cache=True, error_model="numpy")
def _haar_q(a: np.ndarray) -> np.ndarray:
    """``Q diag(sign(diag(R)))`` of ``a = QR`` (``m >= n``, float64; ``a`` is overwritten).

    Householder reflections as LAPACK's ``dgeqr2``/``dorg2r`` make them, in one
    thread in a fixed order: the bits depend on no thread count (OpenBLAS's
    QR's do) and nothing process-wide is switched to get them.
    """
    m, n = a.shape
    tau = np.zeros(n)
    sign = np.ones(n)
    v = np.empty(m)
    for j in range(n):
        tail = 0.0
        for i in range(j + 1, m):
            tail += a[i, j] * a[i, j]
        alpha = a[j, j]
        if tail == 0.0:  # nothing below the diagonal: no reflection, R[j, j] = alpha
            sign[j] = -1.0 if alpha < 0 else 1.0
            continue
        beta = -math.copysign(math.sqrt(alpha * alpha + tail), alpha)
        tau[j] = (beta - alpha) / beta
        for i in range(j + 1, m):
            a[i, j] /= alpha - beta  # v, kept below the diagonal for Q
            v[i] = a[i, j]
        sign[j] = -1.0 if beta < 0 else 1.0
        _reflect(v, j, tau[j], a, j + 1)
    q = np.zeros((m, n))
    for k in range(n):
        q[k, k] = 1.0
    for j in range(n - 1, -1, -1):  # Q = H_0 H_1 ... H_{n-1} I: the last reflection first
        for i in range(j + 1, m):
            v[i] = a[i, j]
        _reflect(v, j, tau[j], q, j)
    for i in range(m):
        for k in range(n):
            q[i, k] *= sign[k]
    return q


@njit(inline="always", cache=True)
def _pick_rows(w, c, count, keep, k0, k1, s0, s1, base):
    """In column ``c`` of ``w``, pick ``count`` distinct rows by a partial Fisher-Yates
    (draws ``base + c * rows + t``) and zero them, or with ``keep`` zero all the others."""
    rows = w.shape[0]
    order = np.arange(rows)
    for t in range(count):
        j = t + _rng.uniform_index(k0, k1, s0, s1, base + c * rows + t, rows - t)
        order[t], order[j] = order[j], order[t]
    for t in range(count, rows) if keep else range(count):
        w[order[t], c] = 0.0


@njit(cache=True)
def _pick_rows_run(w, count, keep, k0, k1, s0, s1, base):
    for c in range(w.shape[1]):
        _pick_rows(w, c, count, keep, k0, k1, s0, s1, base)


@njit(parallel=True, cache=True)
def _pick_rows_kernel(w, count, keep, k0, k1, s0, s1, base):
    for c in prange(w.shape[1]):
        _pick_rows(w, c, count, keep, k0, k1, s0, s1, base)


def _zero_rows(w: np.ndarray, count: int, keep: bool, words: tuple) -> None:
    """Zero ``count`` random rows of each column of ``w`` (``keep``: all but ``count``),
    from the draws ``2 * w.size`` on of the stream ``words`` (:func:`random.split_key`); a
    prange over columns only for ``random.PARALLEL_MIN`` elements or more (same values)."""
    args = (w, count, keep, *words, 2 * w.size)
    if w.size >= _rng.PARALLEL_MIN:
        _rng.run_parallel(_pick_rows_kernel, *args)
    else:
        _pick_rows_run(*args)


def sparse(
    shape: tuple[int, ...],
    *,
    sparsity: float = 0.1,
    std: float = 0.01,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Sparse normal matrix, PyTorch ``sparse_``: N(0, std^2) with zeros in every column.

    In each column, ``ceil(sparsity * rows)`` distinct entries are set to zero
    (``math.ceil`` of the float64 product, as PyTorch); with fastinit's
    ``(fan_in, fan_out)`` layout a column holds one unit's incoming weights, the
    sense of Martens' sparse init.  PyTorch's ``sparse_`` applied to the same
    layer's ``(out, in)`` weight zeros ``ceil(sparsity * fan_out)`` of each
    input's outgoing weights instead: that is ``sparse((fan_out, fan_in)).T``.
    J. Martens, 'Deep learning via Hessian-free optimization', ICML 2010.  The
    normal values use draws ``0 .. size-1`` of the stream and the zero positions
    its float64 draws from ``2 * size`` on.

    Parameters
    ----------
    shape : tuple of 2 int
        Matrix shape.
    sparsity : float
        Fraction of zeros per column, in [0, 1].
    std : float
        Std of the non-zero values, finite and >= 0.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    sparsity = check_nonneg(sparsity, "sparsity")
    if sparsity > 1:
        raise ValueError(f"sparsity: expected a fraction in [0, 1], got {sparsity}")
    std = check_nonneg(std, "std")
    words = _rng.split_key(seed, stream)  # seed and stream checked before the shape
    shape, out = _target(shape, dtype, out, min_ndim=2)
    if len(shape) != 2:
        raise ValueError(f"shape: sparse needs a 2-D shape, got {shape}")
    _rng.fill_normal(out, 0.0, std, seed=seed, stream=stream)
    _zero_rows(out, math.ceil(sparsity * shape[0]), False, words)
    return out


def martens_sparse(
    shape: tuple[int, ...],
    *,
    k: int = 15,
    std: float = 1.0,
    seed: int = 0,
    stream: int = 0,
    dtype: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Martens' sparse init: each unit gets ``k`` non-zero N(0, std^2) incoming weights.

    J. Martens, 'Deep learning via Hessian-free optimization', ICML 2010
    (k = 15, unit Gaussian).  With the ``(fan_in, fan_out)`` layout, each column
    keeps ``min(k, fan_in)`` distinct non-zero rows.

    Parameters
    ----------
    shape : tuple of 2 int
        Matrix shape ``(fan_in, fan_out)``.
    k : int
        Non-zero incoming weights per unit, >= 1.
    std : float
        Std of the non-zero values, finite and >= 0.
    seed, stream, dtype, out
        As for :func:`normal`.

    Returns
    -------
    numpy.ndarray
    """
    k = check_int(k, "k", low=1)
    std = check_nonneg(std, "std")
    words = _rng.split_key(seed, stream)  # seed and stream checked before the shape
    shape, out = _target(shape, dtype, out, min_ndim=2)
    if len(shape) != 2:
        raise ValueError(f"shape: martens_sparse needs a 2-D shape, got {shape}")
    _rng.fill_normal(out, 0.0, std, seed=seed, stream=stream)
    _zero_rows(out, min(k, shape[0]), True, words)
    return out


# ----------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "identity": identity,
    "normal": normal,
    "uniform": uniform,
    "truncated_normal": truncated_normal,
    "variance_scaling": variance_scaling,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "orthogonal": orthogonal,
    "sparse": sparse,
    "martens_sparse": martens_sparse,
    "uniform_unit_scaling": uniform_unit_scaling,
}
for _name in ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal"):
    _REGISTRY[_name].__name__ = _REGISTRY[_name].__qualname__ = _name
lecun_uniform.__name__ = lecun_uniform.__qualname__ = "lecun_uniform"
# every initializer takes device=; rebinding the module names too makes the ones
# that call others (variance_scaling -> truncated_normal...) pass a device out on
_ON_HOST = ("constant", "identity", "orthogonal", "sparse", "martens_sparse")
for _name, _fn in _REGISTRY.items():
    _REGISTRY[_name] = globals()[_name] = _device_aware(_fn, _name in _ON_HOST)

ALIASES = {
    "zero": "zeros",
    "one": "ones",
    "eye": "identity",
    "randn": "normal",
    "gaussian": "normal",
    "trunc_normal": "truncated_normal",
    "glorot": "glorot_uniform",
    "xavier": "xavier_uniform",
    "he": "he_normal",
    "msra": "kaiming_normal",  # Caffe's MSRAFiller: untruncated N(0, 2 / fan_in)
    "kaiming": "kaiming_normal",
    "lecun": "lecun_normal",
    "orthogonal_": "orthogonal",
    "martens": "martens_sparse",
}


def names() -> list[str]:
    """All initializer names accepted by :func:`get` (canonical names and aliases).

    Returns
    -------
    list of str
        Sorted names.
    """
    return sorted([*_REGISTRY, *ALIASES])


def get(name: str | Initializer) -> Initializer:
    """The initializer for a name or alias (case-insensitive); a callable passes through.

    Parameters
    ----------
    name : str or callable
        E.g. ``"xavier_uniform"``, ``"glorot_uniform"``, ``"he"``, ``"Kaiming-Normal"``.

    Returns
    -------
    callable
        ``f(shape, *, seed=0, stream=0, dtype=None, out=None, **params)``.
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"name: expected an initializer name or a callable, got {name!r}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"name: unknown initializer {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[key]


# Data-dependent initialization (needs a model and a batch, so not in the registry).
from fastinit.lsuv import LSUVRecord as LSUVRecord  # noqa: E402
from fastinit.lsuv import lsuv as lsuv  # noqa: E402
