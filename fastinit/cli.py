"""The ``fastinit`` command line: one subcommand per classic experiment.

``fastinit histogram``, ``fastinit mnist``, ``fastinit planar``,
``fastinit symmetry`` and ``fastinit depth`` each run with the classic defaults,
print a table and write figures, ``summary.json`` and CSV curves to ``--out``
(default ``fastinit-results/<experiment>``).  ``fastinit sweep`` runs a grid of
them into SQLite and ``fastinit report`` aggregates it (:mod:`fastinit.sweep`).
"""

from __future__ import annotations

import argparse
import codecs
import errno
import inspect
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NoReturn

from fastinit._files import STOP_SIGNALS, terminate_as_interrupt


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that states every option's default: ``--seed SEED  ... (default: 0)``.

    As :class:`argparse.ArgumentDefaultsHelpFormatter`, but an option without a
    default to state (None, off, nothing repeated, ``--help``), a positional and
    a help that speaks of its default already are left alone; a tuple is shown
    as the option takes it (``100,100``); descriptions keep their line breaks.
    Every ``fastinit`` parser uses it (``formatter_class=HelpFormatter``).

    Parameters
    ----------
    prog : str
        The program name, as for :class:`argparse.HelpFormatter`.
    indent_increment, max_help_position : int
        Indentation of nested sections, and the column where help text starts.
    width : int, optional
        Line width (default: the terminal's, less 2).
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(_unmarked(text), width, indent)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(_unmarked(text), width)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text, default = action.help, action.default
        if not text or not action.option_strings or "default" in text:
            return text
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            return text
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"  # help is a %-format


class Parser(argparse.ArgumentParser):
    """An argument parser whose error about one argument's value is one line, as
    fastinit's own checks are: ``fastinit planar: error: --iterations: expected an integer,
    got 'abc'`` (argparse prints its usage first and says ``argument --iterations: ...``).
    An error about no one argument (an unknown option, a required argument or command
    not given) keeps the usage, which says what the command takes; an option given
    without its value is about that option (``--iterations: expected one argument``).
    Subcommands inherit the class."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as the command's error and exit with status 2.

        Parameters
        ----------
        message : str
            argparse's message (``argument --iterations: expected an integer, got
            'abc'``): one about an argument is printed without the ``argument`` and
            the usage.
        """
        m = _ARGUMENT.match(message)
        if m is None:
            super().error(message)
        self.exit(2, f"{self.prog}: error: {message[m.end() :]}\n")


_ARGUMENT = re.compile(r"argument (?=\S+: )")  # argparse's ArgumentError: "argument --x: ..."
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def _unmarked(text: str) -> str:
    """Docstring markup as a terminal shows it: ``:func:`~a.b.c``` as ``c``, ``:mod:`a.b```
    as ``a.b``, double backquotes dropped (the descriptions are module docstrings)."""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return text.replace("``", "")


def _items(text: str, what: str) -> tuple[str, ...]:
    """The comma-separated entries of ``text``, stripped; an empty one (``10,,10``, a
    trailing comma) is refused as the typo it likely is, not dropped."""
    items = tuple(s.strip() for s in text.split(","))
    if not any(items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}")
    if not all(items):
        raise argparse.ArgumentTypeError(f"empty entry in {text!r}: expected {what}")
    return items


def _name(text: str) -> str:
    """One name, stripped as the entries of a list are."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a name, got {text!r}")
    return text.strip()


def _path(text: str) -> Path:
    """A path; the empty one (``Path('')`` is the working directory) is refused as a slip."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return Path(text)


def _int(text: str) -> int:
    """An integer, as Python writes it (``1_000`` too); the error says what was expected."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    """A number (``1e-3``, ``0.5``); the error says what was expected."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return _items(text, "names")


def _ints(text: str) -> tuple[int, ...]:
    items = _items(text, "positive integers")
    try:
        values = tuple(int(s) for s in items)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _inits(a: argparse.Namespace, data_dependent: bool = True) -> list[Any]:
    """The parsed inits of ``--inits`` then ``--add`` (errors name the option, a value
    beyond ``--dtype``'s range included); ``data_dependent``: whether the experiment trains
    (``lsuv`` allowed); planar's ``--rng notebook`` draws ``randn*s`` its own way."""
    from fastinit.experiments._common import parse_init_options

    options = {"--inits": a.inits, "--add": a.add}
    notebook = getattr(a, "rng", None) == "notebook"
    return parse_init_options(
        options, data_dependent=data_dependent, dtype=a.dtype, notebook=notebook
    )


def _check_device(device: str) -> None:
    """Check up front that ``--device`` can run; ValueError naming the option if not."""
    from fastinit._cuda import check_device

    try:
        check_device(device, "--device")
    except RuntimeError as e:  # CUDA requested but unusable: a usage error, not a crash
        # the message names the Python argument (device='cpu'): here, the option
        message = re.sub(r"\bdevice='(\w+)'", r"--device \1", str(e))
        named = message.startswith("--device")
        raise ValueError(message if named else f"--device {device}: {message}") from None


def _prepare_out(out: Path | None, command: str) -> list[Path]:
    """Create ``--out`` before any computing; ValueError naming the option if unusable."""
    from fastinit.experiments._common import prepare_output

    return prepare_output(out, "--out", owner=command)


def _committed(out: Path | None, command: str) -> tuple[int, int] | None:
    """An identity of the list of files ``command`` last wrote into ``out`` (None if none).

    Every run that writes its files rewrites that list (a new file), so a
    change of identity during the run says its files were written.
    """
    from fastinit.experiments._common import LISTING

    if out is None:
        return None
    try:
        st = (out / LISTING.format(command)).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _interrupted(a: argparse.Namespace, before: tuple[int, int] | None, removed: bool) -> str:
    """What an interrupted command kept, for its message on standard error."""
    out = getattr(a, "out", None)
    if a.command == "sweep":
        db = getattr(a, "db", None)
        left = _sweep_runs_left(a)
        if left is not None and left[0] == 0:
            return f"every run of the SPEC is in {str(db)!r}"
        return (
            f"the runs finished so far are in {str(db)!r}; run the same command again to "
            "run the rest" + ("" if left is None else f" ({left[0]} of {left[1]})")
        )
    if out is None:
        return "nothing written"
    now = _committed(out, a.command)
    if now is not None and now != before:  # the Ctrl-C came while its files were renamed
        return f"its files were written to {str(out)!r} all the same"
    lost = "nothing written: the results computed so far are discarded"
    if removed:
        return f"{lost}, and {str(out)!r}, made for this run, is removed again"
    if before is not None:
        return f"{lost}; {str(out)!r} keeps the earlier `fastinit {a.command}` run's files"
    return f"{lost}; {str(out)!r} is as it was"


def _sweep_runs_left(a: argparse.Namespace) -> tuple[int, int] | None:
    """How many runs of an interrupted sweep's SPEC are still to run, of how many;
    None where that cannot be read (no SPEC, a database that cannot be opened)."""
    from fastinit.sweep.spec import load_spec
    from fastinit.sweep.store import Store

    try:
        keys = [key for key, _ in load_spec(a.spec).keyed_runs()]
        with Store(a.db, readonly=True) as store:
            done = store.done(keys, retry_failed=a.retry_failed)
    except Exception:  # the message then says what it always said
        return None
    return sum(key not in done for key in keys), len(keys)


def _common(p: argparse.ArgumentParser, experiment: str, trains: bool = False) -> None:
    """Add ``--out``, ``--add`` and ``--quiet``; ``trains``: the experiment takes 'lsuv'."""
    p.add_argument(
        "--out",
        type=_path,
        default=Path("fastinit-results") / experiment,  # the function's None writes no files
        help="directory for the PNG figures, summary.json and CSV curves",
    )
    forms = ["'std=<s>'", "'randn*<s>'", "'constant=<v>'", "'xavier'", "'he'"]
    forms += ["'lsuv' (orthogonal, rescaled on the training data)"] if trains else []
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="INIT",
        help="run this init too, besides --inits (repeatable); any fastinit.init name, "
        f"{', '.join(forms[:-1])} or {forms[-1]}",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _default(run: Callable[..., Any], name: str) -> Any:
    """The default of keyword ``name`` of the experiment function ``run``: an option's
    default is read there, not restated (one source of truth)."""
    return inspect.signature(run).parameters[name].default


def _dtype(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--dtype", default=default, choices=("float32", "float64"),
                   help="arithmetic type")  # fmt: skip


def _histogram(sub: Any) -> None:
    from fastinit.experiments import histogram as h

    run = h.run_histogram
    p = sub.add_parser(
        "histogram",
        help="per-layer activation and gradient histograms at initialization",
        description=h.__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--inits", type=_names, default=_default(run, "inits"),
                   help="comma-separated init specs")  # fmt: skip
    p.add_argument("--activations", type=_names, default=_default(run, "activations"),
                   help="comma-separated activations")  # fmt: skip
    p.add_argument("--layers", type=_int, default=_default(run, "layers"), help="depth")
    p.add_argument("--width", type=_int, default=_default(run, "width"), help="units per layer")
    p.add_argument("--samples", type=_int, default=_default(run, "samples"),
                   help="Gaussian input rows")  # fmt: skip
    p.add_argument("--bins", type=_int, default=_default(run, "bins"), help="histogram bins")
    p.add_argument("--seed", type=_int, default=_default(run, "seed"),
                   help="seed of inputs and weights")  # fmt: skip
    _dtype(p, _default(run, "dtype"))
    _common(p, "histogram")
    p.set_defaults(run=_run_histogram, sizes=("--layers", "--width", "--samples", "--bins"))


def _run_histogram(a: argparse.Namespace) -> Any:
    from fastinit.experiments.histogram import run_histogram

    return run_histogram(
        _inits(a, data_dependent=False), a.activations, layers=a.layers, width=a.width,
        samples=a.samples, bins=a.bins, seed=a.seed, dtype=a.dtype, out=a.out,
        progress=not a.quiet,
    )  # fmt: skip


def _mnist(sub: Any) -> None:
    from fastinit.experiments import mnist as m

    run = m.run_mnist
    p = sub.add_parser(
        "mnist",
        help="MNIST 784-100x4-10: std=0.01 vs Xavier vs He on the same minibatches",
        description=m.__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--inits", type=_names, default=_default(run, "inits"),
                   help="comma-separated init specs")  # fmt: skip
    p.add_argument("--activation", type=_name, default=_default(run, "activation"),
                   help="hidden activation")  # fmt: skip
    p.add_argument("--hidden", type=_ints, default=_default(run, "hidden"),
                   help="hidden widths, comma-separated")  # fmt: skip
    p.add_argument("--iterations", type=_int, default=_default(run, "iterations"),
                   help="SGD steps")  # fmt: skip
    p.add_argument("--batch-size", type=_int, default=_default(run, "batch_size"),
                   help="minibatch")  # fmt: skip
    p.add_argument("--lr", type=_float, default=_default(run, "lr"), help="SGD learning rate")
    p.add_argument("--seeds", type=_int, default=_default(run, "seeds"),
                   help="repeat with N seeds; plots mean and spread")  # fmt: skip
    p.add_argument("--seed", type=_int, default=_default(run, "seed"), help="first seed")
    p.add_argument("--train-size", type=_int, default=_default(run, "train_size"),
                   help="use only the first N training images (default: all 60000)")  # fmt: skip
    _dtype(p, _default(run, "dtype"))
    p.add_argument("--device", default=_default(run, "device"), choices=("cpu", "cuda"),
                   help="CPU, or an NVIDIA GPU with fastinit[cuda] installed")  # fmt: skip
    _common(p, "mnist", trains=True)
    p.set_defaults(
        run=_run_mnist, sizes=("--hidden", "--batch-size", "--train-size", "--iterations")
    )


def _run_mnist(a: argparse.Namespace) -> Any:
    from fastinit.experiments.mnist import run_mnist

    _check_device(a.device)
    return run_mnist(
        _inits(a), activation=a.activation, hidden=a.hidden, iterations=a.iterations,
        batch_size=a.batch_size, lr=a.lr, seeds=a.seeds, seed=a.seed, train_size=a.train_size,
        dtype=a.dtype, out=a.out, progress=not a.quiet, device=a.device,
    )  # fmt: skip


def _planar(sub: Any) -> None:
    from fastinit.experiments import planar as pl

    run = pl.run_planar
    p = sub.add_parser(
        "planar",
        help="the planar flower: 2-4-1 tanh/sigmoid with zeros, randn, x0.01, x0.001, x100",
        description=pl.__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--inits", type=_names, default=_default(run, "inits"),
                   help="comma-separated init specs")  # fmt: skip
    # .npz paths, read into the function's dict of arrays by _run_planar
    p.add_argument("--weights", type=_path, action="append", default=[], metavar="NPZ",
                   help="also run from explicit initial weights: an .npz with arrays W1 (2, H), "
                   "b1 (H,), W2 (H, 1), b2 (1,) (repeatable)")  # fmt: skip
    p.add_argument("--hidden", type=_int, default=_default(run, "hidden"), help="hidden units")
    p.add_argument("--iterations", type=_int, default=_default(run, "iterations"), help="steps")
    p.add_argument("--lr", type=_float, default=_default(run, "lr"), help="learning rate")
    p.add_argument("--rng", default=_default(run, "rng"), choices=("notebook", "fastinit"),
                   help="'notebook': randn*s weights drawn exactly as the classic notebook "
                   "does, from np.random.seed(--seed) (the notebook's own seed is 2); "
                   "'fastinit': fastinit's generator")  # fmt: skip
    p.add_argument("--seed", type=_int, default=_default(run, "seed"),
                   help="seed of the initial weights")  # fmt: skip
    _dtype(p, _default(run, "dtype"))
    _common(p, "planar", trains=True)
    p.set_defaults(run=_run_planar, sizes=("--hidden", "--iterations"))


def _load_weights(path: Path, hidden: int, dtype: str) -> list[Any]:
    from fastinit._files import read_npz
    from fastinit.experiments.planar import check_weights

    names = ("W1", "b1", "W2", "b2")
    problem = f"--weights {path}: expected an .npz with {', '.join(names)}"
    found = read_npz(path, problem, names)
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"{problem} ({', '.join(missing)} missing)")
    params = [found[name] for name in names]
    try:
        return check_weights(params, hidden, f"--weights {path}", dtype)
    except ValueError as e:
        if "expected shape" not in str(e):  # NaN, a missing array: not about --hidden
            raise
        raise ValueError(f"{e} (--hidden is {hidden})") from None  # a shape for another --hidden


def _run_planar(a: argparse.Namespace) -> Any:
    from fastinit.experiments.planar import run_planar

    inits = _inits(a)
    weights: dict[str, list[Any]] = {}
    for path in a.weights:
        name = path.stem
        if name in weights:
            raise ValueError(f"--weights: two files are named {name!r}; give each run its own name")
        if name.lower() in (spec.name.lower() for spec in inits):
            raise ValueError(
                f"--weights: {str(path)!r} would run as {name!r}, also an init of --inits or "
                "--add; rename the file"
            )
        weights[name] = _load_weights(path, a.hidden, a.dtype)
    return run_planar(
        inits, weights=weights, hidden=a.hidden, iterations=a.iterations, lr=a.lr,
        rng=a.rng, seed=a.seed, dtype=a.dtype, out=a.out, progress=not a.quiet,
    )  # fmt: skip


def _symmetry(sub: Any) -> None:
    from fastinit.experiments import symmetry as s

    run = s.run_symmetry
    p = sub.add_parser(
        "symmetry",
        help="zero and constant inits keep hidden units identical; random ones don't",
        description=s.__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--inits", type=_names, default=_default(run, "inits"),
                   help="comma-separated init specs")  # fmt: skip
    p.add_argument("--hidden", type=_ints, default=_default(run, "hidden"), help="hidden widths")
    p.add_argument("--activation", type=_name, default=_default(run, "activation"),
                   help="hidden activation")  # fmt: skip
    p.add_argument("--iterations", type=_int, default=_default(run, "iterations"), help="steps")
    p.add_argument("--every", type=_int, default=_default(run, "every"),
                   help="checkpoint interval; the last checkpoint is always the last iteration, "
                   "so an interval above the iterations (--iterations) measures the start and "
                   "the end only")  # fmt: skip
    p.add_argument("--lr", type=_float, default=_default(run, "lr"), help="learning rate")
    p.add_argument("--seed", type=_int, default=_default(run, "seed"), help="seed of random inits")
    _dtype(p, _default(run, "dtype"))
    _common(p, "symmetry", trains=True)
    p.set_defaults(run=_run_symmetry, sizes=("--hidden", "--iterations"))


def _run_symmetry(a: argparse.Namespace) -> Any:
    from fastinit.experiments.symmetry import run_symmetry

    return run_symmetry(
        _inits(a), hidden=a.hidden, activation=a.activation, iterations=a.iterations,
        every=a.every, lr=a.lr, seed=a.seed, dtype=a.dtype, out=a.out, progress=not a.quiet,
    )  # fmt: skip


def subcommands() -> tuple[Callable[[Any], None], ...]:
    """The functions that add each subcommand to the parser, in help order.

    Returns
    -------
    tuple of callable
        ``histogram``, ``mnist``, ``planar``, ``symmetry``, ``depth``, ``sweep``
        and ``report``: each takes the parser's subparsers action and adds its
        subcommand to it.
    """
    from fastinit.sweep.cli import add_depth, add_report, add_sweep  # imports this module

    return (_histogram, _mnist, _planar, _symmetry, add_depth, add_sweep, add_report)


def build_parser() -> argparse.ArgumentParser:
    """The ``fastinit`` argument parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
        With ``--version`` and the required subcommands of :func:`subcommands`
        (the chosen one in ``command``; their parsers by name in its attribute
        ``commands``); every option's help states its default (:class:`HelpFormatter`).
    """
    import fastinit

    parser = Parser(
        prog="fastinit",
        description="Reproduce the classic weight-initialization experiments.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fastinit {fastinit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in subcommands():
        add(sub)
    for command in sub.choices.values():  # its options by parameter, for main's errors
        command.set_defaults(option_of=_long_options(command))
    parser.commands = sub.choices  # main's error for an option its command lacks
    return parser


def _long_options(command: argparse.ArgumentParser) -> dict[str, str]:
    """``{"batch_size": "--batch-size", "db": "DB", ...}``: each option of ``command`` (help
    aside) by the parameter it sets, named by its long form; a positional by its metavar,
    as the usage names it."""
    names = {}
    for action in command._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if action.default == argparse.SUPPRESS:  # --help: it sets no parameter
            continue
        if long or not action.option_strings:
            names[action.dest] = long[-1] if long else action.metavar or action.dest
    return names


_PLAIN = {"±": "+-"}  # what an output without the character prints instead


def _plain(error: UnicodeError) -> tuple[str | bytes, int]:
    """Error handler ``fastinit-plain`` of an output that lacks a character: ``+-`` for
    ``±``, a byte its locale could not decode as itself (as ``surrogateescape``),
    anything else as a backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    char, end = error.object[error.start], error.start + 1
    if char in _PLAIN:
        return _PLAIN[char], end
    if "\udc80" <= char <= "\udcff":
        return bytes([ord(char) - 0xDC00]), end
    return char.encode("ascii", "backslashreplace").decode("ascii"), end


codecs.register_error("fastinit-plain", _plain)


@contextmanager
def _plain_stdout() -> Iterator[None]:
    """Standard output in an encoding without ``±`` (ASCII: ``PYTHONIOENCODING=ascii``,
    the C locale with ``PYTHONUTF8=0``) writes what it lacks by :func:`_plain` while the
    block runs, not failing."""
    stream = sys.stdout
    try:
        "".join(_PLAIN).encode(stream.encoding)
        lacks = False
    except UnicodeEncodeError:
        lacks = hasattr(stream, "reconfigure")
    except (AttributeError, LookupError, TypeError):  # None (pythonw), no encoding
        lacks = False
    if not lacks:
        yield
        return
    errors = stream.errors
    stream.reconfigure(errors="fastinit-plain")
    try:
        yield
    finally:
        with suppress(OSError, ValueError):  # a reader that left, a closed stream
            stream.reconfigure(errors=errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastinit`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 on bad arguments (an unusable ``--out``
        or ``--device`` included, and sizes whose buffers cannot be allocated),
        130 if interrupted (nothing written, unless the files were already
        being renamed into place; standard error says what was kept), 143 if
        terminated (SIGTERM: ``kill``, ``timeout``) and 129 if hung up (SIGHUP: the
        terminal closed), each handled as a Ctrl-C while the command runs in the
        main thread, where the default action is in force, 1 if
        standard output was closed before the table was printed
        (``fastinit ... | head``; the files are written).  On a standard output
        whose encoding lacks ``±`` (ASCII), tables print ``+-`` for it.
    """
    with _plain_stdout(), terminate_as_interrupt() as terminated:
        return _main(argv, terminated)


def _bad_numba_threads() -> str:
    """What is wrong with ``NUMBA_NUM_THREADS`` ("" if nothing): numba refuses a count
    below 1 when it is imported (text it cannot read it replaces by the default)."""
    text = os.environ.get("NUMBA_NUM_THREADS", "")
    try:
        count = int(text)
    except ValueError:
        return ""
    return "" if count >= 1 else f"NUMBA_NUM_THREADS: expected an integer in [1, inf], got {text}"


def _stop(terminated: list[int]) -> tuple[str, int]:
    """What stopped the command, and its exit status: a SIGTERM (143), a SIGHUP (129)
    or a Ctrl-C (130)."""
    if not terminated:
        return "interrupted", 130
    word = "terminated" if terminated[0] == signal.SIGTERM else "hung up"
    return word, 128 + terminated[0]


def _main(argv: Sequence[str] | None, terminated: list[int]) -> int:
    """:func:`main`, on a standard output that can write what it prints; ``terminated``:
    the SIGTERMs received (:func:`fastinit._files.terminate_as_interrupt`)."""
    bad_threads = _bad_numba_threads()
    if bad_threads:  # numba's import would raise it, with a traceback through ours
        print(f"fastinit: error: {bad_threads}", file=sys.stderr)
        return 2
    try:
        parser = build_parser()  # imports: a second on a busy host
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # the command's own parser says so, with its usage
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    except KeyboardInterrupt:
        word, status = _stop(terminated)
        print(f"fastinit: {word}; nothing written", file=sys.stderr)
        return status
    with _warnings_as_notices(args.command):
        return _run(args, parser, terminated)


@contextmanager
def _warnings_as_notices(command: str) -> Iterator[None]:
    """While the block runs, a warning prints as the command's own notice
    (``fastinit planar: warning: ...``), not as Python's, with a path and a source line
    of fastinit's; which warnings show is left to the filters."""

    def show(message: Any, category: Any, filename: Any, lineno: Any, *rest: Any) -> None:
        print(f"fastinit {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():  # puts Python's printer back afterwards
        warnings.showwarning = show
        yield


def _run(args: argparse.Namespace, parser: Any, terminated: list[int]) -> int:
    """:func:`_main` once the arguments are parsed: run the command, print its result."""
    from fastinit._files import deferred_interrupt
    from fastinit.experiments._common import on_prepared, remove_empty

    out = getattr(args, "out", None)
    created: list[Path] = []
    before = _committed(out, args.command)
    try:
        with deferred_interrupt():  # a Ctrl-C as --out is made: `created` says it was
            created = _prepare_out(out, args.command)  # before computing
        with on_prepared(lambda: _say_replacing(args, before)):  # once the arguments are good
            result = args.run(args)
    # OSError: a missing or unusable file; MemoryError: fit's, naming iterations or batch_size
    except (ValueError, TypeError, OSError, MemoryError) as e:
        remove_empty(created)
        message = _with_options(str(e), args, isinstance(e, MemoryError))
        if getattr(e, "errno", None) in _WRITE_ERRORS and out is not None:  # a full disk
            removed = bool(created) and not created[0].exists()
            message += f"; {_interrupted(args, before, removed)}"
        parser.exit(2, f"fastinit {args.command}: error: {message}{_memory_hint(e, args)}\n")
    except KeyboardInterrupt:
        return _stopped(args, before, created, terminated)
    try:
        _print_result(args, result)
    except BrokenPipeError:  # `fastinit ... | head`: the reader left; the files are written
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        return 1
    except KeyboardInterrupt:  # the files are written: the message says so
        return _stopped(args, before, created, terminated)
    return 0


def _say_replacing(args: argparse.Namespace, before: tuple[int, int] | None) -> None:
    """Say on standard error that ``--out`` holds an earlier run's files, if it does."""
    if before is not None:
        print(
            f"fastinit {args.command}: {str(args.out)!r} holds an earlier run's files; this "
            "run replaces them when it ends (Ctrl-C before then keeps them)",
            file=sys.stderr,
        )


def _stopped(
    args: argparse.Namespace,
    before: tuple[int, int] | None,
    created: list[Path],
    terminated: list[int],
) -> int:
    """After a Ctrl-C or a SIGTERM (``terminated``): remove the directories made for the
    run if empty, say what was kept; the exit status (:func:`_stop`).  More Ctrl-Cs or
    SIGTERMs meanwhile (a double press) are ignored: the command is stopping already."""
    from fastinit.experiments import _common

    with _ctrl_c_ignored():
        _common.remove_empty(created)
        removed = bool(created) and not created[0].exists()
        kept = _interrupted(args, before, removed)
        word, status = _stop(terminated)
        print(f"fastinit {args.command}: {word}; {kept}", file=sys.stderr)
    return status


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ignore SIGINT, SIGTERM and SIGHUP inside the block (main thread only), then put their
    handlers back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, *STOP_SIGNALS)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def _print_result(args: argparse.Namespace, result: Any) -> None:
    """Print the run's table and where its files are."""
    footer = getattr(result, "footer", None)
    print(result.table())
    print(footer if footer is not None else f"\nwrote {args.out}/ (figures, summary.json, CSV)")
    sys.stdout.flush()


_NAMES = re.compile(r"^([a-z][a-z_]*(?:, [a-z][a-z_]*)*): ")  # "iterations, batch_size: ..."
_NAME_AND_VALUE = re.compile(r"^([a-z][a-z_]*) (?=')")  # "out '/runs/a': ..."


# a file system that took no more of the run's files: --out is then as it was (the staging)
_WRITE_ERRORS = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EFBIG", "EIO", "EROFS")
                 if hasattr(errno, n)}  # fmt: skip


def _with_options(message: str, args: argparse.Namespace, sizes: bool = False) -> str:
    """An experiment's error as the command line says it: the arguments it names first
    (``batch_size: ...``) named by their options (``--batch-size: ...``), where they have one.
    ``sizes``: the names are what to reduce (a MemoryError); those without an option (the
    planar data's ``m``, 400 on the command line) are left out where others remain."""
    m = _NAME_AND_VALUE.match(message)
    if m is not None and m.group(1) in args.option_of:
        return f"{args.option_of[m.group(1)]} {message[m.end() :]}"
    m = _NAMES.match(message)
    if m is None:
        return message
    names = m.group(1).split(", ")
    if sizes and any(name in args.option_of for name in names):
        names = [name for name in names if name in args.option_of]
    if not all(name in args.option_of for name in names):
        return message
    return f"{', '.join(args.option_of[name] for name in names)}: {message[m.end() :]}"


def _memory_hint(error: BaseException, args: argparse.Namespace) -> str:
    """For NumPy's "Unable to allocate ...", which names no option, the options that size
    the run (fastinit's own MemoryErrors name what to reduce already)."""
    sizes = getattr(args, "sizes", ())
    if not isinstance(error, MemoryError) or not sizes or "Unable to allocate" not in str(error):
        return ""
    return f"; too large for this machine's memory: reduce {', '.join(sizes[:-1])} or {sizes[-1]}"


if __name__ == "__main__":
    sys.exit(main())
