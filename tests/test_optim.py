"""Optimizers: steps against the NumPy reference (PyTorch formulas), state, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fastinit import optim
from fastinit.model import MLP
from tests import reference as ref

RNG = np.random.default_rng(5)
X = RNG.normal(size=(8, 3))
Y = RNG.integers(0, 3, size=8)

CASES = [
    ("sgd", optim.SGD, {"lr": 0.1}),
    ("sgd", optim.SGD, {"lr": 0.1, "weight_decay": 0.05}),
    ("momentum", optim.Momentum, {"lr": 0.1, "momentum": 0.8}),
    ("nesterov", optim.Nesterov, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("adagrad", optim.AdaGrad, {"lr": 0.1}),
    ("rmsprop", optim.RMSprop, {"lr": 0.01, "decay": 0.9}),
    ("adam", optim.Adam, {"lr": 0.01}),
    ("adam", optim.Adam, {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "weight_decay": 0.1}),
]


def _model(dtype: str = "float64") -> MLP:
    return MLP([3, 5, 3], activation="tanh", init=("normal", {"std": 0.5}), seed=4, dtype=dtype)


def _reference_run(model: MLP, name: str, hyper: dict, steps: int) -> list[np.ndarray]:
    params = [np.array(a, np.float64) for a in (*model.weights, *model.biases)]
    states = [{} for _ in params]
    n = len(params) // 2
    for t in range(1, steps + 1):
        _, grads = ref.loss_and_grads(
            params[:n], params[n:], [("tanh", {})], X, Y, "softmax_cross_entropy"
        )
        flat = [g for g, _ in grads] + [g for _, g in grads]
        params = [
            ref.optimizer_step(name, p, g, s, t, **hyper)
            for p, g, s in zip(params, flat, states, strict=True)
        ]
    return params


@pytest.mark.parametrize("name, cls, hyper", CASES)
def test_steps_match_reference(name, cls, hyper):
    model = _model()
    want = _reference_run(model, name, hyper, steps=3)
    history = model.fit(X, Y, optimizer=cls(**hyper), sampling="full", iterations=3, progress=False)
    assert history.iterations == 3 and history.status == "ok"
    for got, exp in zip((*model.weights, *model.biases), want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)


# fastinit's hyperparameter names -> torch.optim's (the reference above restates the
# formulas; this checks them against PyTorch itself, where it is installed)
_TORCH = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {}),
    "nesterov": ("SGD", {"nesterov": True}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
}


def _torch_run(torch, model: MLP, name: str, hyper: dict, steps: int) -> list:
    leaves = [
        torch.tensor(a, dtype=torch.float64, requires_grad=True)
        for a in (*model.weights, *model.biases)
    ]
    klass, extra = _TORCH[name]
    kw = dict(hyper, **extra)
    if "decay" in kw:
        kw["alpha"] = kw.pop("decay")
    if "beta1" in kw:
        kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
    opt = getattr(torch.optim, klass)(leaves, **kw)
    x, y = torch.tensor(X), torch.tensor(Y)
    for _ in range(steps):
        opt.zero_grad()
        hidden = torch.tanh(x @ leaves[0] + leaves[2])
        torch.nn.functional.cross_entropy(hidden @ leaves[1] + leaves[3], y).backward()
        opt.step()
    return [leaf.detach().numpy() for leaf in leaves]


def test_twenty_steps_of_every_optimizer_match_pytorch():
    torch = pytest.importorskip("torch")  # one test: one skip where PyTorch is absent
    for name, cls, hyper in CASES:
        model = _model()
        model.biases = [b + 0.1 for b in model.biases]  # nonzero biases: their decay shows
        want = _torch_run(torch, model, name, hyper, steps=20)
        model.fit(X, Y, optimizer=cls(**hyper), sampling="full", iterations=20, progress=False)
        for got, exp in zip((*model.weights, *model.biases), want, strict=True):
            np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-13, err_msg=f"{name} {hyper}")


def test_long_runs_with_large_eps_and_weight_decay_match_pytorch():
    # eps comparable to sqrt(s): its placement (outside the root, after Adam's bias
    # correction) and the zero initial accumulators show over 150 steps
    torch = pytest.importorskip("torch")
    for name, cls, hyper in [
        ("momentum", optim.Momentum, {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.05}),
        ("adagrad", optim.AdaGrad, {"lr": 0.1, "eps": 0.01, "weight_decay": 0.05}),
        ("rmsprop", optim.RMSprop, {"lr": 0.01, "decay": 0.5, "eps": 0.01, "weight_decay": 0.05}),
        ("adam", optim.Adam, {"lr": 0.01, "beta1": 0.0, "beta2": 0.5, "eps": 0.01}),
    ]:
        model = _model()
        want = _torch_run(torch, model, name, hyper, steps=150)
        model.fit(X, Y, optimizer=cls(**hyper), sampling="full", iterations=150, progress=False)
        for got, exp in zip((*model.weights, *model.biases), want, strict=True):
            np.testing.assert_allclose(got, exp, rtol=1e-11, atol=1e-13, err_msg=f"{name} {hyper}")


@pytest.mark.parametrize("name, cls, hyper", CASES[2:3] + CASES[-1:])
def test_float32_step_is_close_to_float64_reference(name, cls, hyper):
    model = _model("float32")
    want = _reference_run(model, name, hyper, steps=2)
    model.fit(
        X.astype(np.float32),
        Y,
        optimizer=cls(**hyper),
        sampling="full",
        iterations=2,
        progress=False,
    )
    for got, exp in zip((*model.weights, *model.biases), want, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, exp, rtol=2e-5, atol=2e-6)


def test_state_carries_over_between_fits_with_the_same_optimizer():
    once, twice = _model(), _model()
    once.fit(X, Y, optimizer=optim.Adam(0.01), sampling="full", iterations=4, progress=False)
    adam = optim.Adam(0.01)
    twice.fit(X, Y, optimizer=adam, sampling="full", iterations=2, progress=False)
    twice.fit(X, Y, optimizer=adam, sampling="full", iterations=2, progress=False)
    np.testing.assert_array_equal(once.weights[0], twice.weights[0])
    fresh = _model()
    fresh.fit(X, Y, optimizer=optim.Adam(0.01), sampling="full", iterations=2, progress=False)
    fresh.fit(X, Y, optimizer=optim.Adam(0.01), sampling="full", iterations=2, progress=False)
    assert not np.array_equal(once.weights[0], fresh.weights[0])


def test_lowering_to_code_and_hyperparameters():
    adam = optim.Adam(0.002, beta1=0.8, beta2=0.95, eps=1e-7, weight_decay=0.1)
    assert adam.code == optim.ADAM
    np.testing.assert_array_equal(adam.hyper(), [0.002, 0.8, 0.95, 1e-7, 0.1, 0.0])
    assert optim.get("rmsprop", lr=0.5).decay == 0.99
    assert isinstance(optim.get("Nesterov"), optim.Nesterov)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optim.SGD(0.0), "lr"),
        (lambda: optim.SGD(-1.0), "lr"),
        (lambda: optim.Adam(float("nan")), "lr"),
        (lambda: optim.Momentum(0.1, momentum=1.0), "momentum"),
        (lambda: optim.RMSprop(0.1, decay=-0.1), "decay"),
        (lambda: optim.Adam(0.1, beta2=1.5), "beta2"),
        (lambda: optim.AdaGrad(0.1, eps=0.0), "eps"),
        (lambda: optim.SGD(0.1, weight_decay=-1), "weight_decay"),
        (lambda: optim.get("lbfgs"), "optimizer"),
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "cls, name, value",
    [
        (optim.SGD, "lr", -0.1),
        (optim.SGD, "lr", float("nan")),
        (optim.Momentum, "momentum", 1.5),
        (optim.Adam, "beta1", 1.0),
        (optim.RMSprop, "eps", 0.0),
        (optim.AdaGrad, "weight_decay", -1.0),
    ],
)
def test_hyperparameters_changed_after_construction_are_checked(cls, name, value):
    opt = cls(0.1)
    opt.lr = 0.05  # a learning-rate schedule between fits
    assert opt.hyper()[optim.LR] == 0.05
    with pytest.raises(ValueError, match=name):
        setattr(opt, name, value)
    assert opt.hyper()[optim.LR] == 0.05  # the bad value was not stored


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.Nesterov(0.1, momentum=0.0),
        lambda: optim.get("nesterov", lr=0.1, momentum=0),
        lambda: setattr(optim.Nesterov(0.1), "momentum", 0.0),
    ],
)
def test_nesterov_without_momentum_is_refused(make):
    # torch: "Nesterov momentum requires a momentum and zero dampening"; it would be plain SGD
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\) with Nesterov"):
        make()
    assert optim.Momentum(0.1, momentum=0.0).momentum == 0.0  # heavy ball at 0 is plain SGD


@pytest.mark.parametrize("hyper", [{"lr": 0.05}, {"lr": 0.05, "weight_decay": 0.1}])
def test_fused_sgd_on_blas_sized_layers_matches_reference(hyper):
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(32, 20)), rng.integers(0, 10, size=32)
    model = MLP([20, 40, 10], activation="tanh", init=("normal", {"std": 0.3}), dtype="float64")
    params = [np.array(a) for a in (*model.weights, *model.biases)]
    for _ in range(2):
        acts = [("tanh", {})]
        _, grads = ref.loss_and_grads(params[:2], params[2:], acts, x, y, "softmax_cross_entropy")
        flat = [g for g, _ in grads] + [g for _, g in grads]
        pairs = zip(params, flat, strict=True)
        params = [ref.optimizer_step("sgd", p, g, {}, 1, **hyper) for p, g in pairs]
    model.fit(x, y, optimizer=optim.SGD(**hyper), sampling="full", iterations=2, progress=False)
    for got, exp in zip((*model.weights, *model.biases), params, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sizes", [[5, 7, 3], [5, 20, 3]])  # feature-major and BLAS paths
def test_every_optimizer_with_weight_decay_on_shuffled_minibatches_matches_reference(sizes):
    # 23 rows in batches of 5: every epoch ends with a batch of 3, whose mean is over 3
    from fastinit.train import batch_rows

    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(23, 5)), rng.integers(0, 3, size=23)
    for name, cls, hyper in CASES:
        hyper = {**hyper, "weight_decay": 0.05}
        model = MLP(sizes, activation="tanh", bias_init=("uniform", {"low": -0.5, "high": 0.5}),
                    seed=2, dtype="float64")  # fmt: skip
        params = [np.array(a) for a in (*model.weights, *model.biases)]
        states = [{} for _ in params]
        for t in range(12):
            rows = batch_rows(23, 5, t, sampling="shuffle", seed=4)
            _, grads = ref.loss_and_grads(params[:2], params[2:], [("tanh", {})], x[rows],
                                          y[rows], "softmax_cross_entropy")  # fmt: skip
            flat = [g for g, _ in grads] + [g for _, g in grads]
            params = [ref.optimizer_step(name, p, g, s, t + 1, **hyper)
                      for p, g, s in zip(params, flat, states, strict=True)]  # fmt: skip
        model.fit(x, y, optimizer=cls(**hyper), batch_size=5, iterations=12, sampling="shuffle",
                  seed=4, progress=False)  # fmt: skip
        for got, exp in zip((*model.weights, *model.biases), params, strict=True):
            np.testing.assert_allclose(got, exp, rtol=1e-11, atol=1e-13, err_msg=f"{name}")


@pytest.mark.parametrize(("lr_wd", "tol"), [(1e-7, 0.05), (1e-8, 0.2)])
def test_float32_sgd_weight_decay_is_not_rounded_away(lr_wd, tol):
    # one step with and without decay differ by lr * wd * W; BLAS's beta = 1 - lr * wd
    # in float32 made it 1.19e-7 (19% too much) for 1e-7 and 0 for 1e-8
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(64, 64)).astype(np.float32), rng.integers(0, 10, size=64)
    weights = []
    for wd in (0.0, lr_wd / 1e-3):
        model = MLP([64, 256, 10], seed=1)  # float32, wide: the BLAS path
        start = np.array(model.weights[0], np.float64)
        opt = optim.SGD(1e-3, weight_decay=wd)
        model.fit(x, y, optimizer=opt, sampling="full", iterations=1, progress=False)
        weights.append(np.array(model.weights[0], np.float64))
    decay = np.sum((weights[0] - weights[1]) * start) / np.sum(start * start)
    assert abs(decay / lr_wd - 1.0) < tol


def test_an_integer_beyond_the_float_range_is_a_value_error_naming_it():
    from fastinit import init

    with pytest.raises(ValueError, match=r"^lr: expected a finite number, got an integer beyond"):
        optim.SGD(lr=10**400)
    with pytest.raises(ValueError, match=r"^std: expected a finite number"):
        init.normal((3, 3), std=10**5000)  # past int's 4300-digit str limit too


@pytest.mark.parametrize("beta1, beta2", [(0.9, 0.99999), (0.99, 0.999999)])
def test_float32_adam_with_betas_near_one_follows_the_float64_reference(beta1, beta2):
    # 1 - beta2 must come from float64: 1 - float32(0.99999) is 1.3e-3 too large,
    # which moved 20 steps 7e-4 (beta2 = 0.999999: 7e-3) of their length off course
    rng = np.random.default_rng(11)
    g = rng.normal(size=(20, 500)) * rng.choice([1e-3, 1.0, 1e2], size=(20, 500))
    start = rng.normal(size=500).astype(np.float32)
    hyper = {"lr": 0.01, "beta1": beta1, "beta2": beta2}
    opt = optim.Adam(**hyper)
    p, state = start.copy(), np.zeros((2, 500), np.float32)
    want, ref_state = start.astype(np.float64), {}
    for t in range(1, 21):
        optim.apply_update(opt.code, opt.hyper(), t, p, g[t - 1].astype(np.float32), *state)
        want = ref.optimizer_step("adam", want, g[t - 1].astype(np.float32), ref_state, t, **hyper)
    assert p.dtype == np.float32
    assert np.max(np.abs(p - want)) / np.max(np.abs(want - start)) < 5e-5


def test_get_rejects_hyperparameters_it_would_ignore():
    with pytest.raises(ValueError, match=r"^optimizer: .*\['lr'\].*instance"):
        optim.get(optim.SGD(0.1), lr=0.5)  # was SGD(lr=0.1), the 0.5 dropped
    with pytest.raises(ValueError, match=r"^optimizer: 'adam' takes .*\['momentum'\]"):
        optim.get("adam", lr=0.1, momentum=0.9)  # was a TypeError from Adam.__init__
    assert optim.get("nesterov", lr=0.5, momentum=0.5).momentum == 0.5


def test_an_optimizer_pickles_and_a_model_pickled_with_it_keeps_its_state():
    import pickle

    opt = pickle.loads(pickle.dumps(optim.Adam(0.02, beta2=0.99, weight_decay=0.1)))
    same = optim.Adam(0.02, 0.9, 0.99, 1e-8, weight_decay=0.1)
    np.testing.assert_array_equal(opt.hyper(), same.hyper())
    model = _model()
    model.fit(X, Y, optimizer=opt, sampling="full", iterations=2, progress=False)
    copy, copy_opt = pickle.loads(pickle.dumps((model, opt)))
    for m, o in ((model, opt), (copy, copy_opt)):
        m.fit(X, Y, optimizer=o, sampling="full", iterations=2, progress=False)
    np.testing.assert_array_equal(copy._params, model._params)
    assert copy_opt.state_for(copy, copy._params.size, copy.dtype).step == 4


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.SGD(0.1, 0.9),  # torch's SGD(params, lr, momentum)
        lambda: optim.Momentum(0.1, 0.9, 0.5),  # torch's third is dampening
        lambda: optim.AdaGrad(0.1, 0.5),  # torch's Adagrad(params, lr, lr_decay)
        lambda: optim.RMSprop(0.1, 0.9, 1e-8, 0.5),
        lambda: optim.Adam(0.1, 0.9, 0.999, 1e-8, 0.5),
    ],
    ids=["SGD", "Momentum", "AdaGrad", "RMSprop", "Adam"],
)
def test_weight_decay_is_keyword_only(make):
    # ported positionally from PyTorch, a second number would silently be a decay
    with pytest.raises(TypeError, match="positional argument"):
        make()


def _update_operands(code: int = optim.ADAM, n: int = 6, **change) -> dict:
    """Operands of one update, every one fitting, with ``change`` replacing some."""
    ops = {"code": code, "hyper": optim.Adam(0.01).hyper(), "step": 1}
    ops.update({k: np.zeros(n, np.float32) for k in ("p", "g", "s0", "s1")})
    ops.update(change)
    return ops


# (what is wrong, operands, the argument the error must name): each would make the
# kernel read or write out of bounds, misread the memory, or index a missing code
BAD_UPDATES = [
    ("short g", _update_operands(g=np.zeros(5, np.float32)), "g"),
    ("long g", _update_operands(g=np.zeros(7, np.float32)), "g"),
    ("short s0", _update_operands(optim.MOMENTUM, s0=np.zeros(2, np.float32)), "s0"),
    ("short s1 (Adam)", _update_operands(s1=np.zeros(0, np.float32)), "s1"),
    ("g float64", _update_operands(g=np.zeros(6)), "g"),
    ("p 2-D", _update_operands(p=np.zeros((2, 3), np.float32)), "p"),
    ("p int", _update_operands(p=np.zeros(6, np.int32)), "p"),
    ("short hyper", _update_operands(hyper=np.zeros(3)), "hyper"),
    ("float32 hyper", _update_operands(hyper=np.zeros(optim.N_HYPER, np.float32)), "hyper"),
    ("step 0", _update_operands(step=0), "step"),
    ("step past int64", _update_operands(step=2**63), "step"),
    ("unknown code", _update_operands(code=99), "code"),
]


@pytest.mark.parametrize(("case", "ops", "name"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
def test_apply_update_refuses_operands_that_do_not_fit(case, ops, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        optim.apply_update(**ops)


def test_apply_update_refuses_a_strided_view_and_ignores_unused_slots():
    p = np.zeros(12, np.float32)[::2]
    with pytest.raises(ValueError, match=r"^p: expected a C-contiguous"):
        optim.apply_update(**_update_operands(p=p))
    ops = _update_operands(optim.SGD_CODE, s0=np.zeros(0), s1=np.zeros(0))  # SGD reads no slot
    ops["g"][:] = 1.0
    optim.apply_update(**{**ops, "hyper": optim.SGD(0.5).hyper()})
    np.testing.assert_array_equal(ops["p"], np.full(6, -0.5, np.float32))
