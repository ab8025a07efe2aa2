"""Every public function and method carries type hints and a numpydoc docstring.

The standard the package holds itself to (README, "Development"): a docstring,
a hint on every parameter and on the return value, and a ``Parameters``
section naming exactly the parameters (a class documents its constructor's in
its own docstring, a dataclass its fields in ``Attributes``).  Public means: a
name without a leading underscore, defined in a module whose dotted path has no
part with one.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator

import pytest

import fastinit

_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.M)
_ENTRY = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")


def _public_modules() -> list[str]:
    names = ["fastinit"]
    for info in pkgutil.walk_packages(fastinit.__path__, "fastinit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _documented_parameters(doc: str, heading: str = "Parameters") -> list[str] | None:
    """Names listed in the section ``heading``, in order (None without one)."""
    sections = list(_SECTION.finditer(doc))
    for i, match in enumerate(sections):
        if match.group(1) != heading:
            continue
        end = sections[i + 1].start() if i + 1 < len(sections) else len(doc)
        names = []
        for line in doc[match.end() : end].splitlines():
            entry = _ENTRY.match(line)  # getdoc dedents: entries start in column 0
            if entry and line == line.lstrip():
                names.extend(n.strip().lstrip("*") for n in entry.group(1).split(","))
        return names
    return None


def _parameters(function: Callable) -> list[str]:
    skip = {"self", "cls"}
    return [p for p in inspect.signature(function).parameters if p not in skip]


def _public_callables() -> Iterator[tuple[str, Callable, object]]:
    """``(qualified name, function, owner class or None)`` for every public callable."""
    seen = set()
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
                continue
            members = [(name, obj, None)]
            if inspect.isclass(obj):
                members = [(name, obj.__init__, obj)]
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    members.append((f"{name}.{attr}", member, None))
            for qualname, member, owner in members:
                # numba dispatchers; a native_function wraps its own (__wrapped__)
                function = inspect.unwrap(getattr(member, "py_func", member))
                if not inspect.isfunction(function) or id(function) in seen:
                    continue
                if owner is not None and function.__qualname__ != f"{owner.__name__}.__init__":
                    continue  # an inherited or generated constructor: documented where defined
                seen.add(id(function))
                yield f"{module_name}.{qualname}", function, owner


def _problems(qualname: str, function: Callable, owner: object) -> list[str]:
    problems = []
    parameters = _parameters(function)
    hints = function.__annotations__
    unhinted = [p for p in parameters if p not in hints]
    if unhinted:
        problems.append(f"{qualname}: no type hint for {unhinted}")
    if "return" not in hints:
        problems.append(f"{qualname}: no return type hint")
    doc = inspect.getdoc(owner if owner is not None else function) or ""
    if not doc.strip():
        return [*problems, f"{qualname}: no docstring"]
    documented = _documented_parameters(doc)
    ordered = documented is not None  # Attributes may group fields by meaning
    if owner is not None and documented is None:  # a dataclass documents its fields
        documented = _documented_parameters(doc, "Attributes")
    if parameters and documented is None:
        problems.append(f"{qualname}: no Parameters section for {parameters}")
    elif documented is not None:
        names = [p.lstrip("*") for p in parameters]
        if set(names) - set(documented):
            missing = sorted(set(names) - set(documented))
            problems.append(f"{qualname}: parameters not documented {missing}")
        if set(documented) - set(names):
            problems.append(f"{qualname}: documents unknown {sorted(set(documented) - set(names))}")
        listed = [n for n in documented if n in names]
        if ordered and listed != [n for n in names if n in listed]:
            problems.append(f"{qualname}: parameters documented in the order {listed}")
    return problems


def test_public_api_is_documented_and_hinted() -> None:
    found = list(_public_callables())
    assert len(found) > 250  # the walk reached every module (327 public callables today)
    problems = [p for args in found for p in _problems(*args)]
    assert not problems, "\n".join(problems)


def _good(x: int, y: float = 1.0) -> float:
    """Add.

    Parameters
    ----------
    x : int
    y : float, optional

    Returns
    -------
    float
    """
    return x + y


def _no_hint(x, y: float) -> float:
    """Add.

    Parameters
    ----------
    x, y : float
    """
    return x + y


def _stale(x: int) -> int:
    """Identity.

    Parameters
    ----------
    x : int
        The value (renamed from ``value``).
    value : int
        Gone.

    Returns
    -------
    int
    """
    return x


def _undocumented(x: int) -> int:
    """Identity, no sections."""
    return x


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (_good, []),
        (_no_hint, ["no type hint for ['x']"]),
        (_stale, ["documents unknown ['value']"]),
        (_undocumented, ["no Parameters section for ['x']"]),
    ],
)
def test_the_checker_catches_each_problem(function: Callable, expected: list[str]) -> None:
    problems = _problems("f", function, None)
    assert [p.removeprefix("f: ") for p in problems] == expected
