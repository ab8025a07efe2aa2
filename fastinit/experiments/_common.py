"""What every experiment shares: init specs, smoothing, output files, plotting setup."""

from __future__ import annotations

import csv
import decimal
import io
import json
import math
import os
import platform
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import fastinit
from fastinit import init as _init
from fastinit._files import abandoned as _abandoned
from fastinit._files import deferred_interrupt, write_bytes
from fastinit._files import host as _host
from fastinit._validate import (
    check_dtype_holds,
    check_int,
    check_path,
    check_positive,
    check_seed,
    dtype_range,
)
from fastinit.sweep.store import json_safe

try:  # flock: the output directory's locks and claims
    import fcntl
except ImportError:  # Windows: none held; the checks at commit still refuse
    fcntl = None


# ----------------------------------------------------------------------------- arguments
def check_hidden(hidden: Any, *, min_layers: int = 0, compared: bool = False) -> tuple[int, ...]:
    """Check the hidden widths of an experiment's network (``hidden=(100, 100)``).

    Parameters
    ----------
    hidden : sequence of int
        One positive width per hidden layer.
    min_layers : int
        The fewest hidden layers the experiment can use.
    compared : bool
        Whether the experiment compares a layer's units with each other (symmetry):
        then every layer needs two.

    Returns
    -------
    tuple of int

    Raises
    ------
    TypeError
        Naming ``hidden``, if it is not a sequence of integers (a single int
        included: one layer is ``(n,)``).
    ValueError
        Naming ``hidden``, for a width < 1 (< 2 where ``compared``) or fewer than
        ``min_layers`` layers.
    """
    if isinstance(hidden, np.ndarray) and hidden.ndim == 1:
        hidden = hidden.tolist()
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(
            f"hidden: expected a sequence of hidden layer widths such as (100, 100), got {hidden!r}"
        )
    widths = tuple(check_int(h, "hidden", low=1) for h in hidden)
    if len(widths) < min_layers:
        raise ValueError(
            f"hidden: expected at least {min_layers} hidden layer(s), got {tuple(widths)!r}"
        )
    if compared and 1 in widths:
        raise ValueError(
            "hidden: expected at least 2 units in each hidden layer (the experiment compares "
            f"a layer's units with each other), got 1 in layer {widths.index(1)}"
        )
    return widths


def check_lr(lr: Any, dtype: str) -> float:
    """Check an experiment's learning rate against its arithmetic type.

    The rule of :func:`fastinit._validate.check_dtype_holds`, which ``fit`` applies once
    training starts (naming ``optimizer.lr``); an experiment applies it up front, naming
    ``lr`` (the ``fastinit`` command: ``--lr``), as the sweep does.

    Parameters
    ----------
    lr : float
        The learning rate.
    dtype : {'float32', 'float64'}
        The experiment's arithmetic type, checked already.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming ``lr``, for a rate that is not finite and > 0, or outside ``dtype``'s range.
    """
    return check_dtype_holds(check_positive(lr, "lr"), "lr", dtype)


# ----------------------------------------------------------------------------- init specs
# The classic experiments name their inits the way the books do:
#   "std=0.01"         N(0, 0.01^2)                         (MNIST comparison)
#   "xavier", "he"     N(0, 1/n) and N(0, 2/n), n = fan_in  ("Deep Learning from Scratch")
#   "randn*0.01"       N(0, 0.01^2) (the planar notebook's randn(...) * s)
#   "zeros", "ones"    constants; "constant=0.5" any constant
#   "lsuv"             orthogonal here; experiments that train (mnist) then apply
#                      fastinit.lsuv.lsuv on the first training batch
# Any other name goes to fastinit.init.get (e.g. "glorot_uniform", "orthogonal").
BOOK_SCALES = {"xavier": 1.0, "he": 2.0}
_MEANING_SHAPES = ((6, 3), (3, 5), (100, 50))  # InitSpec.meaning: fans unequal; > 15 inputs
_LSUV_HERE = (
    "init: {!r} is data-dependent (it rescales a model's layers on a training batch); use "
    "it in the experiments that train (mnist, planar, symmetry) or the mnist and planar "
    "sweeps, or call "
    "fastinit.init.lsuv(model, X_batch) yourself"
)
# a std's value: anything after "std=", "randn*" or "scale=" (checked: "std=nan" is told so),
# or a number right after "std"/"scale" ("std0.01")
_STD = re.compile(r"^(?:std\s*=|randn\s*\*|scale\s*=)\s*(.*)$|^(?:std|scale)\s*([0-9.eE+-]+)$")
_CONSTANT = re.compile(r"^constant\s*=\s*(.*)$")  # spaced as a std may be: "constant = 0.5"


@dataclass(frozen=True)
class InitSpec:
    """A named way to draw a layer's weights: ``draw(shape, seed, stream, dtype)``."""

    name: str
    std: float | None = None  # fixed std (std=..., randn*...)
    fan_scale: float | None = None  # std = sqrt(fan_scale / fan_in) (book xavier/he)
    initializer: str | None = None  # a fastinit.init name
    value: float | None = None  # a constant (constant=...)
    lsuv: bool = False  # LSUV: draw() gives the orthogonal pre-init; the caller rescales

    @cached_property
    def meaning(self) -> tuple[bytes, bool]:
        """What the spec draws, whatever its spelling: two specs are one init when equal.

        The bytes of :meth:`draw` on float64 shapes whose fan-in and fan-out
        differ, (6, 3), (3, 5) and (100, 50) (over 15 inputs, where ``martens``
        is sparse), seed 0 (-0.0 read as 0.0), and the LSUV flag: ``std=0.01``
        and ``randn*0.01``, ``zeros``, ``constant`` and ``std=0``, ``normal``,
        ``gaussian``, ``randn`` and ``std=1``, an alias and its name, are each
        one init; ``he`` (the book's N(0, 2 / fan_in)) and ``kaiming_normal``, or
        ``he_uniform`` and ``kaiming_uniform`` (their scales rounded
        differently), are two.
        """
        draws = (self.draw(shape, 0, 0, "float64") + 0.0 for shape in _MEANING_SHAPES)
        return b"".join(w.tobytes() for w in draws), self.lsuv

    def identity(self, notebook: bool = False) -> tuple[bytes, bool, bool]:
        """What the spec draws in an experiment: two specs are one init there when equal.

        Parameters
        ----------
        notebook : bool
            Whether the experiment draws ``randn*s`` (``std=s``) with the classic
            notebook's generator (planar's ``rng='notebook'``): such a spec, ``s > 0``,
            is then not one init with a :mod:`fastinit.init` name drawing the same
            law with fastinit's generator (``randn`` and ``normal``).

        Returns
        -------
        tuple
            :attr:`meaning` and whether the notebook's generator draws it.
        """
        return (*self.meaning, bool(notebook and self.std))

    def draw(self, shape: tuple[int, ...], seed: int, stream: int, dtype: str) -> np.ndarray:
        """Draw an array of ``shape`` for this spec."""
        if self.value is not None:
            return _init.constant(shape, value=self.value, seed=seed, stream=stream, dtype=dtype)
        if self.std is not None:
            return _init.normal(shape, std=self.std, seed=seed, stream=stream, dtype=dtype)
        if self.fan_scale is not None:
            std = math.sqrt(self.fan_scale / shape[0])
            return _init.normal(shape, std=std, seed=seed, stream=stream, dtype=dtype)
        return _init.get(self.initializer)(shape, seed=seed, stream=stream, dtype=dtype)

    def initializer_callable(self) -> Callable[..., np.ndarray]:
        """A ``fastinit.init``-style callable, for ``MLP(init=...)``."""

        def draw(shape, *, seed=0, stream=0, dtype=None, out=None):
            w = self.draw(tuple(shape), seed, stream, dtype or "float32")
            if out is None:
                return w
            out[...] = w
            return out

        draw.__name__ = self.name
        return draw

    def build_model(
        self,
        sizes: Sequence[int],
        *,
        activation: str,
        seed: int,
        dtype: str,
        x_batch: np.ndarray | None,
    ) -> Any:
        """An ``MLP`` drawn with this spec, then prepared (LSUV) on ``x_batch``.

        Parameters
        ----------
        sizes : sequence of int
            Layer sizes.
        activation : str
            Hidden activation.
        seed : int
            Seed of the weights.
        dtype : {'float32', 'float64'}
            Parameter type.
        x_batch : numpy.ndarray or None
            The rows a data-dependent spec is fitted on (see :meth:`prepare`);
            None only for a spec that is not (``lsuv`` False).

        Returns
        -------
        fastinit.MLP
        """
        from fastinit.model import MLP

        init = self.initializer_callable()
        model = MLP(list(sizes), activation=activation, init=init, seed=seed, dtype=dtype)
        self.prepare(model, x_batch)
        return model

    def prepare(self, model: Any, x_batch: np.ndarray) -> None:
        """Apply the data-dependent part of the spec (LSUV) to a freshly built model.

        Experiments that train call it with the first training batch; a no-op
        for data-independent specs.
        """
        if self.lsuv:
            from fastinit.lsuv import lsuv

            lsuv(model, x_batch)


def parse_init(spec: str | InitSpec, *, data_dependent: bool = True) -> InitSpec:
    """Parse an experiment's init spec (see the table above); raise ValueError if unknown.

    A spec's value is checked where it is parsed: ``std=nan``, ``randn*inf``
    or ``std=-1`` is a ValueError saying what is wrong with it (``init: std
    must be a finite number >= 0, got nan (in 'std=nan')``), as is a
    ``constant=`` that is not a finite number.

    Parameters
    ----------
    spec : str or InitSpec
        E.g. ``"std=0.01"``, ``"xavier"``, ``"he"``, ``"randn*100"``, ``"zeros"``,
        ``"orthogonal"``, ``"lsuv"``; an :class:`InitSpec` (parsed already, as
        :func:`parse_init_options` gives them) is returned as it is.
    data_dependent : bool
        Whether the caller applies :meth:`InitSpec.prepare` to a model and data
        (the training experiments); otherwise ``"lsuv"`` is refused with a clear
        error instead of silently meaning plain orthogonal weights.

    Returns
    -------
    InitSpec
    """
    if isinstance(spec, InitSpec):
        if spec.lsuv and not data_dependent:
            raise ValueError(_LSUV_HERE.format(spec.name))
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"init: expected an init name such as 'he' or 'std=0.01', got {spec!r}")
    text = spec.strip()
    key = text.lower()
    if key in BOOK_SCALES:
        return InitSpec(text, fan_scale=BOOK_SCALES[key])
    if key == "randn":
        return InitSpec(text, std=1.0)
    if key == "lsuv":
        return parse_init(InitSpec(text, initializer="orthogonal", lsuv=True),
                          data_dependent=data_dependent)  # fmt: skip
    m = _CONSTANT.match(key)
    if m:
        return InitSpec(text, value=_spec_value(spec, "constant", m.group(1)))
    m = _STD.match(key)
    if m:
        value = m.group(1) if m.group(1) is not None else m.group(2)
        return InitSpec(text, std=_spec_value(spec, "std", value, low=0.0))
    try:
        _init.get(key)
    except ValueError:
        forms = ["std=<s>", "randn*<s>", "constant=<v>", *BOOK_SCALES]
        forms += ["lsuv"] if data_dependent else []
        others = [n for n in _init.names() if n not in (*BOOK_SCALES, "randn")]
        raise ValueError(
            f"init: unknown init {spec!r}; use {', '.join(map(repr, forms))} "
            f"or one of: {', '.join(others)}"
        ) from None
    return InitSpec(text, initializer=key)


def check_drawable(spec: InitSpec, dtype: str) -> InitSpec:
    """Refuse an init whose value ``dtype`` cannot hold (``std=1e300`` in float32, or
    ``std=1e-50``, which rounds to 0 there: all-zero weights under another name).

    The value is checked by drawing one weight with it, by the rule of
    :mod:`fastinit.init` (a std's largest draw, a constant, within the range), before
    the experiment runs: otherwise the draw refuses it, naming its own arguments.

    Parameters
    ----------
    spec : InitSpec
        A parsed spec; one without a value of its own (``he``, ``orthogonal``) passes.
    dtype : {'float32', 'float64'}
        The arithmetic type the spec draws in.

    Returns
    -------
    InitSpec
        ``spec``.

    Raises
    ------
    ValueError
        ``init: 'std=1e300' cannot be drawn in float32: ...``.
    """
    if spec.std is None and spec.value is None:
        return spec
    value, what = (spec.std, "std") if spec.std is not None else (spec.value, "constant")
    low, high = dtype_range(dtype)
    try:
        spec.draw((1, 1), 0, 0, dtype)
    except ValueError:  # "mean, std: |mean| + 9 std: expected ...": the draw's own names
        raise ValueError(
            f"init: {spec.name!r} cannot be drawn in {dtype}: its {what} {value:g} gives "
            f"weights beyond the {dtype} range (largest {high:.3g})"
        ) from None
    if value and not np.dtype(dtype).type(value):  # all-zero weights under another name
        raise ValueError(
            f"init: {spec.name!r} cannot be drawn in {dtype}: its {what} {value:g} rounds to 0 "
            f"there (the weights would all be zero); use a {what} of magnitude at least "
            f"{low:.3g}, or 'zeros'"
        )
    return spec


def _spec_value(spec: str, what: str, text: str, low: float | None = None) -> float:
    """The number ``text`` of init spec ``spec`` (its ``what``: std, constant), checked
    finite and at least ``low``; ValueError saying what is wrong with it otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        got = text or "nothing"
        raise ValueError(f"init: {what} must be a number, got {got} (in {spec!r})") from None
    if not math.isfinite(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low:g}"
        raise ValueError(f"init: {what} must be a finite number{bound}, got {text} (in {spec!r})")
    if value == 0 and decimal.Decimal(text) != 0:  # 1e-400: below every float
        raise ValueError(
            f"init: {what} {text} rounds to 0 in every float type (the weights would all be "
            f"zero); use 'zeros' for that (in {spec!r})"
        )
    return value


def parse_activations(activations: Sequence[str]) -> list[str]:
    """Canonical activation names (``"ReLU"`` -> ``"relu"``); raise ValueError on a repeated one.

    Parameters
    ----------
    activations : sequence of str
        Names or aliases from :func:`fastinit.activations.get`.

    Returns
    -------
    list of str
    """
    from fastinit import activations as _act

    if isinstance(activations, str):
        raise ValueError(f"activations: expected a sequence of names, got {activations!r}")
    given = list(activations)
    names = [_act.get(a, "activations").name for a in given]
    if not names:
        raise ValueError("activations: expected at least one activation")
    for k, name in enumerate(names):
        if name in names[:k]:
            first = given[names.index(name)]
            also = f" (also as {first!r})" if first != given[k] else ""
            raise ValueError(
                f"activations: {given[k]!r} is given twice{also}; give each activation once"
            )
    return names


def parse_inits(
    inits: Sequence[str | InitSpec],
    *,
    data_dependent: bool = True,
    allow_empty: bool = False,
    dtype: str | None = None,
    notebook: bool = False,
) -> list[InitSpec]:
    """Parse every init spec of an experiment; raise ValueError on a repeated one or none.

    Results are keyed by init name, so an init given twice would be trained
    twice but reported once (or counted twice); it is refused instead.  Two
    specs are one init when they draw the same weights (:attr:`InitSpec.meaning`):
    ``he`` and ``HE``, ``std=0.01``, ``std=1e-2`` and ``randn*0.01``, ``zeros``
    and ``constant``.

    Parameters
    ----------
    inits : sequence of str or InitSpec
        Init specs, as for :func:`parse_init` (parsed ones pass through).
    data_dependent : bool
        Passed to :func:`parse_init`.
    allow_empty : bool
        Accept no init at all (``run_planar`` with explicit ``weights``);
        otherwise an empty ``inits`` is a ValueError.
    dtype : {'float32', 'float64'}, optional
        The experiment's arithmetic type: a spec whose value it cannot hold is
        refused (:func:`check_drawable`).
    notebook : bool
        Whether ``randn*s`` is drawn by the notebook's generator
        (:meth:`InitSpec.identity`).

    Returns
    -------
    list of InitSpec
        In the order given.
    """
    if isinstance(inits, str):
        raise ValueError(f"inits: expected a sequence of init specs, got the string {inits!r}")
    if not isinstance(inits, Iterable):
        raise TypeError(f"inits: expected a sequence of init specs, got {type(inits).__name__}")
    specs = []
    for k, name in enumerate(inits):
        specs.append(_parse_named(name, f"inits[{k}]", data_dependent, dtype))
    if not specs and not allow_empty:
        raise ValueError("inits: expected at least one init spec, such as 'he' or 'std=0.01'")
    repeat = first_repeat(specs, notebook)
    if repeat is not None:
        first, again = (specs[k].name for k in repeat)
        also = "" if first == again else f" (also as {again!r})"
        raise ValueError(f"inits: {first!r} is given twice{also}; give each init once")
    return specs


def _parse_named(
    name: str | InitSpec, where: str, data_dependent: bool, dtype: str | None
) -> InitSpec:
    """:func:`parse_init` and, with a ``dtype``, :func:`check_drawable`; an error names
    ``where`` (``inits[1]``, ``--add``) instead of ``init``."""
    try:
        spec = parse_init(name, data_dependent=data_dependent)
        return spec if dtype is None else check_drawable(spec, dtype)
    except ValueError as e:
        raise ValueError(f"{where}: {str(e).removeprefix('init: ')}") from None


def parse_init_options(
    options: dict[str, Sequence[str]],
    *,
    data_dependent: bool = True,
    dtype: str | None = None,
    notebook: bool = False,
) -> list[InitSpec]:
    """Parse the inits of several command-line options, in order (``--inits`` then ``--add``).

    Each init is parsed once here; the experiments take the parsed specs as
    they are (:func:`parse_inits`), refusing ``lsuv`` where they do not train.

    Parameters
    ----------
    options : dict of str to sequence of str
        Each option's name and its init specs, in the order they are run.
    data_dependent : bool
        Whether the experiment trains (``lsuv`` allowed), as for :func:`parse_init`.
    dtype : {'float32', 'float64'}, optional
        The experiment's arithmetic type, as for :func:`parse_inits`.
    notebook : bool
        As for :func:`parse_inits`.

    Returns
    -------
    list of InitSpec
        Every option's specs, in order.

    Raises
    ------
    ValueError
        Naming the option of an unknown init, of one whose value is bad
        (``--inits: std must be a finite number >= 0, got nan ...``) or beyond ``dtype``'s
        range (``--add: 'std=1e300' cannot be drawn in float32: ...``), or of one that repeats an
        earlier one (the same name, or the same weights, :func:`first_repeat`),
        with that earlier one and its option.
    """
    for option, names in options.items():
        if isinstance(names, str):
            raise ValueError(f"{option}: expected a sequence of init specs, got {names!r}")
    given = [(option, name) for option, names in options.items() for name in names]
    specs = []
    for option, name in given:
        specs.append(_parse_named(name, option, data_dependent, dtype))
    repeat = first_repeat(specs, notebook)
    if repeat is not None:
        (earlier_option, earlier), (option, name) = ((given[k][0], specs[k].name) for k in repeat)
        same = (
            f"is already in {earlier_option}"
            if name.lower() == earlier.lower()
            else f"draws the same weights as {earlier!r} of {earlier_option}"
        )
        raise ValueError(f"{option}: {name!r} {same}; give each init once")
    return specs


def first_repeat(specs: Sequence[InitSpec], notebook: bool = False) -> tuple[int, int] | None:
    """The first init spec that repeats an earlier one, as :func:`parse_inits` refuses it.

    Two specs are one init when they draw the same weights
    (:meth:`InitSpec.identity`), whatever their names.

    Parameters
    ----------
    specs : sequence of InitSpec
        Parsed specs, in order.
    notebook : bool
        Whether ``randn*s`` is drawn by the notebook's generator.

    Returns
    -------
    (int, int) or None
        The indices of the earlier spec and of the first one repeating it;
        None when every spec is a different init.
    """
    seen: dict[tuple[bytes, bool, bool], int] = {}
    for k, spec in enumerate(specs):
        identity = spec.identity(notebook)
        if identity in seen:
            return seen[identity], k
        seen[identity] = k
    return None


# ----------------------------------------------------------------------------- curves
SMOOTH_WINDOW = 11  #: :func:`smooth_curve`'s window; a shorter curve is returned as it is


def smooth_curve(x: np.ndarray) -> np.ndarray:
    """Kaiser-window smoothing of a loss curve, as in "Deep Learning from Scratch".

    Window of :data:`SMOOTH_WINDOW` (11), beta 2, edges mirrored; the output has
    the input's length (a curve shorter than the window is returned unsmoothed).

    Parameters
    ----------
    x : numpy.ndarray
        1-D curve.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=np.float64)
    window = SMOOTH_WINDOW
    if x.size < window:
        return x.copy()
    s = np.r_[x[window - 1 : 0 : -1], x, x[-1:-window:-1]]
    w = np.kaiser(window, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5 : len(y) - 5]


# ----------------------------------------------------------------------------- tables
def fixed(value: float, decimals: int = 4) -> str:
    """A table cell: ``decimals`` decimals, or ``decimals`` significant digits from a million.

    Parameters
    ----------
    value : float
        The number (a finite cost of 1e299 is ``1.354e+299``, not 300 digits).
    decimals : int
        Decimals below a million, significant digits from there on.

    Returns
    -------
    str
    """
    return f"{value:.{decimals}f}" if abs(value) < 1e6 else f"{value:.{decimals}g}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """An aligned text table: each column as wide as its widest cell, two spaces apart.

    Columns never run together, however long a name or large a number.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequence of str
        The formatted cells, one sequence per row, as many as ``header``.
    align : str
        One character per column: ``"<"`` (left) or ``">"`` (right).

    Returns
    -------
    str
        Header, a rule of dashes, then the rows, without a final newline.
    """
    if len(align) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError("text_table: header, align and every row need one entry per column")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c!s:<{w}}" if a == "<" else f"{c!s:>{w}}"
            for c, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    head = line(header)
    return "\n".join([head, "-" * len(head), *(line(r) for r in rows)])


def spread_cell(
    mean: float | None,
    std: float | None,
    fmt: Callable[[float], str] = fixed,
    missing: str = "n/a",
) -> str:
    """A table cell of a figure over seeds: ``mean ± std``, as ``fastinit report`` writes it.

    Parameters
    ----------
    mean : float or None
        The mean over the seeds; None where there is none (every seed diverged,
        a signal that overflowed).
    std : float or None
        The sample standard deviation (ddof 1); None for fewer than two seeds.
    fmt : callable
        Formats each number (default :func:`fixed`).
    missing : str
        The cell without a mean.

    Returns
    -------
    str
        ``missing``, the mean alone, or ``"<mean> ± <std>"``.
    """
    if mean is None:
        return missing
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"


def seeds_note(seeds: int, seed: int | None) -> str | None:
    """The line under a table whose cells are :func:`spread_cell` over several seeds.

    Parameters
    ----------
    seeds : int
        Seeds the cells are over.
    seed : int or None
        The first of them (None: not said).

    Returns
    -------
    str or None
        ``"mean ± sample std over 3 seeds (0 to 2)"``; None for one seed.
    """
    if seeds <= 1:
        return None
    which = "" if seed is None else f" ({seed} to {seed + seeds - 1})"
    return f"mean ± sample std over {seeds} seeds{which}"


def check_seed_range(seed: Any, seeds: Any) -> tuple[int, int]:
    """Check ``seed`` and ``seeds`` of an experiment repeated with seeds ``seed, seed + 1, ...``.

    Parameters
    ----------
    seed : int
        The first seed, in [0, 2**64).
    seeds : int
        Repetitions, >= 1.

    Returns
    -------
    (int, int)
        ``(seed, seeds)``.

    Raises
    ------
    ValueError
        If the last seed, ``seed + seeds - 1``, is 2**64 or more (checked
        before anything runs).
    TypeError
        If either is not an integer.
    """
    seeds = check_int(seeds, "seeds", low=1)
    seed = check_seed(seed)
    if seed + seeds - 1 >= 2**64:
        raise ValueError(f"seed, seeds: seed + seeds - 1 must be < 2**64, got {seed + seeds - 1}")
    return seed, seeds


# ----------------------------------------------------------------------------- memory
def check_memory(
    footprint: Callable[[dict[str, Any]], dict[str, int]], sizes: dict[str, Any]
) -> None:
    """Refuse, before anything runs, a run whose arrays would not fit in the memory available.

    Every experiment calls it once its arguments are checked, before it loads,
    draws or writes anything: a run far too large (``layers=10**8``) fails at
    once, naming what to reduce, instead of running until the memory runs out.

    Parameters
    ----------
    footprint : callable
        Given ``sizes`` (or a copy with one of them at its smallest, 1), the
        bytes of the arrays the run allocates, by part (``{"parameters": ...,
        "activations": ...}``): an estimate from below, as a sweep's
        (``fastinit.sweep.runners.Experiment.footprint``, whose estimates the
        experiments build theirs from).
    sizes : dict
        The arguments that size the run, by name, in the order an error names
        them: positive integers, or tuples of them (hidden widths, depths).

    Raises
    ------
    MemoryError
        When the estimate exceeds the memory this process may allocate
        (:func:`fastinit._system.available_memory`; 2**63 bytes where the
        system does not tell), naming the sizes that at their smallest would
        at least halve it (else every one that would shrink it), the estimate
        and its parts: ``"layers, width, samples: too large for this machine's
        memory: ..."`` (the command line names them by their options).
    """
    from fastinit import _system
    from fastinit.sweep.spec import memory_excess  # the sweep's check and words

    smallest = {name: _smallest(value) for name, value in sizes.items()}
    excess = memory_excess(footprint, sizes, smallest, _system.available_memory())
    if excess is None:
        return
    halving = [name for name, drop in excess.drops.items() if 2 * drop >= excess.total]
    names = halving or list(excess.drops) or list(sizes)
    raise MemoryError(
        f"{', '.join(names)}: too large for this machine's memory: the run "
        f"{excess.needs('available')}"
    )


def _smallest(size: Any) -> Any:
    """The smallest value of a size :func:`check_memory` takes: 1, or a tuple of 1s."""
    return (1,) * len(size) if isinstance(size, tuple) else 1


# ----------------------------------------------------------------------------- outputs
def prepare_output(out: Any, option: str = "out", owner: str | None = None) -> list[Path]:
    """Create the output directory ``out`` and check that files can be written in it.

    The experiments call it before any computing, so that an unusable ``out``
    (an existing file, a read-only or virtual file system) fails at once
    rather than after the run.  With an ``owner``, a ``summary.json`` there
    that another command wrote (two experiments given one ``--out``) is refused
    too, instead of being replaced after the run (see :class:`Output`).

    Parameters
    ----------
    out : path-like or None
        The directory; None does nothing.
    option : str
        Name of the argument in the error message (``"--out"`` on the command line).
    owner : str, optional
        The command that will write there (``"mnist"``, ``"report"``, ...).

    Returns
    -------
    list of pathlib.Path
        The directories this call created, deepest first (empty if ``out``
        existed), so a caller that ends up writing nothing can remove them.

    Raises
    ------
    ValueError
        Naming ``option``, when the directory cannot be created or written to, or
        holds another command's ``summary.json``.
    """
    if out is None:
        return []
    path = Path(check_path(out, option, "a directory name or None"))
    # os.path's tests are False where pathlib's raise (a name too long, ENAMETOOLONG)
    missing = [d for d in (path, *path.parents) if not os.path.exists(d)]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".fastinit-probe-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, FileExistsError) or (os.path.exists(path) and not os.path.isdir(path)):
            reason = "it exists and is not a directory"
        remove_empty([d for d in missing if os.path.isdir(d)])  # made by this call
        raise ValueError(
            f"{option} {str(path)!r}: expected a directory that can be created and written "
            f"to ({reason})"
        ) from None
    if owner is not None:
        check_unclaimed(path, owner, ["summary.json"], option)
        with _locked([path]):
            _check_no_other_running(path, owner, option)
        pending = _PREPARED.get()
        if pending:
            pending.pop()()
    return [d for d in missing if d.is_dir()]


_PREPARED: ContextVar[list[Callable[[], None]] | None] = ContextVar("_PREPARED", default=None)


@contextmanager
def on_prepared(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` once, when a run in the block has checked its arguments.

    Every experiment (and ``fastinit report``) checks all its arguments, then
    prepares its output directory (:func:`prepare_output` with an ``owner``)
    before it computes anything: ``callback`` runs right then, and never when
    an argument is refused.  The command line says there that an earlier run's
    files will be replaced.

    Parameters
    ----------
    callback : callable
        Called with no arguments, at most once.

    Yields
    ------
    None
    """
    token = _PREPARED.set([callback])
    try:
        yield
    finally:
        _PREPARED.reset(token)


def remove_empty(directories: Sequence[Path]) -> None:
    """Remove the directories :func:`prepare_output` created, as far as they are empty.

    Parameters
    ----------
    directories : sequence of pathlib.Path
        Its return value, deepest first: each is removed only if empty, and
        the first that is not (or is gone) stops the removal, so a directory
        holding anything, and every one above it, stays.
    """
    for d in directories:  # deepest first
        try:
            d.rmdir()
        except OSError:
            return


@contextmanager
def prepared_output(out: Any, owner: str, option: str = "out") -> Iterator[list[Path]]:
    """:func:`prepare_output` for a run, undone if the run fails.

    Every experiment runs inside it: when the block raises (an error, or
    Ctrl-C), the directories that were created for this run are removed again
    if they are still empty (:func:`remove_empty`), as the command line does;
    one that existed before, or that holds anything, stays.

    Parameters
    ----------
    out : path-like or None
        The output directory; None does nothing.
    owner : str
        The experiment that will write there.
    option : str
        Name of the argument in an error message.

    Yields
    ------
    list of pathlib.Path
        The directories created, deepest first.

    Raises
    ------
    ValueError
        As :func:`prepare_output`, before the block runs.
    """
    created = prepare_output(out, option, owner=owner)
    try:
        with claimed(None if out is None else Path(out), owner, option):
            yield created
    except BaseException:  # KeyboardInterrupt included
        remove_empty(created)
        raise


#: An owner's claim on an output directory while its command runs (``.format(owner)``):
#: the command holds a shared ``flock`` on this file (:func:`claimed`).
RUNNING = ".fastinit-{}-running"


@contextmanager
def claimed(directory: Path | None, owner: str, option: str = "out") -> Iterator[None]:
    """Hold ``owner``'s claim on the output ``directory`` while the block runs.

    Two commands started together into one directory both passed
    :func:`check_unclaimed` (neither had written yet), and the second computed
    its whole run to be refused as it committed.  A command holds a shared
    ``flock`` on :data:`RUNNING` for its owner instead, taken where it starts;
    a command of another owner finding that file locked is refused then, before
    it computes.  The kernel drops the lock with the process, killed or not, so
    a dead command's file claims nothing (the next check removes it).  The same
    command twice at once is not refused: the one that ends last leaves its
    files, whole (:func:`commit_all`).  Where ``flock`` is missing (Windows) or the
    file cannot be made, no claim is held: the check at commit still refuses.

    Parameters
    ----------
    directory : pathlib.Path or None
        The output directory, made (:func:`prepare_output`); None claims nothing.
    owner : str
        The command that will write there.
    option : str
        Name of the directory's argument in an error message.

    Raises
    ------
    ValueError
        Naming ``option`` and the other command, before the block runs.
    """
    fd = None
    try:  # taken inside: a Ctrl-C just after it still releases the claim
        if directory is not None and fcntl is not None:
            with _locked([directory]):
                _check_no_other_running(directory, owner, option)
                fd = _take_claim(directory / RUNNING.format(owner))
        yield
    finally:
        if fd is not None:
            with _locked([directory]), suppress(OSError):
                try:  # the last of this owner's commands there removes the file
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.unlink(directory / RUNNING.format(owner))
                finally:
                    os.close(fd)


def _take_claim(path: Path) -> int | None:
    """Open ``path`` and hold a shared ``flock`` on it: the descriptor, or None (and no
    file left) where the file cannot be made or locked (no ``flock`` on that mount)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        with suppress(OSError):
            os.unlink(path)  # a claim nobody can see held would only be left behind
        return None
    return fd


def _check_no_other_running(directory: Path, owner: str, option: str) -> None:
    """Refuse if a command of another owner holds its claim on ``directory``
    (:func:`claimed`); remove the files of those that no longer run.  Call it
    holding the directory's lock (:func:`_locked`)."""
    if fcntl is None:
        return
    for path, other in _others(directory, RUNNING, owner):
        try:  # for writing where it can: NFS's emulated flock wants it for an exclusive lock
            fd = os.open(path, os.O_RDWR)
        except OSError:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{option} {str(directory)!r}: `fastinit {other}` is writing there now, and "
                f"this {owner} run would replace its summary.json; give each command its own "
                "directory (the default) or wait for that one to end"
            ) from None
        except OSError:
            continue  # no flock on this file system: the check at commit still refuses
        else:
            with suppress(OSError):
                os.unlink(path)  # its command is gone
        finally:
            os.close(fd)


def _others(directory: Path, pattern: str, owner: str) -> Iterator[tuple[Path, str]]:
    """The files of ``directory`` named by ``pattern`` (:data:`LISTING`, :data:`RUNNING`)
    for an owner other than ``owner``, with that owner's name, in name order."""
    head, tail = pattern.split("{}")
    for path in sorted(directory.glob(pattern.format("*"))):
        other = path.name.removeprefix(head).removesuffix(tail)
        if other != owner:
            yield path, other


def check_unclaimed(directory: Path, owner: str, names: list[str], option: str = "out") -> None:
    """Refuse to replace files that another command wrote into ``directory``.

    Each command lists the files it writes in ``.fastinit-<owner>-files.json``
    (:meth:`Output._stale`); a name in another command's list that still
    exists there is that command's output, which this one would silently replace
    (every experiment writes ``summary.json``).

    Parameters
    ----------
    directory : pathlib.Path
        The output directory.
    owner : str
        The command about to write there.
    names : list of str
        The file names it will write.
    option : str
        Name of the directory's argument in the error message.

    Raises
    ------
    ValueError
        Naming ``option``, the first such file and the command that wrote it.
    """
    for listing, other in _others(directory, LISTING, owner):
        try:
            theirs = json.loads(listing.read_text())
        except (OSError, ValueError):
            continue
        for name in names:
            if isinstance(theirs, list) and name in theirs and (directory / name).exists():
                raise ValueError(
                    f"{option} {str(directory)!r}: {name} there is the output of "
                    f"`fastinit {other}`, which this {owner} run would replace; give each "
                    f"command its own directory (the default) or remove that file first"
                )


@dataclass
class Output:
    """Where an experiment writes: PNG figures, summary.json and CSV curves.

    Used as a context manager, the files are written into a hidden staging
    directory inside ``directory`` and renamed into place only when the block
    ends without an exception: an experiment interrupted (Ctrl-C) or failing
    while it writes leaves none of its files; a Ctrl-C while they are being
    renamed into place is held until every one is (then raised), so the
    directory never mixes this run's files with the last run's.  With an
    ``owner`` (the experiment's name), the files that owner wrote into
    ``directory`` last time and not this time are then removed (see
    :meth:`_stale`), and a file
    another owner wrote there is never replaced: the block raises ValueError
    (:func:`check_unclaimed`) and leaves every file as it was.  A command writing
    several directories commits them together (:func:`commit_all`).  Without ``with``,
    JSON and CSV files are each written to a temporary file of their own
    and renamed, so a reader never sees half of one (a killed writer's temporary
    file is removed by the next write of that file).
    """

    directory: Path | None
    owner: str | None = None  # e.g. "mnist": keeps a list of the files it wrote here
    written: list[Path] = field(default_factory=list)  # every file written, in order
    staging: Path | None = None

    def __enter__(self) -> Output:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_staging(self.directory)
            prefix = f"{_STAGING}{_host()}-{os.getpid()}-"
            try:  # a Ctrl-C just after mkdtemp: no __exit__ follows a failed __enter__
                with deferred_interrupt():
                    self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=self.directory))
            except BaseException:
                self._discard()
                raise
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self.staging is None:  # not staged, or already committed (:func:`commit_all`)
            return
        try:
            if exc_type is None:
                commit_all([self])
        finally:
            self._discard()

    def check(self) -> None:
        """Refuse, before any file is moved into place, to replace another owner's file
        or a directory.

        Does nothing once committed; another owner's files are checked only with an
        ``owner``.

        Raises
        ------
        ValueError
            As :func:`check_unclaimed`, naming the first such file, or naming a
            directory that stands where a file of this run would go.
        """
        if self.staging is None:
            return
        for p in self.written:
            if p.is_dir() and not p.is_symlink():
                raise ValueError(
                    f"{str(p)!r} is a directory: this run would put its file {p.name} there; "
                    "move or rename that directory first"
                )
        if self.owner is not None:
            check_unclaimed(self.directory, self.owner, [p.name for p in self.written])

    def _moves(self) -> list[tuple[Path | None, Path]]:
        """The renames that put this run's files in place: ``(staged file, final path)``.

        The owner's new listing is staged among them; a stale file (see
        :meth:`_stale`) comes as ``(None, final path)``, to be moved away.  Empty
        when not staged or already committed.
        """
        if self.staging is None:
            return []
        moves: list[tuple[Path | None, Path]] = [(self.staging / p.name, p) for p in self.written]
        if self.owner is not None:
            listing = LISTING.format(self.owner)
            names = sorted(p.name for p in self.written)
            with self._named(listing):
                write_bytes(self.staging / listing, (json.dumps(names) + "\n").encode("utf-8"))
            moves.append((self.staging / listing, self.directory / listing))
            moves += [(None, self.directory / name) for name in self._stale(names)]
        return moves

    def _discard(self) -> None:
        """Remove the staging directory, with whatever it still holds (a Ctrl-C waits)."""
        if self.staging is not None:
            with deferred_interrupt():  # a second Ctrl-C must not leave half of it behind
                shutil.rmtree(self.staging, ignore_errors=True)
                self.staging = None

    def _stale(self, names: list[str]) -> list[str]:
        """The files this owner wrote here last time and not this time (``names``).

        A re-run with other settings (fewer activations, no figures) would
        otherwise leave the old run's figures beside the new summary.  Only
        names from the owner's own list (``.fastinit-<owner>-files.json``) are
        removed: another experiment's files, or the user's, stay.
        """
        try:
            before = json.loads((self.directory / LISTING.format(self.owner)).read_text())
        except (OSError, ValueError):
            before = []
        stale = set(before if isinstance(before, list) else []) - set(names)
        return sorted(
            name
            for name in stale
            if isinstance(name, str) and name == Path(name).name and not name.startswith(".")
            and (self.directory / name).is_file()
        )  # fmt: skip

    def path(self, name: str) -> Path | None:
        """Where to write file ``name`` (its final path is recorded as written)."""
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        if final not in self.written:
            self.written.append(final)
        return final if self.staging is None else self.staging / name

    def json(self, name: str, data: dict[str, Any]) -> None:
        """Write ``data`` as JSON, non-finite numbers as ``null`` (:func:`json_safe`)."""
        if self.directory is not None:
            text = json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False)
            self.text(name, text + "\n")

    def text(self, name: str, text: str) -> None:
        """Write ``text`` (UTF-8) as file ``name``."""
        p = self.path(name)
        if p is not None:
            with self._named(name):
                write_bytes(p, text.encode("utf-8"))

    @contextmanager
    def _named(self, name: str) -> Iterator[None]:
        """An OSError writing file ``name`` (a full disk) names its place in ``directory``,
        not the hidden staging directory it is written to first."""
        try:
            yield
        except OSError as err:
            if self.staging is None:
                raise
            raise type(err)(err.errno, err.strerror, str(self.directory / name)) from None

    def csv(self, name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Write ``header`` and ``rows`` as CSV file ``name``."""
        if self.directory is None:
            return
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(header)
        w.writerows(rows)
        self.text(name, text.getvalue())

    def figure(self, name: str, fig: Any) -> None:
        """Write ``fig`` as PNG file ``name``, cropped to its tight box, drawing it once.

        The image ``savefig(bbox_inches="tight")`` gives (the tight bounding
        box padded by ``savefig.pad_inches``, at :data:`FIGURE_DPI`), rendered
        in one draw: ``savefig`` draws the figure once more first, to find
        that box, and, for a figure made at another dpi, lays its text out
        twice.  A figure with a layout engine still to run at draw time
        (``layout="constrained"``) is saved by ``savefig`` as it is.

        This changes the caller's figure: its placeholder layout engine (the
        one ``tight_layout`` leaves) is removed, and its dpi is set to
        :data:`FIGURE_DPI`.  Make figures with :func:`subplots` (already at
        that dpi) and close them after.

        Parameters
        ----------
        name : str
            The file name.
        fig : matplotlib.figure.Figure
            A figure on an Agg canvas (:func:`pyplot`), laid out already
            (``tight_layout``), best made at :data:`FIGURE_DPI` (:func:`subplots`).
        """
        import matplotlib
        from matplotlib.layout_engine import PlaceHolderLayoutEngine

        path = self.path(name)
        if path is None:
            return
        engine = fig.get_layout_engine()  # tight_layout() leaves a placeholder: nothing to run
        if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
            with self._named(name):
                fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
            return
        fig.set_layout_engine(None)  # with any engine, savefig draws once more to lay out
        if fig.dpi != FIGURE_DPI:
            fig.set_dpi(FIGURE_DPI)
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        pad = matplotlib.rcParams["savefig.pad_inches"]  # as savefig pads its tight box
        with self._named(name):
            fig.savefig(path, dpi=FIGURE_DPI, bbox_inches=box.padded(pad))


def commit_all(outputs: Sequence[Output]) -> None:
    """Move the staged files of every output into place, or of none.

    Every output is checked (:meth:`Output.check`) before any file is moved,
    and a Ctrl-C while they are moved is held until all are (then raised): a
    command writing several directories never leaves one new and one old.  Each
    earlier file is moved aside (into its output's staging directory) before
    the new one takes its place, so a rename that fails (a file made immutable,
    a full or read-only file system) puts every file moved so far back.

    Parameters
    ----------
    outputs : sequence of Output
        Entered (``with``) outputs, committed in this order.

    Raises
    ------
    ValueError
        When a file of one of them would replace another command's, or a
        directory (then no file of any is moved).
    OSError
        Naming the file that could not be put in place, when a rename fails
        (then the files there are as they were).
    """
    with _locked([o.directory for o in outputs if o.staging is not None]):
        ours = {o.staging for o in outputs}
        for directory in {o.directory for o in outputs if o.staging is not None}:
            _settle_abandoned(directory, ours)  # a run killed as it moved its files in, first
        try:
            for output in outputs:
                output.check()
        except ValueError as e:
            raise ValueError(f"{e}; this run's files were not written") from None
        with deferred_interrupt():  # a Ctrl-C never leaves half the files replaced
            moves = [(out, staged, final) for out in outputs for staged, final in out._moves()]
            _move_all(moves)
            for output in outputs:
                output._discard()  # with the earlier files that were moved aside


@contextmanager
def _locked(directories: Sequence[Path]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on each directory (in one order: no deadlock) in the block.

    Two commands writing into one directory at once (two terminals, a batch
    system) then check and move their files in turn: the directory holds one
    run's files, not a mix, and another command's ``summary.json`` is refused
    race-free.  Where a directory cannot be locked (no ``fcntl``: Windows; a file
    system without ``flock``) the block runs unlocked, as before.
    """
    if fcntl is None:
        yield
        return
    fds = []
    try:
        for directory in sorted({os.path.realpath(d) for d in directories}):
            try:
                fd = os.open(directory, os.O_RDONLY)
            except OSError:
                continue
            fds.append(fd)
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor is closed
        yield
    finally:
        for fd in fds:
            os.close(fd)


def _move_all(moves: Sequence[tuple[Output, Path | None, Path]]) -> None:
    """Do the renames of :meth:`Output._moves`, each earlier file moved aside into its
    output's staging directory first; if one fails, undo those done and raise OSError.

    An earlier file that cannot be put back either stays in the staging directory,
    which is then kept (and named in the message), not removed with the rest.
    """
    try:
        _write_journals(moves)
    except OSError as e:  # nothing moved yet
        directory = str(moves[0][0].directory)
        raise OSError(
            f"{directory!r}: could not put this run's files in place "
            f"({e.strerror or type(e).__name__}); the files there are as they were before the run"
        ) from e
    done = []  # (output, staged, final, aside or None, moved in)
    try:
        for k, (output, staged, final) in enumerate(moves):
            aside = None
            if os.path.lexists(final):
                aside = output.staging / _aside(k)
                os.replace(final, aside)
            done.append([output, staged, final, aside, False])
            if staged is not None:
                os.replace(staged, final)
                done[-1][4] = True
    except OSError as e:
        failed, stuck = final, {}
        for output in {id(o): o for o, _, _ in moves}.values():  # undone here, not finished later
            with suppress(OSError):
                os.unlink(output.staging / _JOURNAL)
        for output, staged, final, aside, moved_in in reversed(done):
            if moved_in:
                with suppress(OSError):  # the new file back (else the earlier one replaces it)
                    os.replace(final, staged)
            if aside is not None:
                try:
                    os.replace(aside, final)
                except OSError:
                    stuck[id(output)] = output
        kept = [_keep(output) for output in stuck.values()]  # once every move is undone
        reason = e.strerror or type(e).__name__
        if not kept:
            outcome = "the files there are as they were before the run"
        else:
            outcome = f"earlier files that could not be put back are in {sorted(set(kept))}"
        raise OSError(
            f"{str(failed)!r}: could not put this run's file in place ({reason}); {outcome}"
        ) from e


_JOURNAL = ".moves.json"  # in a staging directory: the renames of its commit, in order


def _aside(k: int) -> str:
    """The name in its staging directory of the earlier file that move ``k`` replaces."""
    return f".earlier-{k}"  # short: any name fits beside it


def _write_journals(moves: Sequence[tuple[Output, Path | None, Path]]) -> None:
    """Write each output's renames into its staging directory before the first is done.

    ``[staged name or None, final name, aside name]`` per move, in order: a process
    killed between two renames (SIGKILL, an OOM kill) leaves the directory with some
    files of its run and some of the last; the next write there finishes the renames
    from this list (:func:`_finish_moves`) instead of deleting what it had not moved in.
    """
    journals: dict[int, tuple[Output, list]] = {}
    for k, (output, staged, final) in enumerate(moves):
        entry = [None if staged is None else staged.name, final.name, _aside(k)]
        journals.setdefault(id(output), (output, []))[1].append(entry)
    for output, entries in journals.values():
        write_bytes(output.staging / _JOURNAL, (json.dumps(entries) + "\n").encode("utf-8"))


def _finish_moves(directory: Path, staging: Path) -> bool:
    """Finish the renames a killed process listed in ``staging`` (:func:`_write_journals`).

    Returns whether ``staging`` may be removed: it held no list, or no rename of
    it was done (the process was killed before its first: the directory holds the
    last run's files, whole; a commit of several directories killed between their
    lists is not finished in one of them only), or every rename is done.
    """
    try:
        entries = json.loads((staging / _JOURNAL).read_text())
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    try:
        done = [
            (staging / aside).exists() or (staged is not None and not (staging / staged).exists())
            for staged, final, aside in entries
        ]
        if not any(done):
            return True
        for (staged, final, aside), moved in zip(entries, done, strict=True):
            target, earlier = directory / final, staging / aside
            if moved and (staged is None or not (staging / staged).exists()):
                continue  # done before the kill
            if os.path.lexists(target) and not earlier.exists():
                os.replace(target, earlier)
            if staged is not None:
                os.replace(staging / staged, target)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _keep(output: Output) -> str:
    """Keep ``output``'s staging directory, which holds an earlier file (``.earlier-<k>``):
    renamed out of the staging names, so that no later run removes it as abandoned."""
    staging, output.staging = output.staging, None  # not discarded with the rest
    kept = staging.with_name(staging.name.replace(_STAGING, ".fastinit-kept-", 1))
    try:
        os.replace(staging, kept)
    except OSError:
        kept = staging
    return str(kept)


FIGURE_DPI = 110  # every figure's resolution; create figures at it (:func:`subplots`)
_STAGING = ".writing-"  # staging directories: .writing-<host>-<pid>-<random>
#: Name of the listing file of an owner (a command: ``planar``, ``report``, ...) in an
#: output directory, ``.format(owner)``: a JSON list of the names of the files that
#: owner last wrote into that directory.  A later run of the same owner removes the
#: listed files it no longer writes; another owner refuses to replace a listed file.
LISTING = ".fastinit-{}-files.json"


def _remove_abandoned_staging(directory: Path) -> None:
    """Remove staging directories left by killed processes (SIGKILL skips ``__exit__``).

    Only those of this host whose process is gone; another live writer's stays.
    One killed while it moved its files in has its moves finished first
    (:func:`_finish_moves`), so the directory holds that run's files, not a mix;
    one whose moves cannot be finished is kept (``.fastinit-kept-...``), with a
    ``RuntimeWarning`` naming it and the directory, which may hold two runs' files.
    """
    with _locked([directory]):  # a commit of this directory is not under way meanwhile
        _settle_abandoned(directory)


def _settle_abandoned(directory: Path, ours: set[Path | None] | None = None) -> None:
    """:func:`_remove_abandoned_staging` for a caller holding the directory's lock (a
    commit, before its own renames: a killed run's are finished first, not over them);
    the staging directories in ``ours`` (the commit's own) are left alone."""
    for d in _abandoned(directory, f"{_STAGING}{_host()}-"):
        if d in (ours or set()):
            continue
        if _finish_moves(directory, d):
            shutil.rmtree(d, ignore_errors=True)
        else:
            kept = d.with_name(d.name.replace(_STAGING, ".fastinit-kept-", 1))
            with suppress(OSError):
                os.replace(d, kept)
            warnings.warn(
                f"a run killed while it moved its files into {directory} could not be "
                f"finished: {directory} may hold files "
                f"of two runs; the files it had not moved in, and the earlier ones it had "
                f"moved aside (.earlier-*), are kept in {kept if kept.exists() else d}",
                RuntimeWarning,
                stacklevel=2,
            )


def provenance(config: dict[str, Any]) -> dict[str, Any]:
    """The run's full configuration plus versions, the BLAS that computed it (its
    kernels, picked by the CPU, and its thread count set the last bits) and the CPU
    numba compiled fastinit's own kernels for (its vector instructions set theirs:
    ``cpu``, LLVM's name for it), so it can be re-run exactly."""
    import llvmlite.binding as llvm
    import numba
    from numba.core import config as numba_config

    from fastinit.dense import blas_identity

    return {
        "config": config,
        "fastinit_version": fastinit.__version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "python_version": platform.python_version(),
        "blas": blas_identity(),
        "cpu": {
            "llvm": numba_config.CPU_NAME or llvm.get_host_cpu_name(),
            "machine": platform.machine(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (imported lazily)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


LOG_AXIS_TOP = 1e200  #: the highest top :func:`log_axis` gives a log axis
#: with runs that did not diverge, the most :func:`log_axis`'s top lies above their values
DIVERGED_HEADROOM = 1e3


def log_axis(ax: Any, curves: Sequence[Any], healthy: Sequence[Any] | None = None) -> bool:
    """Give ``ax`` a log y scale whose limits span the finite positive values of ``curves``.

    matplotlib pads a log axis by a share of its decades and places its ticks up to
    two tick strides beyond it: near the float64 limit (a float64 run diverging
    geometrically reaches 1e304 before its NaN) the padding overflows and the axis
    falls back to 1-10, every line of the panel unreadable, or the tick labels raise
    OverflowError.  The limits are set here, before the scale, with a factor of 2
    each side and the top at most :data:`LOG_AXIS_TOP`: a diverging line leaves the
    top of the panel there.  With nothing positive to show, matplotlib's own.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axis, its curves drawn.
    curves : sequence of array_like
        Every value drawn on it (NaN, infinities, zeros and negatives are left out).
    healthy : sequence of array_like, optional
        The curves of the runs that did not diverge, if the axis has any.  The top
        is then at most :data:`DIVERGED_HEADROOM` times their largest value: a
        diverged loss climbing 30 decades leaves the top of the panel instead of
        flattening the losses of the runs that trained onto its floor.

    Returns
    -------
    bool
        Whether the top was lowered for ``healthy`` and some value of ``curves`` lies
        above it (a diverged line leaves the panel).
    """
    span = positive_span(curves)
    kept = _largest(healthy or [])
    cut = span is not None and 0 < kept * DIVERGED_HEADROOM < span[1]
    if cut:
        span = span[0], kept * DIVERGED_HEADROOM
    if span is not None:
        ax.set_ylim(*span)
    ax.set_yscale("log")
    return cut and _largest(curves) > span[1]


def finite_values(curves: Sequence[Any]) -> np.ndarray:
    """The finite values of ``curves`` (sequences or arrays of any shape), flat, float64.

    Parameters
    ----------
    curves : sequence of array_like
        The values drawn on an axis.

    Returns
    -------
    numpy.ndarray of float64
        Every finite value, NaN and infinities left out (empty for none).
    """
    values = np.concatenate([np.ravel(np.asarray(c, dtype=np.float64)) for c in curves] or [[]])
    return values[np.isfinite(values)]


def _largest(curves: Sequence[Any]) -> float:
    """The largest finite value of ``curves`` (-inf for none)."""
    finite = finite_values(curves)
    return float(finite.max()) if finite.size else -math.inf


def positive_span(curves: Sequence[Any]) -> tuple[float, float] | None:
    """Log-axis limits for the finite positive values of ``curves``: half the least and
    twice the largest, the top at most :data:`LOG_AXIS_TOP` (:func:`log_axis`).

    Parameters
    ----------
    curves : sequence of array_like
        The values drawn (NaN, infinities, zeros and negatives are left out).

    Returns
    -------
    tuple of float, or None
        ``(low, high)``; None where no value is finite and positive.
    """
    finite = finite_values(curves)
    shown = finite[finite > 0]
    if not shown.size:
        return None
    low = min(float(shown.min()) / 2, LOG_AXIS_TOP / 10)
    return low, min(float(shown.max()) * 2, LOG_AXIS_TOP)


def subplots(plt: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*args, **kwargs)`` at :data:`FIGURE_DPI`, as every figure is made.

    A figure made at the dpi it is saved at (:meth:`Output.figure`) is laid
    out once; one made at matplotlib's default would have its text laid out
    again when saved.

    Parameters
    ----------
    plt : module
        ``matplotlib.pyplot`` (:func:`pyplot`).
    *args, **kwargs
        As for ``plt.subplots``, without ``dpi``.

    Returns
    -------
    (matplotlib.figure.Figure, Axes or numpy.ndarray of Axes)
    """
    return plt.subplots(*args, dpi=FIGURE_DPI, **kwargs)
