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
ReLU family (relu, leaky_relu, elu, selu, gelu, gelu_tanh, silu, softplus) the inactive
fraction (entries with ``|f'(z)| < 0.05``: almost no gradient passes them) and
the dead fraction (units inactive on every row of the batch); the Frobenius
norms of ``dL/dz_k`` and of ``dL/dW_k``.

What "inactive" means per activation (slope below
:data:`fastinit.train.INACTIVE_SLOPE` = 0.05): relu, exactly the zero outputs
(``z <= 0``); leaky_relu, every ``z <= 0`` when ``negative_slope < 0.05`` (the
default 0.01 passes 1% of the gradient), never otherwise; elu (``alpha = 1``)
and selu, their flat tail (``z < -3.0`` and ``z < -3.56``); softplus, whose
slope is ``sigmoid(beta z)``, its tail ``z < -2.94 / beta``.  gelu, gelu_tanh
and silu have no region of exact zeros and a slope that changes sign:
``|f'(z)| < 0.05`` holds in their flat negative tail (gelu ``z < -2.35``,
silu ``z < -4.08``) and in a narrow band around the sign change (gelu
``-0.88 < z < -0.65``, silu ``-1.56 < z < -1.08``): about 8% of standard
normal entries, so their inactive fraction is not relu's 50%.  A unit is dead
only if it is inactive on every row: one whose pre-activation varies over a
batch of a few hundred rows cannot stay inside the band, so a healthy gelu or
silu layer has no dead units, while one pushed into the tail (a large negative
bias, or exploding pre-activations of one sign) is reported.  On a few rows
any unit can be inactive on all of them by chance (see ``FEW_ROWS``).

Warnings, with these thresholds (module constants):

* vanishing / exploding activations: some layer's pre-activation std is below
  ``VANISHING = 0.1`` or above ``EXPLODING = 10`` times the input's std;
* vanishing / exploding gradients: ``||dL/dz_1|| / ||dL/dz_L||`` (first over
  last layer, Frobenius norms over the batch) is below 0.1 or above 10.  With
  fan-in scaled inits this ratio is about 1 whatever the widths.  When the
  layer feeding the first vanishing one has more than ``DEAD`` dead units, the
  finding names them as the cause instead of the weights' scale: a dead unit
  passes no signal on (a bias of -20 silences a layer of He weights).  When
  the first exploding layer's biases alone have a std across its units above
  ``EXPLODING`` times the input's (``bias_std``), the finding names the
  biases instead of the weights: equal biases shift the pre-activations,
  spread ones widen their std whatever the weights;
* saturation: more than ``SATURATED = 10%`` of a sigmoid/tanh layer's
  activations are saturated;
* dead units: more than ``DEAD = 10%`` of a ReLU-family layer's units are
  inactive on the whole batch;
* unnormalized input: the std of ``X`` (over all its entries) is outside
  ``[1 / INPUT_SCALE, INPUT_SCALE] = [0.1, 10]``, or its mean is more than
  ``INPUT_OFFSET = 1`` std from 0.  Fan-in scaled inits assume inputs of about
  zero mean and unit variance.  At another scale a saturating activation (raw
  pixels 0..255 saturate tanh and sigmoid) or the biases change the ratios
  above whatever the weights, and an offset adds to the first layer's std and
  makes each unit's pre-activation keep one sign over most rows (dead ReLU
  units in the next layers): the vanishing / exploding findings then name the
  input as a possible cause instead of blaming the weights, and the note
  recommends normalizing ``X`` per feature (MNIST scaled to [0, 1], mean 0.13
  and std 0.30, is not flagged);
* badly scaled features (also ``unnormalized_input``): the largest feature std
  is more than ``FEATURE_SCALE = 100`` times the median non-constant feature's,
  though the pooled mean and std look fine (one column in the hundreds, the
  rest in [0, 1]): that feature dominates the first layer's signal.  A
  feature far *below* the others is not flagged: a rarely active one (a sparse
  indicator, MNIST's border pixels, whose std is about 3000 times below the
  central pixels') is at the same scale when it is active and adds little to
  the signal.  The ratio of the largest to the smallest non-constant feature
  std is reported all the same (``feature_std_ratio``), with every feature's
  std (``feature_std``, from :func:`feature_moments`, compiled: about 0.03 s
  on 60000 x 784 float32, 0.05 s in float64);
* a feature far off center (also ``unnormalized_input``): its mean's magnitude
  is more than ``FEATURE_SCALE`` times the median non-constant feature's std
  (one column around 40, the rest of std 0.3, which the pooled statistics
  average away): it adds a large offset to every first-layer unit.  A constant
  column of ones (a bias input) is not;
* non-finite statistics (overflow);
* symmetric weights: the units of a hidden layer are exact copies of each
  other (every column of its weights equal, its biases equal, and every row of
  the next layer's weights equal: a constant or zero init).  They compute the
  same value and get the same gradient, so they stay copies forever and the
  layer acts as one unit (``symmetric_layers``).

With fewer than ``FEW_ROWS = 16`` rows no finding but the non-finite and the
symmetric ones is made (their flags are False, ``few_rows`` is True, and a
warning says so): a std over one or two rows says little (a one-unit layer's std over one row is 0
whatever the weights) and a live ReLU unit is off on every one of ``r`` rows
with probability about ``2**-r``.  The statistics are measured all the same.

Recommended init per layer (from the activation it feeds): He
(``kaiming_normal``, std ``gain / sqrt(fan_in)``) for relu, leaky_relu, elu,
gelu, gelu_tanh, silu and softplus, gains from
:func:`fastinit.init.calculate_gain` (relu's for elu, gelu, gelu_tanh, silu and
softplus, an approximation); Glorot (``xavier_normal``, std
``sqrt(2 / (fan_in + fan_out))``, gain 1 as in Glorot & Bengio 2010) for tanh,
sigmoid and the linear output layer; LeCun (``lecun_normal``, std
``1 / sqrt(fan_in)``, Klambauer et al. 2017) for SELU.  Not PyTorch's tanh gain
5/3: it gives a layer fed unit-variance inputs a pre-activation std of 5/3 to
2.4, so 11-26% of its activations saturate (above ``SATURATED``: the
recommendation tripped its own finding), and its weight variance times the fan-in,
25/9 in square layers, lies past tanh's critical value 1 (Schoenholz et al. 2017):
gradients grow with depth (``exploding_gradients`` from about 30 layers on).

Any finding on the init ends the warnings with advice on it.  It names the
recommended inits, unless the layers that shape the findings (every layer for
the gradient, overflow and symmetry findings, else those up to the last one
flagged) already have them: each layer's weights of mean 0 and the recommended
std to sampling error (within 4 standard errors of as many normal draws, so the
same variance times fan-in whatever the distribution).  Then it says so and
names the biases if they are not about 0 (a root mean square above
``VANISHING`` times the layer's pre-activation std), else the input's scale if
it is off, else the depth and the activation itself (dead ReLU units grow with
depth at He init; sigmoid's mean 0.5 and slope at most 0.25 shrink the
gradient at Xavier init), with what to try: fewer layers, another activation,
normalization between layers, or a data-dependent init (:func:`fastinit.lsuv.lsuv`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from fastinit import activations as _act
from fastinit import losses as _losses
from fastinit import optim as _optim
from fastinit import random as _rng
from fastinit import train as _train
from fastinit._validate import all_finite, check_int, check_seed
from fastinit.init import calculate_gain

__all__ = [
    "DEAD",
    "EXPLODING",
    "FEATURE_SCALE",
    "FEW_ROWS",
    "FLAGS",
    "INPUT_OFFSET",
    "INPUT_SCALE",
    "SATURATED",
    "VANISHING",
    "Diagnosis",
    "diagnose",
    "feature_moments",
    "moments",
]

VANISHING = 0.1  # pre-activation std / input std below this: vanishing
EXPLODING = 10.0  # ... above this: exploding; the same bounds for the gradient-norm ratio
SATURATED = 0.1  # saturated fraction of a sigmoid/tanh layer above this: warn
DEAD = 0.1  # dead fraction of a ReLU-family layer's units above this: warn
INPUT_SCALE = 10.0  # input std outside [1 / INPUT_SCALE, INPUT_SCALE]: not at unit scale
INPUT_OFFSET = 1.0  # |input mean| above this many input stds: not centered
FEATURE_SCALE = 100.0  # largest feature std / median feature std above this: badly scaled
FEW_ROWS = 16  # fewer rows: only overflow and symmetry are judged (a live unit may be off on all)
# the findings about the init: any of them adds the recommended inits to the warnings
_INIT_FLAGS = (
    "vanishing_activations",
    "exploding_activations",
    "vanishing_gradients",
    "exploding_gradients",
    "saturation",
    "dead_units",
    "symmetric_weights",
    "non_finite",
)
FLAGS = (*_INIT_FLAGS, "unnormalized_input", "few_rows")  # the keys of Diagnosis.flags
# the findings every layer's weights shape (the others: the layers up to the last one flagged)
_WHOLE_NETWORK = ("vanishing_gradients", "exploding_gradients", "non_finite", "symmetric_weights")
_SAMPLING_ERRORS = 4.0  # weights this many standard errors from the recommended std: another init
_HE_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "softplus")


def recommended_init(activation: Any, fan_in: int, fan_out: int) -> dict[str, Any]:
    """The init the theory recommends for a layer feeding ``activation``.

    Parameters
    ----------
    activation : str, tuple or Activation
        The layer's activation (``identity`` for the output layer), as
        :func:`fastinit.activations.get` takes it: ``"relu"``,
        ``("leaky_relu", {"negative_slope": 0.2})`` or an Activation.
    fan_in, fan_out : int
        The layer's widths, >= 1.

    Returns
    -------
    dict
        ``{"rule": "He" | "Glorot" | "LeCun", "init": fastinit.init name,
        "gain": float, "std": the weight std it gives}``.

    Raises
    ------
    ValueError
        For an unknown activation, or a width below 1 (the message names it).
    TypeError
        If ``fan_in`` or ``fan_out`` is not an integer.
    """
    activation = _act.get(activation, "activation")
    fan_in = check_int(fan_in, "fan_in", low=1)
    fan_out = check_int(fan_out, "fan_out", low=1)
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
    # Glorot & Bengio's gain 1 for tanh too, not calculate_gain's 5/3: see the module docstring
    return {"rule": "Glorot", "init": "xavier_normal", "gain": 1.0,
            "std": math.sqrt(2.0 / (fan_in + fan_out))}  # fmt: skip


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
    weight_mean, bias_mean : numpy.ndarray
        Per layer mean of the weights, of the biases.
    symmetric_layers : list of int
        The hidden layers whose units are exact copies of each other (see the
        module docstring, ``symmetric_weights``).
    bias_std : numpy.ndarray
        Per layer std of the biases across the layer's units (0 for equal biases,
        which shift the pre-activations without spreading them).
    grad_norm_ratio : float
        ``grad_norm[0] / grad_norm[-1]``.
    input_std : float
        Std of the batch ``X``.
    rows : int
        Rows of the batch ``X``.
    input_mean : float
        Mean of the batch ``X``.
    feature_std : numpy.ndarray
        Per input feature (column of ``X``), its std over the batch (ddof 0;
        exactly 0 for a constant feature), :func:`feature_moments`.
    feature_std_ratio : float
        The largest over the smallest non-constant feature std (NaN if every
        feature is constant).
    feature_std_dominance : float
        The largest over the median non-constant feature std (the lower median:
        the smaller of the two middle ones), judged against :data:`FEATURE_SCALE`.
    widest_feature : int
        The column with the largest std (-1 if every feature is constant).
    feature_mean : numpy.ndarray
        Per input feature, its mean over the batch (:func:`feature_moments`).
    feature_offset_dominance : float
        The largest feature mean's magnitude over the median non-constant
        feature std, judged against :data:`FEATURE_SCALE` (NaN if every feature
        is constant).
    offset_feature : int
        The column with the largest mean magnitude (-1 if every feature is
        constant).
    loss : float or None
        The loss on the batch (None without targets).
    gradient : str
        Where the output gradient came from (the loss, or N(0, 1)).
    recommended : list of dict
        Per layer, :func:`recommended_init`.
    flags : dict of bool
        One per name in :data:`FLAGS`: ``vanishing_activations``,
        ``exploding_activations``, ``vanishing_gradients``,
        ``exploding_gradients``, ``saturation``, ``dead_units``,
        ``symmetric_weights``, ``non_finite``,
        ``unnormalized_input`` and ``few_rows`` (fewer than :data:`FEW_ROWS`
        rows: every flag but ``non_finite`` and ``symmetric_weights`` is then False,
        not judged).
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
    input_mean: float = math.nan
    feature_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    feature_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    feature_std_ratio: float = math.nan
    feature_std_dominance: float = math.nan
    widest_feature: int = -1
    feature_offset_dominance: float = math.nan
    offset_feature: int = -1
    bias_std: np.ndarray = field(default_factory=lambda: np.empty(0))
    weight_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    bias_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    symmetric_layers: list[int] = field(default_factory=list)
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
            line (input std, largest feature std over the smallest and the
            median, gradient-norm ratio, output gradient), then one
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
            f"input std {self.input_std:.3g} (largest feature std: {self.feature_std_ratio:.3g} x "
            f"the smallest, {self.feature_std_dominance:.3g} x the median); "
            f"|dz| first/last layer {self.grad_norm_ratio:.3g}; "
            f"output gradient: {self.gradient}"
        )
        lines += [f"warning: {w}" for w in self.warnings] or ["no warnings"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"Diagnosis(sizes={list(self.sizes)}, warnings={len(self.warnings)})\n{self.table()}"


def _findings(d: Diagnosis) -> None:
    """Fill ``d.flags`` (every name in :data:`FLAGS`) and ``d.warnings``."""
    flags = dict.fromkeys(FLAGS, False)
    warnings: list[str] = []
    few_rows = 0 < d.rows < FEW_ROWS
    problems = [] if few_rows else _input_problems(d)
    unnormalized = bool(problems)
    if not (np.isfinite(d.pre_std).all() and np.isfinite(d.grad_std).all()):
        flags["non_finite"] = True
        cause = _input_cause(problems) if unnormalized else "the weights are far too large"
        warnings.append(f"non-finite statistics: the signal overflowed: {cause}")
    if d.symmetric_layers:  # a property of the weights alone: judged on any number of rows
        flags["symmetric_weights"] = True
        warnings.append(_symmetric_warning(d.symmetric_layers))
    if few_rows:
        flags["few_rows"] = True
        warnings.append(
            f"few rows: X has {d.rows} rows, fewer than {FEW_ROWS}, so no finding on the "
            "activations, gradients, saturation, dead units or input scale is made: a std "
            "over so few rows says little (a one-unit layer's std over one row is 0), and a "
            "live unit can be inactive on all of them by chance; the statistics are measured "
            "all the same: diagnose a few hundred rows"
        )
    last = len(d.pre_std) - 1  # the last layer whose weights shape a finding
    if not few_rows:
        last_flagged = max(_signal_findings(d, problems, flags, warnings),
                           _unit_findings(d, flags, warnings))  # fmt: skip
        if not any(flags[name] for name in _WHOLE_NETWORK):
            last = last_flagged
        if unnormalized:
            flags["unnormalized_input"] = True
            warnings.append(_unnormalized_warning(d))
    if any(flags[name] for name in _INIT_FLAGS):
        warnings.append(_init_advice(d, flags, last, problems))
    d.flags = flags
    d.warnings = warnings


def _init_advice(d: Diagnosis, flags: dict, last: int, problems: list[str]) -> str:
    """The advice on the init after a finding about it; layers ``0..last`` shape the findings.

    The recommended inits when some of those layers' weights differ from them; else, when
    their biases are not about 0, those; else the input's scale or the depth and the
    activation (the theory's init cannot do better: recommending it again misleads).
    """
    layers = range(last + 1)

    def recs(ks: range) -> str:
        return "; ".join(sorted({f"{d.activations[k]}: {d.recommended[k]['init']} (gain "
                                 f"{d.recommended[k]['gain']:.3g})" for k in ks}))  # fmt: skip

    if not all(_at_the_theory(d, k) for k in layers):
        return "the theory recommends " + recs(range(len(d.activations)))
    which = "layer 0" if last == 0 else f"layers 0-{last}"
    matches = f"({recs(layers)}; the weights of {which} have the recommended std to sampling error)"
    biased = np.array([k for k in layers if not _biases_small(d, k)], dtype=np.int64)
    if biased.size:
        return (
            f"the weights already match the theory {matches}, but the biases are far from 0 "
            f"{_layers_text(biased, len(d.activations))} (their root mean square is above "
            f"{VANISHING:g} x the layer's pre-activation std): start them at 0 and diagnose again"
        )
    if problems:
        cause = "the input's scale is the likely cause: normalize it (see the note above)"
    else:
        cause = _depth_cause(d, flags, layers)
    return (
        f"the init already matches the theory {matches} and the biases are about 0, so "
        f"another init of the same kind will not help: {cause}, and diagnose again"
    )


def _at_the_theory(d: Diagnosis, k: int) -> bool:
    """Whether layer ``k``'s weights have the recommended std ``s`` and mean 0 to sampling
    error: within :data:`_SAMPLING_ERRORS` standard errors of ``N`` draws of N(0, s^2)
    (``s / sqrt(2 N)`` for the std, ``s / sqrt(N)`` for the mean), that is, the same
    variance times fan-in as the recommended init, whatever the distribution."""
    s = d.recommended[k]["std"]
    error = _SAMPLING_ERRORS * s / math.sqrt(d.sizes[k] * d.sizes[k + 1])
    return abs(d.weight_std[k] - s) <= error / math.sqrt(2.0) and abs(d.weight_mean[k]) <= error


def _biases_small(d: Diagnosis, k: int) -> bool:
    """Whether layer ``k``'s biases are about 0: their root mean square is 0 or at most
    :data:`VANISHING` times the layer's pre-activation std."""
    rms = math.hypot(d.bias_mean[k], d.bias_std[k])
    return rms == 0.0 or rms <= VANISHING * d.pre_std[k]


def _depth_cause(d: Diagnosis, flags: dict, layers: range) -> str:
    """The likely cause of findings at the theory's init and zero biases, with what to try."""
    acts = {d.activations[k] for k in layers}
    why = [f"the likely cause is the depth ({len(d.activations) - 1} hidden layers) and the "
           "activation itself"]  # fmt: skip
    other = "another activation"
    if flags["dead_units"]:
        dead = "/".join(sorted({d.activations[k] for k in layers if d.dead[k] > DEAD}))
        why.append(
            f"dead {dead} units grow with depth: layer after layer, more units keep one sign "
            "on every row"
        )
        other = "an activation that passes a gradient below 0 (elu, leaky_relu of slope 0.1)"
    if "sigmoid" in acts:
        why.append(
            "sigmoid's outputs have mean 0.5, not 0, and its slope is at most 0.25: the "
            "signal and the gradient shrink at every layer"
        )
        other = "tanh or the ReLU family rather than sigmoid"
    return (
        "; ".join(why) + f": try fewer layers, {other}, normalization between layers, or a "
        "data-dependent init such as LSUV (fastinit.lsuv.lsuv(model, X))"
    )


def _symmetric_warning(layers: list[int]) -> str:
    """The finding on hidden layers whose units are exact copies of each other."""
    which = ("layer " if len(layers) == 1 else "layers ") + ", ".join(map(str, layers))
    return (
        f"symmetric weights: the units of {which} are exact copies of each other (equal "
        "incoming weights and biases, equal outgoing weights): they get equal gradients and "
        "stay copies forever, so each such layer acts as one unit; draw the weights at "
        "random (the biases may start at 0)"
    )


def _symmetric_layers(ws: list[np.ndarray], bs: list[np.ndarray]) -> list[int]:
    """The hidden layers (of more than one unit) whose units are exact copies: equal columns
    of weights ``ws``, equal biases ``bs``, and equal rows of the next layer's weights."""
    return [
        k
        for k in range(len(ws) - 1)
        if ws[k].shape[1] > 1
        and (ws[k][0] == ws[k][0, 0]).all()  # the first row first: random weights stop here
        and (ws[k] == ws[k][:, :1]).all()
        and (bs[k] == bs[k][0]).all()
        and (ws[k + 1] == ws[k + 1][:1]).all()
    ]


def _unnormalized(mean: float, std: float) -> bool:
    """Whether inputs of this mean and std are far from zero mean and unit variance."""
    return not 1.0 / INPUT_SCALE <= std <= INPUT_SCALE or abs(mean) > INPUT_OFFSET * std


def _badly_scaled(d: Diagnosis) -> bool:
    """Whether one feature's std is far above the median feature's (:data:`FEATURE_SCALE`)."""
    return d.feature_std_dominance > FEATURE_SCALE  # False for NaN: every feature constant


def _off_center(d: Diagnosis) -> bool:
    """Whether one feature's mean is far beyond the median feature's std (:data:`FEATURE_SCALE`)."""
    return d.feature_offset_dominance > FEATURE_SCALE  # False for NaN


def _input_problems(d: Diagnosis) -> list[str]:
    """What is wrong with the input's scale, as causes to name (empty when nothing is)."""
    problems = []
    if _unnormalized(d.input_mean, d.input_std):
        problems.append(
            f"the input is far from unit scale (mean {d.input_mean:.3g}, std {d.input_std:.3g})"
        )
    if _badly_scaled(d):
        problems.append(
            f"the input's features are on very different scales (feature {d.widest_feature}'s "
            f"std is {d.feature_std_dominance:.3g} x the median feature's)"
        )
    if _off_center(d):
        problems.append(
            f"one of the input's features is far off center (feature {d.offset_feature}'s "
            f"mean is {d.feature_offset_dominance:.3g} x the median feature's std)"
        )
    return problems


def _input_cause(problems: list[str]) -> str:
    """The cause to name instead of the weights when the input is not at unit scale."""
    return (
        " and ".join(problems) + ", which alone can cause this: normalize it and diagnose "
        "again before changing the weights"
    )


def _unnormalized_warning(d: Diagnosis) -> str:
    """The note recommending input normalization."""
    found = []
    if _unnormalized(d.input_mean, d.input_std):
        found.append(
            f"X has mean {d.input_mean:.3g} and std {d.input_std:.3g} (over all its entries), "
            f"far from unit scale (std outside [{1 / INPUT_SCALE:g}, {INPUT_SCALE:g}] or mean "
            f"more than {INPUT_OFFSET:g} std from 0)"
        )
    if _badly_scaled(d):
        widest = d.feature_std[d.widest_feature]
        found.append(
            f"X's feature {d.widest_feature} has std {widest:.3g}, "
            f"{d.feature_std_dominance:.3g} x the median feature's "
            f"{widest / d.feature_std_dominance:.3g} (threshold {FEATURE_SCALE:g}; the "
            f"non-constant feature stds span a factor {d.feature_std_ratio:.3g}): it dominates "
            "the first layer's signal"
        )
    if _off_center(d):
        k = d.offset_feature
        found.append(
            f"X's feature {k} has mean {d.feature_mean[k]:.3g}, "
            f"{d.feature_offset_dominance:.3g} x the median feature's std (threshold "
            f"{FEATURE_SCALE:g}): it adds a large offset to every first-layer unit"
        )
    return (
        "unnormalized input: " + "; ".join(found) + "; the inits assume inputs of about zero "
        "mean and unit variance: normalize every feature, (x - mean) / std with the training "
        "set's mean and std, then diagnose again"
    )


def _layers_text(layers: np.ndarray, n_layers: int) -> str:
    """``from layer k on`` if ``layers`` are all layers from ``k``, else ``at layers i, j-k``
    (runs of consecutive layers as ranges: after an overflow the later layers are NaN, and
    the warning listed every layer before it)."""
    first = int(layers[0])
    if len(layers) == n_layers - first:
        return f"from layer {first} on"
    runs: list[list[int]] = []
    for k in map(int, layers):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    return ("at layer " if len(layers) == 1 else "at layers ") + text


def _vanishing_cause(d: Diagnosis, k: int, problems: list[str]) -> str:
    """Why layer ``k``'s pre-activations, the first to vanish, do: the input's scale, dead
    units in the layer feeding it (they pass no signal on), or else the weights' scale."""
    if problems:
        return _input_cause(problems)
    if k > 0 and d.dead[k - 1] > DEAD:
        j = k - 1
        return (
            f"{d.dead[j]:.0%} of layer {j}'s {d.activations[j]} units are dead (inactive on "
            "every row of the batch) and pass no signal on, which alone can cause this: revive "
            "them (a bias too negative, an input offset) and diagnose again before changing "
            "the weights' scale"
        )
    return "the weights are too small"


def _exploding_cause(d: Diagnosis, k: int, problems: list[str]) -> str:
    """Why layer ``k``'s pre-activations, the first to explode, do: the input's scale, biases
    spread so far across the layer's units that they alone exceed the threshold, or else the
    weights' scale."""
    if problems:
        return _input_cause(problems)
    spread = d.bias_std[k] / d.input_std if k < d.bias_std.size else 0.0
    if spread > EXPLODING:
        return (
            f"layer {k}'s biases have a std of {spread:.3g} x the input std across its units, "
            "which alone can cause this: the biases are too large (they usually start at 0)"
        )
    return "the weights are too large"


def _signal_findings(d: Diagnosis, problems: list[str], flags: dict, warnings: list) -> int:
    """Vanishing / exploding activations and gradients into ``flags`` and ``warnings``; returns
    the last layer whose activations vanish or explode (-1 if none)."""
    n_layers = len(d.pre_std)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = d.pre_std / d.input_std if d.input_std > 0 else np.full(n_layers, np.nan)
        low = np.flatnonzero(gain < VANISHING)
        high = np.flatnonzero(gain > EXPLODING)
    if low.size:
        k = int(low[0])
        flags["vanishing_activations"] = True
        cause = _vanishing_cause(d, k, problems)
        warnings.append(
            f"vanishing activations: the pre-activation std falls below {VANISHING} x the "
            f"input std {_layers_text(low, n_layers)} ({gain[k]:.2g} x at layer {k}, "
            f"{gain[-1]:.2g} x at the output): {cause}"
        )
    if high.size:
        k = int(high[0])
        flags["exploding_activations"] = True
        cause = _exploding_cause(d, k, problems)
        warnings.append(
            f"exploding activations: the pre-activation std exceeds {EXPLODING:g} x the "
            f"input std {_layers_text(high, n_layers)} ({gain[k]:.3g} x at layer {k}): {cause}"
        )
    ratio = d.grad_norm_ratio
    if ratio < VANISHING:
        flags["vanishing_gradients"] = True
        warnings.append(
            f"vanishing gradients: ||dL/dz|| at the first layer is {ratio:.2g} x that at the "
            f"last (threshold {VANISHING}): the first layers will barely learn"
        )
    if ratio > EXPLODING:
        flags["exploding_gradients"] = True
        warnings.append(
            f"exploding gradients: ||dL/dz|| at the first layer is {ratio:.3g} x that at the "
            f"last (threshold {EXPLODING:g})"
        )
    return int(max(low.max(initial=-1), high.max(initial=-1)))


def _unit_findings(d: Diagnosis, flags: dict, warnings: list) -> int:
    """Saturated and dead units into ``flags`` and ``warnings``; returns the last layer with
    either (-1 if none)."""
    with np.errstate(invalid="ignore"):
        saturated = np.flatnonzero(d.saturated > SATURATED)
        dead = np.flatnonzero(d.dead > DEAD)
    flags["saturation"] = saturated.size > 0
    flags["dead_units"] = dead.size > 0
    for k in saturated:
        warnings.append(
            f"saturation: {d.saturated[k]:.0%} of layer {k}'s {d.activations[k]} activations "
            f"are in a flat tail (threshold {SATURATED:.0%}); their gradient is nearly zero"
        )
    for k in dead:
        warnings.append(
            f"dead units: {d.dead[k]:.0%} of layer {k}'s {d.activations[k]} units are inactive "
            f"(|f'(z)| < {_train.INACTIVE_SLOPE:g}) on every row of the batch (threshold "
            f"{DEAD:.0%}); they get almost no gradient"
        )
    return int(max(saturated.max(initial=-1), dead.max(initial=-1)))


def moments(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0, in float64) of every entry of ``values``.

    :func:`fastinit.train.mean_std` (compiled, two passes, no temporary), which
    sums again with the values scaled where a sum or a square overflows: weights
    of 1e200 have a finite spread, not inf.  Entries that are not finite give
    results that are not finite.

    Parameters
    ----------
    values : numpy.ndarray
        Real numbers, any shape, at least one entry; float32 and float64 are
        read as they are, other dtypes (integers, bool, float16, longdouble)
        cast to float64 first.

    Returns
    -------
    mean, std : float

    Raises
    ------
    ValueError
        Naming ``values``, if it holds no entry or no real numbers.
    """
    values = _act.real_input(values, "values")  # float32 or float64: one kernel per type
    if values.size == 0:
        raise ValueError(f"values: expected real numbers, at least one, got shape {values.shape}")
    mean, std = _train.mean_std(np.ascontiguousarray(values).reshape(-1))
    return mean, std


@njit(cache=True, error_model="numpy")
def _feature_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`feature_moments` of a C-contiguous 2-D float array with at least one row,
    unscaled, and whether each feature varies."""
    n, d = x.shape
    mean = np.zeros(d)
    varies = np.zeros(d, dtype=np.bool_)
    for i in range(n):  # row by row: the inner loop runs along memory
        for j in range(d):
            mean[j] += x[i, j]
            varies[j] |= x[i, j] != x[0, j]
    mean /= n
    ss = np.zeros(d)
    for i in range(n):
        for j in range(d):
            e = x[i, j] - mean[j]
            ss[j] += e * e
    std = np.where(varies, np.sqrt(ss / n), 0.0)
    return np.where(varies, mean, x[0].astype(np.float64)), std, varies


_SQUARES_NORMAL = math.sqrt(np.finfo(np.float64).tiny)  # 1.49e-154: below, a square is subnormal


def feature_moments(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the standard deviation (ddof 0) of every feature (column) of ``x``.

    Two compiled passes over the rows, summing in float64 without a temporary
    copy of ``x`` (about 0.03 s for 60000 x 784 float32, 0.05 s in float64;
    other dtypes, integers and float16 included, are cast to float64 first).
    A constant feature's std is exactly 0 and its mean its value (the mean of
    n equal values need not equal them in floating point); a feature whose
    deviations' squares overflow or are subnormal (a std above about 1e154 or
    below about 1.5e-154) is taken again scaled by its largest magnitude.

    Parameters
    ----------
    x : array_like, shape (n, d)
        Finite real values, n >= 1.

    Returns
    -------
    mean, std : numpy.ndarray of float64, shape (d,)

    Raises
    ------
    ValueError
        Naming ``x``, if it is not a 2-D array of real numbers with a row, or
        holds a value that is not finite.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.dtype.kind not in "biuf":
        raise ValueError(
            f"x: expected a 2-D array of real numbers with n >= 1 rows, got shape {x.shape} "
            f"and dtype {x.dtype}"
        )
    if x.dtype not in (np.float32, np.float64):  # integers, bools, float16, longdouble
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    mean, std, varies = _feature_moments(x)
    if not (np.isfinite(std).all() and np.isfinite(mean).all()) and not all_finite(x):
        raise ValueError("x: expected finite values, found NaN or inf")
    # a square overflowed, or a varying feature's squares are subnormal: scale by the largest
    redo = ~np.isfinite(std) | (varies & (std < _SQUARES_NORMAL))
    if redo.any():
        part = x[:, redo].astype(np.float64)
        top = np.max(np.abs(part), axis=0)
        part_mean, part_std, _ = _feature_moments(part / top)  # top > 0: the feature varies
        mean[redo], std[redo] = top * part_mean, top * part_std
    return mean, std


def _feature_spread(mean: np.ndarray, std: np.ndarray) -> tuple[float, float, int, float, int]:
    """``(largest / smallest, largest / lower median, column of the largest)`` of the
    non-constant features' stds, then ``(largest |mean| / that median, its column)``;
    NaNs and -1s when every feature is constant."""
    live = std[std > 0]
    if live.size == 0:
        return math.nan, math.nan, -1, math.nan, -1
    middle = (live.size - 1) // 2
    median = float(np.partition(live, middle)[middle])
    top = float(live.max())
    off = int(np.argmax(np.abs(mean)))
    spread = top / float(live.min()), top / median, int(np.argmax(std))
    return (*spread, abs(float(mean[off])) / median, off)


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
        A batch of inputs (a few hundred rows is plenty; with fewer than
        :data:`FEW_ROWS` the statistics are measured but no finding is made,
        except an overflow).  Normalize it as for training: its scale is judged
        too (``unnormalized_input``).
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
    with np.errstate(over="ignore", invalid="ignore"):  # overflow gives inf or NaN, no warning
        grad_norm = np.sqrt(units * (row["grad_mean"] ** 2 + row["grad_std"] ** 2))
        ratio = float(grad_norm[0] / grad_norm[-1]) if grad_norm[-1] > 0 else float("nan")
        grads = model._split(run.grads)
        wg = np.array(
            [math.sqrt(float(np.sum(np.square(dw, dtype=np.float64)))) for dw, _ in grads]
        )
    ws, bs = list(model.weights), list(model.biases)  # a device model's: copied once
    weight_mean, weight_std = np.array([moments(w) for w in ws]).T
    bias_mean, bias_std = np.array([moments(b) for b in bs]).T
    input_mean, input_std = moments(Xc)
    fmean, fstd = feature_moments(Xc)
    ratio_f, dominance, widest, offset, off_center = _feature_spread(fmean, fstd)
    acts = model.activations
    d = Diagnosis(
        sizes=tuple(model.sizes),
        activations=[a.name for a in acts],
        **row,
        grad_norm=grad_norm,
        weight_grad_norm=wg,
        weight_std=weight_std,
        bias_std=bias_std,
        weight_mean=weight_mean,
        bias_mean=bias_mean,
        symmetric_layers=_symmetric_layers(ws, bs),
        grad_norm_ratio=ratio,
        input_std=input_std,
        input_mean=input_mean,
        feature_mean=fmean,
        feature_std=fstd,
        feature_std_ratio=ratio_f,
        feature_std_dominance=dominance,
        widest_feature=widest,
        feature_offset_dominance=offset,
        offset_feature=off_center,
        loss=None if y is None else value,
        gradient=source,
        rows=n,
        recommended=[
            recommended_init(a, model.sizes[k], model.sizes[k + 1]) for k, a in enumerate(acts)
        ],
    )
    _findings(d)
    return d
