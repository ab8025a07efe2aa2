"""Activations: values and derivatives against the NumPy reference and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from fastinit import activations
from tests import reference as ref

NAMES = [
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "softplus",
    "silu",
]
# points away from the kinks at 0 (where one-sided conventions differ)
GRID = np.concatenate([np.linspace(-12, 12, 241) + 0.013, [-60.0, -25.0, 25.0, 60.0]])
HUGE = np.array([-3e38, -1e30, -1e10, -1e4, -100.0, 100.0, 1e4, 1e10, 1e30, 3e38])


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_float64(name):
    value, deriv = activations.apply(GRID, name)
    want_v, want_d = ref.activation(name, GRID)
    np.testing.assert_allclose(value, want_v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(deriv, want_d, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32_and_is_accurate(name):
    x = GRID.astype(np.float32)
    value, deriv = activations.apply(x, name)
    assert value.dtype == np.float32 and deriv.dtype == np.float32
    want_v, want_d = ref.activation(name, x.astype(np.float64))
    np.testing.assert_allclose(value, want_v, rtol=3e-6, atol=1e-6)
    np.testing.assert_allclose(deriv, want_d, rtol=3e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_is_the_slope_of_the_value(name):
    x = np.linspace(-6, 6, 97) + 0.0071
    h = 1e-6
    slope = (activations.apply(x + h, name)[0] - activations.apply(x - h, name)[0]) / (2 * h)
    np.testing.assert_allclose(activations.apply(x, name)[1], slope, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_nan_input_gives_nan_value(name, dtype):
    # as in PyTorch: a NaN pre-activation must not come out finite (relu once made it 0,
    # so an overflowing network trained on with a finite loss instead of diverging)
    value, _ = activations.apply(np.array([np.nan, 1.0], dtype), name)
    assert np.isnan(value[0]) and np.isfinite(value[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_large_inputs_stay_finite_with_the_right_limits(name, dtype):
    value, deriv = activations.apply(HUGE.astype(dtype), name)
    assert np.isfinite(value).all() and np.isfinite(deriv).all()
    # saturated limits: the slope at -1e4 and +1e4 is the left and right asymptote's
    got_v, got_d = activations.apply(np.array([-1e4, 1e4], dtype), name)
    want_v, want_d = ref.activation(name, np.array([-1e4, 1e4]))
    np.testing.assert_allclose(got_d, want_d, atol=1e-6)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-6)


@pytest.mark.parametrize(
    "dtype, lowest, rtol", [(np.float32, -12.0, 2e-5), (np.float64, -37.0, 1e-13)]
)
def test_gelu_keeps_its_relative_precision_in_the_negative_tail(dtype, lowest, rtol):
    # 0.5 (1 + erf(z / sqrt 2)) cancels to 0 once erf rounds to -1 (z < -5.9 in float64,
    # -3.9 in float32): gelu(-10) came out as -0.0, not -7.6e-23.  The oracle is SciPy's
    # ndtr, the normal CDF to full relative precision in its tail.
    from scipy.special import ndtr

    z = np.linspace(lowest, -1.0, 301).astype(dtype)
    value, deriv = activations.apply(z, "gelu")
    wide = z.astype(np.float64)
    np.testing.assert_allclose(value, wide * ndtr(wide), rtol=rtol, atol=0)
    slope = ndtr(wide) + wide * np.exp(-0.5 * wide * wide) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(deriv, slope, rtol=max(rtol, 1e-12), atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_keeps_the_sign_of_zero(dtype):
    # tanh is odd: tanh(+0) = +0 and tanh(-0) = -0 (NumPy, PyTorch); +0 came out as -0
    x = np.array([0.0, -0.0], dtype)
    value, deriv = activations.apply(x, "tanh")
    np.testing.assert_array_equal(np.signbit(value), [False, True])
    np.testing.assert_array_equal(np.signbit(value), np.signbit(np.tanh(x)))
    np.testing.assert_array_equal(deriv, [1.0, 1.0])


def test_parameters_and_pytorch_defaults():
    assert activations.get("leaky_relu").params == {"negative_slope": 0.01}
    assert activations.get("elu").params == {"alpha": 1.0}
    assert activations.get("softplus").params == {"beta": 1.0, "threshold": 20.0}
    x = GRID
    for name, params in [
        ("leaky_relu", {"negative_slope": 0.2}),
        ("elu", {"alpha": 0.5}),
        ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ]:
        got = activations.apply(x, (name, params))
        want = ref.activation(name, x, **params)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-14)


def test_aliases():
    x = GRID[:20]
    np.testing.assert_array_equal(activations.apply(x, "swish")[0], activations.apply(x, "silu")[0])
    assert activations.get("Linear").name == "identity"


@pytest.mark.parametrize(
    "spec, params, match",
    [
        ("relux", {}, "activation"),
        (3, {}, "activation"),
        ("relu", {"alpha": 1.0}, "activation"),
        ("elu", {"alpha": float("nan")}, "activation.alpha"),
        ("softplus", {"beta": 0.0}, "activation.beta"),
    ],
)
def test_bad_activation_raises(spec, params, match):
    with pytest.raises(ValueError, match=match):
        activations.get(spec, **params)


def test_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    funcs = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": F.leaky_relu,
        "elu": F.elu,
        "selu": F.selu,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "softplus": F.softplus,
        "silu": F.silu,
    }
    for name, fn in funcs.items():
        t = torch.tensor(GRID, requires_grad=True)
        fn(t).sum().backward()
        value, deriv = activations.apply(GRID, name)
        np.testing.assert_allclose(value, fn(t).detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(deriv, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@njit(cache=True)
def _exp_family(x, e, em1, l1p):
    for i in range(x.size):
        e[i], em1[i] = activations.exp_and_expm1(x[i])
        l1p[i] = activations.log1p_unit(abs(x[i]) / (1.0 + abs(x[i])))


def test_float64_exp_expm1_log1p_within_three_ulps():
    # oracles in x87 extended precision (64-bit mantissa): errors of about 1e-19
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 20_000), rng.uniform(-1, 1, 20_000),
                        rng.uniform(-1e-6, 1e-6, 2_000)])  # fmt: skip
    e, em1, l1p = (np.empty_like(x) for _ in range(3))
    _exp_family(x, e, em1, l1p)
    xl = x.astype(np.longdouble)
    u = (np.abs(x) / (1.0 + np.abs(x))).astype(np.longdouble)  # log1p_unit's argument
    for got, want in ((e, np.exp(xl)), (em1, np.expm1(xl)), (l1p, np.log1p(u))):
        nonzero = want != 0
        rel = np.abs((got[nonzero] - want[nonzero]) / want[nonzero])
        assert rel.max() < 3 * 2.0**-52


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_is_kept_down_to_the_smallest_normal_number(dtype):
    # the flush began at -87.0 (float32) and -708.0 (float64): sigmoid(-87.3) was 0 where
    # it is 1.2e-38, a normal float32 (torch gives it); below log(tiny) 0 stays documented
    tiny = np.finfo(dtype).tiny
    bottom = float(np.log(np.longdouble(tiny)))  # -87.34 and -708.40
    x = np.linspace(bottom + 0.4, bottom, 41).astype(dtype)
    x = x[np.exp(x.astype(np.longdouble)) >= tiny]
    value, deriv = activations.apply(x, "sigmoid")
    want = 1 / (1 + np.exp(-x.astype(np.longdouble)))  # = exp(x) here, to 1e-38
    np.testing.assert_allclose(value, want.astype(dtype), rtol=8 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_allclose(deriv, want.astype(dtype), rtol=8 * np.finfo(dtype).eps, atol=0)
    for name in ("silu", "softplus"):
        value, deriv = activations.apply(x, name)
        assert (value != 0).all() and (deriv != 0).all(), (name, x[value == 0])
    far = np.array([bottom - 1, -1e4], dtype)  # exp(x) is not a normal number: 0
    assert (activations.apply(far, "sigmoid")[0] == 0).all()


def test_gelu_tanh_slope_decays_past_the_clamp_in_float64():
    # the cubic was clamped to [-10, 10]: float64's 1 - tanh**2 is still 4e-38 there, so
    # f'(z) stayed -2.8e-36 for every z < -10 (true: 2e-41 at -10.5, 0 far out)
    x = np.array([-10.0, -10.5, -12.0, -15.0, -20.0])
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)  # < 0: tanh(u) = -(1 - e) / (1 + e)
    e = np.exp(2 * u)  # 1e-38 .. 1e-262, exact to a few ulps (no 1 + tanh cancellation)
    sech2 = 4 * e / (1 + e) ** 2
    want = e / (1 + e) + 0.5 * x * sech2 * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
    deriv = activations.apply(x, "gelu_tanh")[1]
    np.testing.assert_allclose(deriv, want, rtol=1e-2, atol=0)
    assert (activations.apply(np.array([-30.0, -1e4, -3e38]), "gelu_tanh")[1] == 0).all()


@pytest.mark.parametrize("x", [[1 + 2j], ["1.0"], ["abc"], [None, 1.0]])
def test_apply_refuses_non_real_input_naming_x(x):
    # complex lost its imaginary part (a ComplexWarning only), "1.0" was parsed as 1.0,
    # None became NaN, and "abc" failed inside NumPy's cast, naming nothing
    with pytest.raises(ValueError, match=r"^x: expected a real \(bool, integer or float\)"):
        activations.apply(x, "tanh")


def test_apply_takes_numbers_held_as_python_objects():
    x = np.array([1, 2.5, True, np.float32(-3)], dtype=object)
    value, deriv = activations.apply(x, "tanh")
    assert value.dtype == deriv.dtype == np.float64
    np.testing.assert_array_equal(value, activations.apply([1.0, 2.5, 1.0, -3.0], "tanh")[0])
