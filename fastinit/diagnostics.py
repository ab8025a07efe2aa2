"""Diagnostics: is this initialization right for this network?  Measure it (``fastinit.diagnose``).

One forward and one backward pass of the training kernel on a batch (no
update), with the per-layer statistics that ``fit(record_stats=True)`` records
during training; both call the same compiled functions
(:func:`fastinit.train.forward_stats`, :func:`fastinit.train.gradient_stats`),
so the numbers agree by construction.

Per layer ``k`` (``z_k = a_{k-1} @ W_k + b_k``, ``a_k = f_k(z_k)``; the last layer
is linear): mean and standard deviation (ddof 0, over batch x units) of the
pre-activations ``z_k``, of the activations ``a_k`` and of the back-propagated
gradient ``dL/dz_k`` (with respect to the pre-activations); the saturated
fraction (sigmoid: ``a < 0.01`` or ``a > 0.99``; tanh: ``|a| > 0.99``); for the
ReLU family (relu, leaky_relu, elu, selu, gelu, gelu_tanh, silu) the inactive
fraction (entries with ``|f'(z)| < 0.05``; for relu, exactly the zero outputs)
and the dead fraction (units inactive on every row of the batch); the
Frobenius norms of ``dL/dz_k`` and of ``dL/dW_k``.

Warnings, with these thresholds (module constants):

* vanishing / exploding activations: some layer's pre-activation std is below
  ``VANISHING = 0.1`` or above ``EXPLODING = 10`` times the input's std;
* vanishing / exploding gradients: ``||dL/dz_1|| / ||dL/dz_L||`` (first over
  last layer, Frobenius norms over the batch) is below 0.1 or above 10.  With
  fan-in scaled inits this ratio is about 1 whatever the widths;
* saturation: more than ``SATURATED = 10%`` of a sigmoid/tanh layer's
  activations are saturated;
* dead units: more than ``DEAD = 10%`` of a ReLU-family layer's units are
  inactive on the whole batch;
* non-finite statistics (overflow).

Recommended init per layer (from the activation it feeds): He
(``kaiming_normal``, std ``gain / sqrt(fan_in)``) for relu, leaky_relu, elu,
gelu, gelu_tanh, silu and softplus, Glorot
(``xavier_normal``, std ``gain sqrt(2 / (fan_in + fan_out))``) for tanh,
sigmoid and the linear output layer, LeCun (``lecun_normal``, std
``1 / sqrt(fan_in)``, Klambauer et al. 2017) for SELU; gains from
:func:`fastinit.init.calculate_gain` (relu's for elu, gelu, gelu_tanh, silu and
softplus, an approximation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastinit import losses as _losses
from fastinit import optim as _optim
from fastinit import random as _rng
from fastinit import train as _train
from fastinit._validate import check_seed
from fastinit.init import calculate_gain

__all__ = ["DEAD", "EXPLODING", "SATURATED", "VANISHING", "Diagnosis", "diagnose"]

VANISHING = 0.1  # pre-activation std / input std below this: vanishing
EXPLODING = 10.0  # ... above this: exploding; the same bounds for the gradient-norm ratio
SATURATED = 0.1  # saturated fraction of a sigmoid/tanh layer above this: warn
DEAD = 0.1  # dead fraction of a ReLU-family layer's units above this: warn
FEW_ROWS = 16  # fewer rows: a live unit may be off on all of them by chance (p ~ 2**-rows)
_HE_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "softplus")


def recommended_init(activation: Any, fan_in: int, fan_out: int) -> dict[str, Any]:
    """The init the theory recommends for a layer feeding ``activation``.

    Parameters
    ----------
    activation : Activation
        The layer's activation (``identity`` for the output layer).
    fan_in, fan_out : int
        The layer's widths.

    Returns
    -------
    dict
        ``{"rule": "He" | "Glorot" | "LeCun", "init": fastinit.init name,
        "gain": float, "std": the weight std it gives}``.
    """
    name = activation.name
    if name in _HE_FAMILY:
        if name == "leaky_relu":
            gain = calculate_gain("leaky_relu", activation.params["negative_slope"])
        else:
            gain = calculate_gain("relu")
        return {"rule": "He", "init": "kaiming_normal", "gain": gain,
                "std": gain / math.sqrt(fan_in)}  # fmt: skip
    if name == "selu":
        return {"rule": "LeCun", "init": "lecun_normal", "gain": 1.0,
                "std": 1.0 / math.sqrt(fan_in)}  # fmt: skip
    gain = calculate_gain("tanh" if name == "tanh" else "linear")
    return {"rule": "Glorot", "init": "xavier_normal", "gain": gain,
            "std": gain * math.sqrt(2.0 / (fan_in + fan_out))}  # fmt: skip


@dataclass
class Diagnosis:
    """Per-layer statistics of one forward/backward pass, with findings in words.

    Attributes
    ----------
    sizes : tuple of int
        Layer widths of the model.
    activations : list of str
        Activation of every layer (the last is ``identity``).
    pre_mean, pre_std, act_mean, act_std, grad_mean, grad_std : numpy.ndarray
        Per layer (float64, one entry per layer): pre-activations ``z``,
        activations ``a = f(z)``, gradients ``dL/dz``.
    saturated, inactive, dead : numpy.ndarray
        Per layer fractions (NaN where not applicable), see the module docstring.
    grad_norm : numpy.ndarray
        Per layer ``||dL/dz||`` (Frobenius, over the batch).
    weight_grad_norm : numpy.ndarray
        Per layer ``||dL/dW||`` (Frobenius).
    weight_std : numpy.ndarray
        Per layer std of the weights.
    grad_norm_ratio : float
        ``grad_norm[0] / grad_norm[-1]``.
    input_std : float
        Std of the batch ``X``.
    rows : int
        Rows of the batch ``X``.
    loss : float or None
        The loss on the batch (None without targets).
    gradient : str
        Where the output gradient came from (the loss, or N(0, 1)).
    recommended : list of dict
        Per layer, :func:`recommended_init`.
    flags : dict of bool
        ``vanishing_activations``, ``exploding_activations``,
        ``vanishing_gradients``, ``exploding_gradients``, ``saturation``,
        ``dead_units``, ``non_finite``.
    warnings : list of str
        The findings in plain English (empty when all is well).
    """

    sizes: tuple[int, ...]
    activations: list[str]
    pre_mean: np.ndarray
    pre_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray
    grad_mean: np.ndarray
    grad_std: np.ndarray
    saturated: np.ndarray
    inactive: np.ndarray
    dead: np.ndarray
    grad_norm: np.ndarray
    weight_grad_norm: np.ndarray
    weight_std: np.ndarray
    grad_norm_ratio: float
    input_std: float
    loss: float | None
    gradient: str
    rows: int = 0
    recommended: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types (lists, floats; NaN kept), e.g. for JSON.

        Returns
        -------
        dict
            Every attribute by name: the per-layer arrays as lists of float,
            ``sizes`` as a list of int, the other attributes as they are.
        """
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        out["sizes"] = list(self.sizes)
        return out

    def table(self) -> str:
        """The per-layer statistics as an aligned text table, then the warnings.

        Returns
        -------
        str
            A header, one line per layer (with its recommended init), a summary
            line (input std, gradient-norm ratio, output gradient), then one
            ``warning: ...`` line per warning, or ``no warnings``.
        """
        head = (
            f"{'layer':>5} {'act':<10}{'units':>6}{'z mean':>10}{'z std':>10}{'a mean':>10}"
            f"{'a std':>10}{'dz std':>10}{'|dz|':>10}{'sat':>6}{'dead':>6}{'W std':>9}"
            f"  recommended"
        )
        lines = [head, "-" * len(head)]

        def frac(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:.2f}"

        for k, act in enumerate(self.activations):
            rec = self.recommended[k]
            nums = [self.pre_mean[k], self.pre_std[k], self.act_mean[k], self.act_std[k]]
            lines.append(
                f"{k:>5} {act:<10}{self.sizes[k + 1]:>6}"
                + "".join(f" {v:>9.3g}" for v in nums)
                + f" {self.grad_std[k]:>9.3g} {self.grad_norm[k]:>9.3g}"
                f"{frac(self.saturated[k]):>6}{frac(self.dead[k]):>6} {self.weight_std[k]:>8.3g}"
                f"  {rec['init']} (gain {rec['gain']:.3g}, std {rec['std']:.3g})"
            )
        lines.append(
            f"input std {self.input_std:.3g}; |dz| first/last layer {self.grad_norm_ratio:.3g}; "
            f"output gradient: {self.gradient}"
        )
        lines += [f"warning: {w}" for w in self.warnings] or ["no warnings"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"Diagnosis(sizes={list(self.sizes)}, warnings={len(self.warnings)})\n{self.table()}"


def _findings(d: Diagnosis) -> None:
    """Fill ``d.flags`` and ``d.warnings``."""
    gain = d.pre_std / d.input_std if d.input_std > 0 else np.full_like(d.pre_std, np.nan)
    with np.errstate(invalid="ignore"):
        finite = bool(np.isfinite(d.pre_std).all() and np.isfinite(d.grad_std).all())
        low = np.flatnonzero(gain < VANISHING)
        high = np.flatnonzero(gain > EXPLODING)
        sat = np.flatnonzero(d.saturated > SATURATED)
        dead = np.flatnonzero(d.dead > DEAD)
    ratio = d.grad_norm_ratio
    flags = {
        "vanishing_activations": low.size > 0,
        "exploding_activations": high.size > 0,
        "vanishing_gradients": bool(ratio < VANISHING),
        "exploding_gradients": bool(ratio > EXPLODING),
        "saturation": sat.size > 0,
        "dead_units": dead.size > 0,
        "non_finite": not finite,
    }
    w = []
    if not finite:
        w.append("non-finite statistics: the signal overflowed (weights far too large)")
    if low.size:
        k = int(low[0])
        w.append(
            f"vanishing activations: the pre-activation std falls below {VANISHING} x the "
            f"input std from layer {k} on ({gain[k]:.2g} x at layer {k}, "
            f"{gain[-1]:.2g} x at the output): the weights are too small"
        )
    if high.size:
        k = int(high[0])
        w.append(
            f"exploding activations: the pre-activation std exceeds {EXPLODING:g} x the "
            f"input std from layer {k} on ({gain[k]:.3g} x at layer {k}): the weights are "
            "too large"
        )
    if flags["vanishing_gradients"]:
        w.append(
            f"vanishing gradients: ||dL/dz|| at the first layer is {ratio:.2g} x that at the "
            f"last (threshold {VANISHING}): the first layers will barely learn"
        )
    if flags["exploding_gradients"]:
        w.append(
            f"exploding gradients: ||dL/dz|| at the first layer is {ratio:.3g} x that at the "
            f"last (threshold {EXPLODING:g})"
        )
    for k in sat:
        w.append(
            f"saturation: {d.saturated[k]:.0%} of layer {k}'s {d.activations[k]} activations "
            f"are in a flat tail (threshold {SATURATED:.0%}); their gradient is nearly zero"
        )
    for k in dead:
        w.append(
            f"dead units: {d.dead[k]:.0%} of layer {k}'s {d.activations[k]} units are inactive "
            f"on every row of the batch (threshold {DEAD:.0%}); they get no gradient"
            + (
                f" (with only {d.rows} rows a live unit can be off on all of them by chance: "
                "diagnose a few hundred)"
                if 0 < d.rows < FEW_ROWS
                else ""
            )
        )
    if any(flags.values()):
        recs = sorted({f"{a}: {r['init']} (gain {r['gain']:.3g})"
                       for a, r in zip(d.activations, d.recommended, strict=True)})  # fmt: skip
        w.append("the theory recommends " + "; ".join(recs))
    d.flags = flags
    d.warnings = w


def diagnose(
    model: Any,
    X: Any,
    y: Any = None,
    loss: str = "softmax_cross_entropy",
    *,
    grad_seed: int = 0,
) -> Diagnosis:
    """Measure how the signal propagates through a model at its current weights.

    One forward and one backward pass on all rows of ``X`` with the training
    kernel (no update); see the module docstring for every statistic and the
    warning thresholds.

    Parameters
    ----------
    model : MLP
        The network (not modified).
    X : array_like, shape (n, n_in)
        A batch of inputs (a few hundred rows is plenty).
    y : array_like, optional
        Targets for ``loss``.  Without them the gradient arriving at the output
        (``dL/dlogits``) is standard normal, drawn from stream
        :data:`fastinit.random.TOP_GRADIENT_STREAM` of key ``grad_seed``
        (:func:`fastinit.random.fill_normal`), as in the depth experiment: a
        stream no layer's weights use, so the gradient is independent of them.
    loss : str
        Loss used with ``y``.
    grad_seed : int
        Key of the output gradient without ``y``, an integer in ``[0, 2**64)``
        (checked with targets too, as ``loss`` is).

    Returns
    -------
    Diagnosis
        Prints as a table; ``.warnings`` lists the findings.

    Raises
    ------
    ValueError
        If ``model`` is not an MLP, or ``X``, ``y``, ``loss`` or ``grad_seed``
        is invalid (the message names it).
    TypeError
        If ``grad_seed`` is not an integer.
    """
    if not hasattr(model, "_layers"):
        raise ValueError(f"model: expected an MLP, got {type(model).__name__}")
    Xc = _train.prepare_x(model, X)
    n, n_out = Xc.shape[0], model.sizes[-1]
    spec = _losses.get(loss)  # checked with or without targets
    seed = check_seed(grad_seed, "grad_seed")  # likewise, used or not
    if y is None:
        code: Any = _train.GIVEN_GRADIENT
        y_int = np.empty(0, np.int64)
        y_float = np.empty((n, n_out), model.dtype)
        _rng.fill_normal(y_float, 0.0, 1.0, seed=seed, stream=_rng.TOP_GRADIENT_STREAM)
        source = f"N(0, 1) (no targets; key {grad_seed})"
    else:
        code = spec
        y_int, y_float = _losses.prepare_targets(code, y, n, n_out, model.dtype)
        source = f"{code.name} loss"
    run = _train._build_run(
        [model], [_optim.NoUpdate()], Xc, y_int, y_float, code, _train.FULL, n, 0, 1, 1
    )
    run.plan[_train.P_T0], run.plan[_train.P_NITER] = 0, 1
    _train.train_chunk(*run.args)
    value = float(run.losses[0, 0])
    if not math.isfinite(value):  # the step stopped before its backward pass
        run.grads[:] = np.nan
    stats = _train.layer_stats(run, 0, 1)
    row = {name: stats[name][0] for name in _train.STAT_FIELDS}
    units = np.array([n * s for s in model.sizes[1:]], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        grad_norm = np.sqrt(units * (row["grad_mean"] ** 2 + row["grad_std"] ** 2))
        ratio = float(grad_norm[0] / grad_norm[-1]) if grad_norm[-1] > 0 else float("nan")
        grads = model._split(run.grads)
        wg = np.array(
            [math.sqrt(float(np.sum(np.square(dw, dtype=np.float64)))) for dw, _ in grads]
        )
    acts = model.activations
    d = Diagnosis(
        sizes=tuple(model.sizes),
        activations=[a.name for a in acts],
        **row,
        grad_norm=grad_norm,
        weight_grad_norm=wg,
        weight_std=np.array([float(np.std(w, dtype=np.float64)) for w in model.weights]),
        grad_norm_ratio=ratio,
        input_std=float(np.std(Xc, dtype=np.float64)),
        loss=None if y is None else value,
        gradient=source,
        rows=n,
        recommended=[
            recommended_init(a, model.sizes[k], model.sizes[k + 1]) for k, a in enumerate(acts)
        ],
    )
    _findings(d)
    return d
