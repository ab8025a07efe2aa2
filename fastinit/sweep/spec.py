"""SPEC.toml files: parsing, checking, grid expansion and configuration hashing.

A SPEC file names one experiment, the parameters that stay fixed and a grid of
the parameters that vary; every point of the grid is one run::

    experiment = "planar"          # planar, mnist, histogram or depth
    name = "planar-inits"          # optional: a label stored with each run (non-empty)

    [fixed]                        # optional: one value per parameter
    iterations = 2000
    lr = 1.2

    [grid]                         # each parameter: a non-empty list of values
    init = ["zeros", "randn", "randn*0.01", "xavier", "he"]
    activation = ["tanh", "relu"]
    seed = { start = 0, stop = 5 }  # a range of integers: 0, 1, 2, 3, 4

The grid is the Cartesian product of its lists, in file order.  Several grids
(``[[grid]]`` tables, each combined with ``[fixed]``) give the union of their
points, duplicates removed.  Parameters left unset take the experiment's
defaults (``fastinit sweep --list`` shows them, for every experiment); a list-valued
parameter would go in ``[grid]`` as a list of lists.

Each run's configuration is the flat dict ``{"experiment": name, **every
parameter}``; its key is the SHA-256 of its canonical JSON (sorted keys, no
spaces, floats as Python writes them), so the same run has the same key
whichever SPEC file produced it.  An init is stored in the docs' spelling of
its form: ``std=1e-2``, ``randn*0.01`` and ``STD = 0.010`` are ``std=0.01``
(``randn*0.01`` in planar, as its notebook writes it), ``msra`` is ``kaiming_normal``,
so two spellings of one init are one run.  Two forms that draw the same weights
(``zeros``, ``std=0`` and ``constant=0``; ``normal`` and ``std=1``) are refused
together in one list, but stay two runs in two ``[[grid]]`` tables.  The fastinit
version is stored with each run but is not part of the key.

Errors name the file, the line and the key: TOML syntax errors carry tomllib's
line and column; for semantic errors (unknown experiment or parameter, wrong
type, a value out of range or one the run would reject, such as an odd planar
``m``, an MNIST ``train_size`` above the training images there are, or an
``lr`` the dtype rounds to 0; an empty grid list) the line of the key is looked
up in the file text.

Sizes are bounded before anything runs: integers fit the kernels' int64 (seeds
the generators' uint64), and the largest run of each grid must fit in memory:
its footprint (parameters and gradients, optimizer state, activations, the loss
curve; ``Experiment.footprint``, an estimate from below) is compared with the
memory available on this machine (``MemAvailable``, cgroup limits, ``ulimit
-v``).  The error names the size that SPEC sets whose smallest value would
shrink that run most, with the estimate by part.  A local pool of N workers runs
N runs at once: when N times that footprint does not fit in the memory
available as the pool starts, the sweep runs the most workers that fit (at
least one) and says so on stderr (:func:`workers_in_memory`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastinit._system import available_memory
from fastinit.sweep.runners import EXPERIMENTS, Experiment, Param, canonical_config

if TYPE_CHECKING:  # imported where used: it takes half a second
    from fastinit.experiments._common import InitSpec

__all__ = [
    "MemoryExcess",
    "Spec",
    "SpecError",
    "canonical_json",
    "config_key",
    "load_spec",
    "memory_excess",
    "parse_spec",
    "run_memory",
    "workers_in_memory",
]

MAX_RUNS = 1_000_000
INT64_MAX = 2**63 - 1  # the largest size or count the kernels take
TOP_LEVEL = ("experiment", "name", "description", "fixed", "grid")


class SpecError(ValueError):
    """A malformed SPEC file; the message names the file, the line and the key.

    Parameters
    ----------
    message : str
        The full error text (it already names the file, and the line and key
        where known).
    key : str, optional
        The dotted key at fault, if known.
    line : int, optional
        1-based line number, if known.

    Attributes
    ----------
    key : str or None
        The dotted key at fault (``"grid.lr"``), if known.
    line : int or None
        1-based line number, if known.
    """

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:
        raise SpecError(
            "reading SPEC files needs Python 3.11+ (tomllib) or the 'tomli' package "
            "(pip install tomli)"
        ) from None
    return tomli


# ----------------------------------------------------------------------------- hashing
def canonical_json(config: dict[str, Any]) -> str:
    """The canonical JSON of a configuration: sorted keys, no spaces, no NaN.

    Parameters
    ----------
    config : dict
        A flat configuration (strings, numbers, booleans, None, lists).

    Returns
    -------
    str
    """
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_key(config: dict[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of the configuration (experiment included).

    Parameters
    ----------
    config : dict
        ``{"experiment": name, **parameters}``.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    if "experiment" not in config:
        raise ValueError("config: expected an 'experiment' entry")
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


# ----------------------------------------------------------------------------- spec
@dataclass
class Spec:
    """A parsed SPEC file.

    Attributes
    ----------
    experiment : str
        The experiment every run executes.
    name : str
        A label (the ``name`` key, else the file's stem).
    fixed : dict
        Parameters set once, checked and normalized.
    grids : list of dict
        One ``{parameter: [values]}`` per grid table, checked and normalized.
    path : pathlib.Path or None
        The file read, if any.
    description : str
        The SPEC's free-text ``description`` key ("" if none).
    largest_run_bytes : int or None
        The estimated footprint of the SPEC's largest run, in bytes
        (``Experiment.footprint``, found by :func:`parse_spec`); None where the
        experiment tells none.
    """

    experiment: str
    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grids: list[dict[str, list[Any]]] = field(default_factory=list)
    path: Path | None = None
    description: str = ""
    largest_run_bytes: int | None = None

    def runs(self) -> list[dict[str, Any]]:
        """Every run's full configuration, in grid order, without duplicates.

        Returns
        -------
        list of dict
            ``{"experiment": name, **parameters}``: the experiment's defaults,
            overridden by the fixed values, then by the grid point's.
        """
        return [config for _, config in self.keyed_runs()]

    def keyed_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(key, configuration)`` for every run, in grid order, without duplicates.

        Returns
        -------
        list of (str, dict)
            :func:`config_key` of each configuration and the configuration (as in
            :meth:`runs`); a configuration repeated in the grids appears once,
            where it first occurs.  Configurations are canonical
            (:func:`fastinit.sweep.runners.canonical_config`): ``momentum`` with
            ``optimizer = "sgd"`` is one run, whatever the momentum, and so is
            planar's ``rng`` with an init other than ``randn*s`` on one hidden layer.
        """
        seen: dict[str, dict[str, Any]] = {}
        for config in self._expand():
            seen.setdefault(config_key(config), config)
        return list(seen.items())

    def _expand(self) -> Iterator[dict[str, Any]]:
        defaults = {k: p.default for k, p in EXPERIMENTS[self.experiment].params.items()}
        base = {"experiment": self.experiment, **defaults, **self.fixed}
        for grid in self.grids or [{}]:
            names = list(grid)
            for values in itertools.product(*(grid[n] for n in names)):
                yield canonical_config({**base, **dict(zip(names, values, strict=True))})

    def __len__(self) -> int:
        return len(self.keyed_runs())


def load_spec(path: str | os.PathLike[str], *, memory: float | None = None) -> Spec:
    """Read and check a SPEC.toml file.

    Parameters
    ----------
    path : path-like
        The file.
    memory : float, optional
        Bytes one run may use, as in :func:`parse_spec` (default: the memory
        available on this machine now).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the file cannot be read or is malformed (the message names the
        file, the line and the key).
    TypeError
        Naming ``path``, if it is not a file name.
    """
    from fastinit._validate import check_path  # imported where used, as runners does

    p = Path(check_path(path, "path"))
    try:  # -sig: a byte order mark (Windows editors write one) is no part of the first key
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{p}: cannot read the SPEC file ({e})") from None
    return parse_spec(text, p, memory=memory)


def parse_spec(
    text: str, path: str | os.PathLike[str] | None = None, *, memory: float | None = None
) -> Spec:
    """Parse and check the text of a SPEC file.

    Parameters
    ----------
    text : str
        TOML text.
    path : path-like, optional
        The file name, for messages and the default ``name``.
    memory : float, optional
        Bytes one run may use: the largest run of each grid (its estimated
        footprint, ``Experiment.footprint``) must fit.  Default: the memory
        available on this machine now; ``math.inf`` for runs on other machines
        (a Dask cluster), checking only what no process can allocate (2**63 bytes).

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the text is malformed (the message names the line and the key).
    TypeError
        Naming ``text``, if it is not a str.
    ValueError
        Naming ``memory``, if it is not a number > 0 (``math.inf`` included).
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected the text of a SPEC file (str), got {type(text).__name__}")
    if memory is not None and (
        isinstance(memory, bool) or not isinstance(memory, numbers.Real) or not memory > 0
    ):
        raise ValueError(f"memory: expected a number of bytes > 0 or None, got {memory!r}")
    where = Path(path) if path is not None else None
    label = str(where) if where is not None else "<spec>"
    toml = _toml()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as e:
        message = str(e)
        if "(at end of document)" in message and not text.endswith("\n"):
            try:  # an error on a last line without a newline (a key set twice, a value
                toml.loads(text + "\n")  # missing): placed on its line and column with one
            except toml.TOMLDecodeError as again:
                message = str(again)
        raise _syntax_error(label, text, message) from None
    return _Checker(text, label, memory).check(data, where)


def _syntax_error(label: str, text: str, message: str) -> SpecError:
    lines = text.splitlines()
    assignment = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\- ]+?)\s*=""")
    m = re.search(r"at line (\d+), column (\d+)", message)
    if m:
        line, col = int(m.group(1)), int(m.group(2))
        reason = message[: m.start()].rstrip(" (")
    elif "(at end of document)" in message and text.strip():  # a list or string never closed
        filled = [k for k, s in enumerate(lines, 1) if s.strip()]
        starts = [k for k in filled if assignment.match(lines[k - 1])]
        line, col = (starts or filled)[-1], 1  # the last assignment: where the value starts
        reason = message.replace(" (at end of document)", "") + ": the file ends inside it"
    else:
        return SpecError(f"{label}: invalid TOML: {message}")
    src = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    km = assignment.match(src)
    key = km.group(1).strip("\"' ") if km else None
    what = f" in key {key!r}" if key else ""
    return SpecError(
        f"{label}:{line}:{col}: invalid TOML{what}: {reason}: {src}", key=key, line=line
    )


_HEADER = re.compile(r"""^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)""")


class _Checker:
    """Semantic checks with line lookup in the file text."""

    def __init__(self, text: str, label: str, memory: float | None = None) -> None:
        self.lines = text.splitlines()
        self.label = label
        self.memory = memory

    # ------------------------------------------------------------------------- lines
    def _section(self, table: str | None, occurrence: int) -> tuple[int, int] | None:
        """0-based [start, end) line range of a table's body (top level: before any header)."""
        headers = []
        for i, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if m and not line.lstrip().startswith("#"):
                headers.append((i, m.group(2).strip().strip("\"'")))
        if table is None:
            return 0, headers[0][0] if headers else len(self.lines)
        found = [k for k, (_, name) in enumerate(headers) if name == table]
        if occurrence >= len(found):
            return None
        k = found[occurrence]
        end = headers[k + 1][0] if k + 1 < len(headers) else len(self.lines)
        return headers[k][0], end

    def line_of(self, table: str | None, key: str | None, occurrence: int = 0) -> int | None:
        """1-based line of ``key`` in ``table`` (or of the table header), best effort."""
        pattern = None
        if key is not None:
            pattern = re.compile(
                rf"""^\s*(?:"{re.escape(key)}"|'{re.escape(key)}'|{re.escape(key)})\s*="""
            )
        section = self._section(table, occurrence)
        if section is not None and pattern is not None:
            for i in range(section[0], section[1]):
                if pattern.match(self.lines[i]):
                    return i + 1
        if table is not None and key is not None:  # a sub-table: [fixed.sub], after its table
            header = re.compile(rf"""^\s*\[\s*{re.escape(table)}\s*\.\s*{re.escape(key)}\s*\]""")
            begin = section[0] if section is not None else 0
            for i in range(begin, len(self.lines)):
                if header.match(self.lines[i]):
                    return i + 1
        if section is not None and table is not None:
            return section[0] + 1
        if table is not None and key is not None:  # dotted keys or inline tables
            dotted = re.compile(rf"""^\s*{re.escape(table)}\s*\.\s*{re.escape(key)}\s*=""")
            for i, line in enumerate(self.lines):
                if dotted.match(line):
                    return i + 1
            inline = re.compile(rf"""^\s*{re.escape(table)}\s*=""")
            for i, line in enumerate(self.lines):
                if inline.match(line):
                    return i + 1
        return None

    def error(
        self, message: str, table: str | None, key: str | None, occurrence: int = 0, index: str = ""
    ) -> SpecError:
        dotted = ".".join(p for p in (table, key) if p) if table or key else ""
        if table is not None and index:
            dotted = f"{table}{index}" + (f".{key}" if key else "")
        line = self.line_of(table, key, occurrence)
        at = f"{self.label}:{line}" if line is not None else self.label
        return SpecError(f"{at}: {dotted}: {message}" if dotted else f"{at}: {message}",
                         key=dotted or None, line=line)  # fmt: skip

    # ------------------------------------------------------------------------- checks
    def check(self, data: dict[str, Any], path: Path | None) -> Spec:
        for key in data:
            if key not in TOP_LEVEL:
                raise self.error(
                    f"unknown key; expected one of {', '.join(TOP_LEVEL)}"
                    + _suggest(key, TOP_LEVEL),
                    None,
                    key,
                )
        if "experiment" not in data:
            raise self.error(
                "missing key 'experiment'; expected one of " + ", ".join(_public()), None, None
            )
        experiment = data["experiment"]
        if not isinstance(experiment, str) or experiment.lower() not in EXPERIMENTS:
            raise self.error(
                f"expected one of {', '.join(map(repr, _public()))}, got {experiment!r}"
                + (_suggest(experiment, _public()) if isinstance(experiment, str) else ""),
                None,
                "experiment",
            )
        experiment = experiment.lower()
        params = EXPERIMENTS[experiment].params
        name = data.get("name", path.stem if path is not None else experiment)
        if not isinstance(name, str) or not name.strip():  # the label stored with each run
            raise self.error(f"expected a non-empty string, got {name!r}", None, "name")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.error(f"expected a string, got {description!r}", None, "description")
        fixed_table = data.get("fixed", {})
        if not isinstance(fixed_table, dict):
            raise self.error(f"expected a table ([fixed]), got {fixed_table!r}", None, "fixed")
        fixed = {
            key: self._value(value, params, experiment, "fixed", key, 0, "")
            for key, value in fixed_table.items()
        }
        grid_data = data.get("grid", [])  # no grid: one run of [fixed]
        tables = [grid_data] if isinstance(grid_data, dict) else grid_data
        tabular = isinstance(tables, list) and all(isinstance(t, dict) for t in tables)
        if not tabular or ("grid" in data and not tables):  # grid = []: a slip, not "no grid"
            raise self.error(
                f"expected a table [grid] or tables [[grid]] (or no grid), got {grid_data!r}",
                None, "grid",
            )  # fmt: skip
        indices = [f"[{n}]" if isinstance(grid_data, list) else "" for n in range(len(tables))]
        for n, table in enumerate(tables):
            if not table and len(tables) > 1:  # a header whose keys were commented out
                raise self.error(
                    "an empty table adds one run of the defaults; give it keys or remove it",
                    "grid", None, n, indices[n],
                )  # fmt: skip
        axes = []  # every axis' values, unchecked: the grid's size is known before they are
        for n, table in enumerate(tables):
            for key in table:
                if key in fixed:
                    raise self.error(
                        "set both in [fixed] and in the grid; keep one", "grid", key, n, indices[n]
                    )
            values = {
                k: self._axis_values(v, params, experiment, k, n, indices[n])
                for k, v in table.items()
            }
            axes.append(values)
        total = sum(math.prod(len(v) for v in grid.values()) for grid in axes or [{}])
        if total > MAX_RUNS:
            raise self.error(
                f"the grid has {total} points; at most {MAX_RUNS} allowed", "grid", None
            )
        grids = [
            {k: self._axis(v, params, experiment, k, n, indices[n]) for k, v in grid.items()}
            for n, grid in enumerate(axes)
        ]
        self._check_combinations(EXPERIMENTS[experiment], fixed, grids, isinstance(grid_data, list))
        largest = self._check_footprint(
            EXPERIMENTS[experiment], fixed, grids, isinstance(grid_data, list)
        )
        return Spec(experiment, name, fixed, grids, path, description, largest)

    def _check_combinations(
        self, experiment: Experiment, fixed: dict[str, Any], grids: list[dict], listed: bool
    ) -> None:
        """Check each grid's inits against its dtypes, then run the experiment's
        ``check_grid`` on the grid's full axes."""
        for n, grid in enumerate(grids or [{}]):
            axes = _axes(experiment, fixed, grid)
            try:
                _check_inits_drawable(axes)
                if experiment.check_grid is not None:
                    experiment.check_grid(axes)
            except ValueError as e:
                key, _, message = str(e).partition(": ")
                if key in grid:
                    raise self.error(message, "grid", key, n, f"[{n}]" if listed else "") from None
                raise self.error(message, "fixed" if key in fixed else None, key) from None

    def _check_footprint(
        self, experiment: Experiment, fixed: dict[str, Any], grids: list[dict], listed: bool
    ) -> int | None:
        """Refuse a grid whose largest run would not fit in the memory a run may use.

        Returns the footprint of the largest run of all grids (None: the
        experiment tells none).
        """
        if experiment.footprint is None:
            return None
        available = available_memory() if self.memory is None else self.memory
        where = (
            "of memory available on this machine"
            if self.memory is None
            else "of memory a run may use"
        )
        params = experiment.params
        largest = 0
        for n, grid in enumerate(grids or [{}]):
            config, parts = _largest_run(experiment, _axes(experiment, fixed, grid))
            largest = max(largest, sum(parts.values()))
            # the sizes the SPEC sets, at their smallest value
            smallest = {
                key: int(params[key].low)
                for key in (*grid, *fixed)
                if params[key].kind == "int" and params[key].low is not None
            }
            excess = memory_excess(experiment.footprint, config, smallest, available)
            if excess is None:
                continue
            need = excess.needs(where)
            # blame the size whose smallest value would shrink that run most
            key = max(excess.drops, key=excess.drops.__getitem__, default=None)
            if key is None:
                raise self.error(f"the largest run {need}", None, None)
            message = (
                f"expected a value small enough for the runs to fit in memory, got "
                f"{config[key]}: the largest run{' of the grid' if key in grid else ''} {need}"
            )
            if key in grid:
                raise self.error(message, "grid", key, n, f"[{n}]" if listed else "")
            raise self.error(message, "fixed", key)
        return largest

    def _axis_values(
        self, values: Any, params: dict[str, Param], experiment: str, key: str, n: int, index: str
    ) -> list[Any] | range:
        """An axis' values as written (a range table as a range), before any is checked."""
        if key not in params:
            self._value(None, params, experiment, "grid", key, n, index)  # raises: unknown
        if isinstance(values, dict):
            if params[key].kind not in ("int", "float"):
                raise self.error(
                    f"expected a list of values, got a range table {values}; ranges "
                    "{start, stop, step} are only for numbers",
                    "grid", key, n, index,
                )  # fmt: skip
            return self._range(values, key, n, index)
        if not isinstance(values, list):
            raise self.error(
                f"expected a list of values (a grid axis), got {values!r}; "
                "put single values in [fixed]",
                "grid", key, n, index,
            )  # fmt: skip
        if not values:
            raise self.error("expected a non-empty list of values, got []", "grid", key, n, index)
        return values

    def _axis(
        self,
        values: list[Any] | range,
        params: dict[str, Param],
        experiment: str,
        key: str,
        n: int,
        index: str,
    ) -> list[Any]:
        """An axis' values (:meth:`_axis_values`), each checked and normalized, none twice."""
        init = params[key].check == "init"
        out, seen = [], {}
        for v in values:
            norm = self._value(v, params, experiment, "grid", key, n, index, element=True)
            tags = [json.dumps(norm, sort_keys=True)]
            if init:  # two spellings of one draw: one run twice
                from fastinit.experiments._common import parse_init

                # planar's randn*s may be the notebook's draw (rng, depth may be axes)
                tags.append(repr(parse_init(norm).identity(notebook=experiment == "planar")))
            first = next((seen[tag] for tag in tags if tag in seen), None)
            if first is not None:
                again = f"is the same init as {first!r}, given twice" if init and first != v else ""
                raise self.error(f"value {v!r} {again or 'appears twice'}", "grid", key, n, index)
            seen.update(dict.fromkeys(tags, v))
            out.append(norm)
        return out

    def _range(self, table: dict[str, Any], key: str, n: int, index: str) -> range:
        allowed = ("start", "stop", "step")
        bad = sorted(set(table) - set(allowed))
        if bad:
            raise self.error(
                f"range: unknown key {bad[0]!r}; expected start, stop, step"
                + _suggest(bad[0], allowed),
                "grid", key, n, index,
            )  # fmt: skip
        if "stop" not in table:
            raise self.error(
                "range: stop required, as in {start = 0, stop = N, step = 1} (a list is the "
                f"other form), got keys {sorted(table)}",
                "grid", key, n, index,
            )  # fmt: skip
        parts = [table.get("start", 0), table["stop"], table.get("step", 1)]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in parts) or parts[2] == 0:
            raise self.error(
                f"range: expected integers start, stop and a non-zero step, got {table}",
                "grid", key, n, index,
            )  # fmt: skip
        start, stop, step = parts
        # counted, not len(range): that overflows beyond 2**63 values (and a list of them
        # would exhaust the memory first)
        count = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)
        if count > MAX_RUNS:
            raise self.error(
                f"range: {count} values; a grid has at most {MAX_RUNS} points",
                "grid", key, n, index,
            )  # fmt: skip
        if not count:
            raise self.error(
                f"range: expected at least one value, got none from {table} (a step of "
                f"{step} needs stop {'>' if step > 0 else '<'} start)",
                "grid", key, n, index,
            )  # fmt: skip
        return range(start, stop, step)

    def _value(
        self,
        value: Any,
        params: dict[str, Param],
        experiment: str,
        table: str,
        key: str,
        n: int,
        index: str,
        element: bool = False,
    ) -> Any:
        def fail(message: str) -> SpecError:
            return self.error(message, table, key, n, index)

        def valid(value: Any) -> Any:  # what the run itself would reject (Param.validate)
            if p.validate is not None:
                try:
                    p.validate(value)
                except ValueError as e:
                    raise fail(str(e).removeprefix(f"{key}: ")) from None
            return value

        if key not in params:
            raise fail(
                f"unknown parameter of experiment {experiment!r}; expected one of "
                f"{', '.join(sorted(params))}" + _suggest(key, params)
            )
        p = params[key]
        got = f"got {value!r}" + (" in the list" if element else "")
        if p.kind == "bool":
            if not isinstance(value, bool):
                raise fail(f"expected true or false, {got}")
            return valid(value)
        if p.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(f"expected an integer, {got}")
            if p.low is not None and value < p.low:
                raise fail(f"expected an integer >= {p.low:g}, {got}")
            high = INT64_MAX if p.high is None else p.high
            if value > high:  # beyond the kernels' int64 (the generators' uint64 for seeds)
                bound = f"< 2**{high.bit_length()}" if high & (high + 1) == 0 else f"<= {high}"
                raise fail(f"expected an integer {bound}, {got}")
            return valid(value)
        if p.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"expected a number, {got}")
            try:
                value = float(value) + 0.0  # + 0.0: -0.0 is 0.0, one run and one key
            except OverflowError:  # an integer beyond the float range
                raise fail(f"expected a finite number, {got}") from None
            if not math.isfinite(value):
                raise fail(f"expected a finite number, {got}")
            if key == "lr" and value <= 0:
                raise fail(f"expected a number > 0, {got}")
            if p.low is not None and value < p.low:
                raise fail(f"expected a number >= {p.low:g}, {got}")
            return valid(value)
        if not isinstance(value, str) or not value.strip():
            raise fail(f"expected a non-empty string, {got}")
        value = value.strip()
        if p.choices is not None:
            if value.lower() not in p.choices:
                raise fail(
                    f"expected one of {', '.join(map(repr, p.choices))}, {got}"
                    + _suggest(value.lower(), p.choices)
                )
            return valid(value.lower())
        if p.check == "activation":
            from fastinit import activations

            try:
                name = activations.get(value, key).name
            except ValueError as e:
                raise fail(str(e).removeprefix(f"{key}: ")) from None
            return valid(name)
        if p.check == "init":
            from fastinit.experiments._common import parse_init

            try:  # only the training experiments apply data-dependent inits (LSUV)
                spec = parse_init(value, data_dependent=experiment in ("mnist", "planar"))
            except ValueError as e:
                raise fail(str(e).removeprefix("init: ")) from None
            return valid(_init_spelling(spec, experiment))
        return valid(value)


def _init_spelling(spec: InitSpec, experiment: str) -> str:
    """The docs' spelling of ``spec`` in its form (std, constant, name): the stored init.

    ``std=1e-2``, ``randn * 0.010`` and ``scale=.01`` are ``std=0.01`` (in planar,
    whose docs write the notebook's ``randn*s``, ``randn*0.01``; std 1 is planar's
    ``randn`` and elsewhere ``std=1``), ``He`` is ``he``, ``constant=.50`` is
    ``constant=0.5`` and an alias or another spelling of a :mod:`fastinit.init` name
    (``msra``, ``Kaiming-Normal``) that initializer's name (``kaiming_normal``).  Only
    spellings of one :class:`InitSpec` (its fields but the name) share one: ``randn``
    (the notebook's generator in planar) and ``normal`` (fastinit's) stay two.
    """
    from fastinit.init import get

    if spec.lsuv:
        return "lsuv"
    if spec.fan_scale is not None:  # the books' xavier and he
        return spec.name.strip().lower()
    if spec.std is not None:
        if experiment == "planar":
            return "randn" if spec.std == 1 else f"randn*{_number(spec.std)}"
        return f"std={_number(spec.std)}"
    if spec.value is not None:
        return f"constant={_number(spec.value)}"
    return get(spec.initializer).__name__


def _check_inits_drawable(axes: dict[str, list[Any]]) -> None:
    """Refuse an init that one of the grid's dtypes cannot draw (``std=1e300`` or
    ``std=1e-50`` in float32: every such run would fail, or draw zeros)."""
    if "init" not in axes or "dtype" not in axes:
        return
    from fastinit.experiments._common import check_drawable, parse_init

    for init in axes["init"]:
        spec = parse_init(init)
        for dtype in axes["dtype"]:
            check_drawable(spec, dtype)  # "init: 'std=1e300' cannot be drawn in float32: ..."


def _number(value: float) -> str:
    """A number of an init spec as Python writes it, ``.0`` left out: ``0.01``, ``100``."""
    return repr(value + 0.0).removesuffix(".0")  # + 0.0: -0.0 is 0.0, as for the numbers


def _axes(experiment: Experiment, fixed: dict[str, Any], grid: dict) -> dict[str, list[Any]]:
    """Every parameter's values in one grid: the default, else the fixed value, else the grid's."""
    axes = {key: [p.default] for key, p in experiment.params.items()}
    return axes | {key: [value] for key, value in fixed.items()} | grid


def _largest_run(
    experiment: Experiment, axes: dict[str, list[Any]]
) -> tuple[dict[str, Any], dict[str, int]]:
    """The configuration of a grid with the largest footprint, and that footprint.

    A footprint is non-decreasing in every number (``Experiment.footprint``):
    the largest run takes each axis' largest number and one of the combinations
    of the parameters with a few choices (dtype, optimizer, sampling, booleans).
    """
    params = experiment.params
    tried = [k for k, v in axes.items() if params[k].choices or params[k].kind == "bool"]
    base = {key: values[0] for key, values in axes.items()}
    for key, values in axes.items():
        if params[key].kind in ("int", "float") and None not in values:
            base[key] = max(values)
    best: tuple[dict[str, Any], dict[str, int]] | None = None
    for combination in itertools.product(*(dict.fromkeys(axes[k]) for k in tried)):
        config = {**base, **dict(zip(tried, combination, strict=True))}
        parts = experiment.footprint(config)  # type: ignore[misc]
        if best is None or sum(parts.values()) > sum(best[1].values()):
            best = config, parts
    assert best is not None  # product() of non-empty axes has a first combination
    return best


@dataclass(frozen=True)
class MemoryExcess:
    """A run whose arrays would not fit in memory (:func:`memory_excess`).

    Attributes
    ----------
    total : int
        The bytes the run needs.
    parts : dict
        Those bytes by part (``{"parameters": ..., "activations": ...}``).
    limit : int
        The bytes it may have (``sys.maxsize``: what any process can allocate).
    drops : dict
        ``{size: bytes}``: how much each size at its smallest value would
        shrink the run, for the sizes that would (a drop > 0), in the order given.
    """

    total: int
    parts: dict[str, int]
    limit: int
    drops: dict[str, int]

    def needs(self, where: str) -> str:
        """What every memory error says: ``'needs about 2 GiB (parts), more than the 1 GiB
        <where>'``.

        Parameters
        ----------
        where : str
            What the limit is, after its size: ``'available'``, ``'of memory a run may use'``.

        Returns
        -------
        str
        """
        beyond = (
            "any process can allocate (2**63 bytes)"
            if self.limit == sys.maxsize
            else f"the {_bytes(self.limit)} {where}"
        )
        return f"needs about {_bytes(self.total)} ({_parts(self.parts)}), more than {beyond}"


def memory_excess(
    footprint: Any, config: dict[str, Any], smallest: dict[str, Any], available: float | None
) -> MemoryExcess | None:
    """The one memory check of a sweep's SPEC and of every experiment.

    Parameters
    ----------
    footprint : callable
        Given a configuration, the bytes of the arrays its run allocates, by part.
    config : dict
        The run's configuration (or sizes).
    smallest : dict
        The sizes that could be reduced, each at its smallest value.
    available : float or None
        The bytes the run may use; None where the system does not tell (then,
        as above ``sys.maxsize``, what any process can allocate: 2**63 bytes).

    Returns
    -------
    MemoryExcess or None
        None if the run fits, else its footprint and the sizes that would shrink it.
    """
    parts = footprint(config)
    total = sum(parts.values())
    limit = sys.maxsize if available is None else min(available, sys.maxsize)
    if total <= limit:
        return None
    drops = {
        name: total - sum(footprint({**config, name: value}).values())
        for name, value in smallest.items()
    }
    positive = {name: drop for name, drop in drops.items() if drop > 0}
    return MemoryExcess(total, parts, limit, positive)


def _parts(parts: dict[str, int]) -> str:
    return ", ".join(f"{name} {_bytes(size)}" for name, size in parts.items() if size)


def _bytes(size: float) -> str:
    """``size`` bytes in binary units, 3 significant digits: ``'1.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1000:
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} EiB"


def run_memory(dask: str | None) -> float | None:
    """The bytes one run may use, as the ``memory`` of :func:`load_spec`, given ``dask``.

    Runs on a Dask cluster other than ``'local'`` use other machines' memory:
    bounded only by what a process can allocate.  Runs on this machine (a
    local pool or ``'local'``) are bounded by the memory available here.

    Parameters
    ----------
    dask : str or None
        Dask scheduler address, ``'local'`` for a LocalCluster, None for none.

    Returns
    -------
    float or None
        ``math.inf`` for a remote cluster; None (this machine's memory) otherwise.
    """
    return math.inf if dask is not None and dask != "local" else None


def workers_in_memory(spec: Spec, workers: int) -> tuple[int, str]:
    """How many of ``workers`` runs of ``spec`` fit in this machine's memory at once.

    A local pool of ``workers`` processes runs that many runs at once; each may
    be the largest run of the SPEC (``Spec.largest_run_bytes``, found by
    :func:`parse_spec`, which checks that one run fits the memory this process
    may use, ``ulimit -v`` included).  The memory they share is read now (it
    may have shrunk since the SPEC was read): what the kernel and the memory
    cgroups leave, not the address-space limit, which each worker has on its own.

    Parameters
    ----------
    spec : Spec
        The sweep to run.
    workers : int
        The workers asked for (>= 1).

    Returns
    -------
    workers : int
        ``workers`` if they fit (or nothing tells the footprint or the
        memory), else the largest count that fits, at least 1.  A Spec made
        by hand, without ``largest_run_bytes``, has its largest run found here.
    note : str
        ``""``, or the line saying what was reduced and why (for stderr).
    """
    need = spec.largest_run_bytes
    experiment = EXPERIMENTS[spec.experiment]
    if need is None and experiment.footprint is not None:  # a Spec not made by parse_spec
        need = max(
            sum(_largest_run(experiment, _axes(experiment, spec.fixed, grid))[1].values())
            for grid in spec.grids or [{}]
        )
    if need is None or workers <= 1:
        return workers, ""
    available = available_memory(per_process=False)
    if available is None or need * workers <= available:
        return workers, ""
    fit = max(1, int(available // need))  # need > 0 here: 0 bytes fit any count
    return fit, (
        f"fastinit sweep: running {fit} worker{'' if fit == 1 else 's'}, not the {workers} "
        f"requested: each run may need {_bytes(need)} (the largest run of the SPEC), and "
        f"{workers} at once more than the {_bytes(available)} of memory available"
    )


def _public() -> list[str]:
    return [name for name, e in EXPERIMENTS.items() if not e.hidden]


def _suggest(word: Any, choices: Any) -> str:
    from fastinit._validate import suggest  # imported where used, as runners does: no NumPy

    return suggest(word, choices)
