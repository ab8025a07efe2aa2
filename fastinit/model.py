"""``MLP``: a multi-layer perceptron whose training runs in one compiled loop.

Parameters of all layers share one flat array (see :mod:`fastinit.dense`);
``model.weights`` and ``model.biases`` are list-like views into it, weights
shaped ``(fan_in, fan_out)`` (``Z = X @ W + b``).  Assigning to them validates
the shape and copies the values into the model dtype, so weights made
elsewhere (e.g. a PyTorch ``Linear.weight.T``) can be loaded.

Initialization is reproducible per layer: layer ``k``'s weights are drawn from
stream ``2 k`` and its biases from stream ``2 k + 1`` of the key ``seed`` (see
:mod:`fastinit.random`), so the same seed gives the same layer whatever else the
network contains.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from fastinit import activations as _act
from fastinit import init as _init
from fastinit import losses as _losses
from fastinit import train as _train
from fastinit._cuda import check_device, cuda_module, is_device_array, memory_error, to_host
from fastinit._files import read_npz, replacing
from fastinit._validate import (
    all_finite,
    as_array,
    cast_finite,
    check_dtype,
    check_int,
    check_path,
    check_seed,
    suggest,
    value_errors,
)
from fastinit.dense import LAYER_COLUMNS, forward_rows, ops_table, with_kernels
from fastinit.dense import work_size as _work_size
from fastinit.train import History

__all__ = ["MLP", "History"]

_ALIGN = 16  # elements: each weight matrix starts on a 64-byte boundary (float32)
_FORWARD_BLOCK = 1024  # rows per block in forward/predict/evaluate
_FORMAT = "fastinit.MLP/2"  # 2: the seed saved (a file of format 1 loads with seed 0)
_FILE_KEYS = ("format", "sizes", "activations", "activation_params", "dtype")  # + W<k>, b<k>
_FORMAT_KEYS = {"fastinit.MLP/1": _FILE_KEYS, _FORMAT: (*_FILE_KEYS, "seed")}


class _LayerIndexError(IndexError, ValueError):
    """A layer index out of range: an IndexError, as from a list (and a ValueError,
    what fastinit raised before, as NumPy's ``AxisError`` is both)."""


class LayerArrays(Sequence):
    """List-like access to per-layer views of a model's parameters.

    ``arrays[k]`` is a live view; ``arrays[k] = value`` checks the shape and
    that the values are finite, and copies ``value`` into the model (cast to
    its dtype); ``arrays[i:j] = values`` assigns several layers, all or none of
    them.  A layer index out of range raises IndexError, as a list does, and
    ``model.weights + model.biases`` is a list of the views.

    Parameters
    ----------
    model : MLP
        The model whose parameters are accessed.
    kind : {"weights", "biases"}
        Which arrays: the weight matrices ``(fan_in, fan_out)`` or the bias
        vectors ``(fan_out,)``.
    """

    def __init__(self, model: MLP, kind: str) -> None:
        self._model = model
        self._kind = kind

    def __len__(self) -> int:
        return len(self._model.sizes) - 1

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        return self._model._view(self._kind, k)

    def __setitem__(self, k: int | slice, value: Any) -> None:
        if isinstance(k, slice):  # several layers at once, all or nothing
            self._model._assign_many(self._kind, range(len(self))[k], value)
        else:
            self._model._assign(self._kind, k, value)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def __add__(self, other: Any) -> list[np.ndarray]:  # m.weights + m.biases, as lists add
        if not isinstance(other, (LayerArrays, list, tuple)):
            return NotImplemented
        return [*self, *other]

    def __radd__(self, other: Any) -> list[np.ndarray]:
        if not isinstance(other, (list, tuple)):
            return NotImplemented
        return [*other, *self]

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self)
        return f"<{len(self)} {self._kind} arrays: {shapes}>"


def _check_keywords(given: dict, target: Any, caller: str) -> None:
    """Refuse a keyword of ``given`` that ``target``'s keyword-only parameters lack, as
    Python would, but naming ``caller`` (which passes them on), with a likely meant one."""
    taken = [
        p.name for p in inspect.signature(target).parameters.values() if p.kind == p.KEYWORD_ONLY
    ]
    for name in given:
        if name not in taken:
            hint = suggest(name, taken) or f"; it takes {', '.join(sorted(taken))}"
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}{hint}")


def _slice_text(layers: range) -> str:
    """``range(1, 3)`` as ``1:3`` (with ``:step`` when not 1), for messages."""
    text = f"{layers.start}:{layers.stop}"
    return text if layers.step == 1 else f"{text}:{layers.step}"


def _per_layer(spec: Any, n: int, name: str, per: str = "layer") -> list:
    """A per-layer list from one spec or a list of ``n`` specs (one per ``per``)."""
    if isinstance(spec, list):
        if len(spec) != n:
            raise ValueError(f"{name}: expected {n} entries (one per {per}), got {len(spec)}")
        return list(spec)
    return [spec] * n


def _activation(spec: Any) -> _act.Activation:
    """:func:`fastinit.activations.get`, with the constructor's ValueError for any bad spec."""
    with value_errors():  # a parameter of the wrong type
        return _act.get(spec, "activation")


def _is_pair(spec: Any) -> bool:
    return isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)


def _init_values(spec: Any, shape: tuple, seed: int, stream: int, dtype: np.dtype, name: str):
    """Values for one parameter array from an initializer spec or an explicit array."""
    if isinstance(spec, np.ndarray):
        return spec
    if is_device_array(spec):  # e.g. init.he_normal(..., device="cuda"), as assignment takes
        return to_host(spec)
    if _is_array_like(spec):  # a torch tensor, a DataFrame: as assignment takes them
        return spec
    if isinstance(spec, list):  # nested lists of numbers: an array, as assignment takes them
        values = _numbers(spec)
        if values is not None:
            return values
    kwargs: dict = {}
    if _is_pair(spec):
        spec, kwargs = spec
    if not (isinstance(spec, str) or callable(spec)):
        raise ValueError(
            f"{name}: expected a name, callable, (name, kwargs) or array, got {spec!r}"
        )
    try:
        fn = _init.get(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {err}") from None
    reserved = sorted(set(kwargs) & {"seed", "stream", "dtype", "out"})
    if reserved:
        raise ValueError(
            f"{name}: expected initializer parameters without {', '.join(map(repr, reserved))} "
            "(the model passes its seed, the layer's stream and its dtype)"
        )
    if not isinstance(spec, str):  # the caller's own function: its errors are its own
        _check_callable(fn, shape, kwargs, name)
        return fn(shape, seed=seed, stream=stream, dtype=dtype.name, **kwargs)
    try:  # a fastinit initializer: a bad parameter is a bad argument of the constructor
        return fn(shape, seed=seed, stream=stream, dtype=dtype.name, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {spec!r}: {err}") from None


def _check_callable(fn: Any, shape: tuple, kwargs: dict, name: str) -> None:
    """A ValueError naming ``name`` if ``fn`` cannot be called as an initializer is."""
    try:
        signature = inspect.signature(fn, follow_wrapped=False)  # an adapter's own
    except (TypeError, ValueError):  # a builtin without one: the call itself will tell
        return
    try:
        signature.bind(shape, seed=0, stream=0, dtype="float32", **kwargs)
    except TypeError as err:
        raise ValueError(
            f"{name}: a callable initializer is called as f(shape, *, seed, stream, dtype"
            f"{''.join(f', {k}' for k in kwargs)}) (the signature of fastinit.init's, which "
            f"may also take **kwargs); {fn!r} cannot take that: {err}"
        ) from None


def _numbers(spec: list) -> np.ndarray | None:
    """``spec`` as an array if it is (nested lists of) numbers, else None."""
    try:
        values = np.asarray(spec)
    except (TypeError, ValueError):  # ragged lists
        return None
    return values if values.dtype.kind in "biuf" else None


def _is_array_like(spec: Any) -> bool:
    """Whether NumPy converts ``spec`` through one of its array protocols or the buffer
    protocol (a memoryview, an array.array; not a list, nor bytes: a name's spelling)."""
    protocols = ("__array__", "__array_interface__", "__array_struct__")
    if callable(spec) or isinstance(spec, (str, bytes, bytearray)):  # np.str_: a name too
        return False
    if any(hasattr(spec, p) for p in protocols):
        return True
    try:
        memoryview(spec)
    except TypeError:
        return False
    return True


def _shape_error(name: str, expected: tuple, found: tuple, verb: str = "got") -> str:
    """``name: expected shape ..., got ...``, pointing at a transposed weight matrix."""
    text = f"{name}: expected shape {expected}, {verb} {found}"
    if len(expected) == 2 and found == expected[::-1]:
        text += (" (the transpose: weights are (fan_in, fan_out), as Keras kernels; a "
                 "PyTorch Linear.weight is (out, in): pass its .T)")  # fmt: skip
    return text


def _is_path(spec: Any) -> bool:
    """``init`` names a file: a PathLike, or a str ending in .npz or holding a separator."""
    if isinstance(spec, os.PathLike):
        return True
    if not isinstance(spec, str):
        return False
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return spec.lower().endswith(".npz") or any(c in spec for c in seps)


def _file_layer(data: dict, kinds: tuple[str, ...], k: int, path: str) -> np.ndarray | None:
    found = [f"{kind}{k}" for kind in kinds if f"{kind}{k}" in data]
    if len(found) > 1:
        raise ValueError(f"init: {path} has both {found[0]!r} and {found[1]!r}")
    return data[found[0]] if found else None


def _arrays_from_file(path: Any, sizes: tuple[int, ...]) -> tuple[list, list | None]:
    """Per-layer weights (and biases, if the file has them all) from an ``.npz`` file."""
    path = _npz_path(path)
    name = os.fspath(path)
    n_layers = len(sizes) - 1
    # only the layers' arrays are read: other keys of another tool's file may be anything
    wanted = {
        f"{kind}{k}" for kind in ("W", "weights_", "b", "biases_") for k in range(n_layers + 1)
    }
    data = read_npz(path, f"init: {name} is not a readable .npz file", wanted)
    weights, biases = [], []
    for k in range(n_layers):
        expected = (sizes[k], sizes[k + 1])
        w = _file_layer(data, ("W", "weights_"), k, name)
        if w is None:
            raise ValueError(
                f"init: {name} has no weights for layer {k} (key 'W{k}' or 'weights_{k}')"
            )
        if w.shape != expected:
            raise ValueError(_shape_error(f"init: layer {k} weights in {name}", expected,
                                          w.shape, "found"))  # fmt: skip
        b = _file_layer(data, ("b", "biases_"), k, name)
        if b is not None and b.shape != expected[1:]:
            raise ValueError(
                f"init: layer {k} biases in {name}: expected shape {expected[1:]}, found {b.shape}"
            )
        weights.append(w)
        biases.append(b)
    if _file_layer(data, ("W", "weights_"), n_layers, name) is not None:
        raise ValueError(f"init: {name} has more than the model's {n_layers} layers")
    present = [b is not None for b in biases]
    if any(present) and not all(present):
        missing = present.index(False)
        raise ValueError(f"init: {name} has biases for some layers but not for layer {missing}")
    return weights, (biases if all(present) else None)


def _parameter_count(sizes: Sequence[int]) -> int:
    """The weights and biases of a network of layer widths ``sizes``."""
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def _too_large(
    sizes: Sequence[int], dtype: str, nbytes: int, where: str = "memory", remedy: str = ""
) -> MemoryError:
    """The error for parameters that do not fit in ``where``, naming ``sizes``."""
    return MemoryError(
        f"sizes: the model's {_parameter_count(sizes)} {dtype} parameters ({nbytes} bytes) "
        f"do not fit in {where}; use smaller layers{remedy}"
    )


def _parameters_to_device(params: np.ndarray, sizes: list[int], dtype: str) -> Any:
    """``params`` copied to the device; a MemoryError naming ``sizes`` where it cannot hold them."""
    where, remedy = "the device's memory", ", or device='cpu'"
    with memory_error(lambda: _too_large(sizes, dtype, params.nbytes, where, remedy)):
        return cuda_module().to_device(params)


class MLP:
    """A fully connected network: hidden layers with activations, linear output (logits).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths including input and output, e.g. ``[784, 100, 100, 10]``.
    activation : str, (name, params) pair, Activation, or list of them
        One for all hidden layers or one per hidden layer (see
        :mod:`fastinit.activations`); the output layer is the identity.
    init : str, callable, (name, kwargs) pair, array, list of them, or a path
        Weight initializer (a :mod:`fastinit.init` name, or a callable taking what
        they take, ``f(shape, *, seed, stream, dtype, **params)``) for all
        layers or per layer (another model's ``weights``, too); an array gives
        the weights explicitly, copied and cast to ``dtype`` (any object NumPy
        converts: a CPU torch tensor too, but a ``Linear.weight`` is ``(out,
        in)``: pass its ``.T``; in a per-layer list, nested lists of numbers).  A path (a
        ``PathLike``, or a str ending in ``.npz`` or containing a path
        separator) loads pretrained weights from an ``.npz`` file, read with
        ``allow_pickle=False``: a file written by :meth:`save` or any archive
        with one weight array per layer named ``W0, W1, ...`` (or ``weights_0,
        weights_1, ...``), shaped ``(fan_in, fan_out)``, and optionally biases
        ``b0, b1, ...`` (or ``biases_0, ...``).  Shapes are checked layer by
        layer (the error names the layer, the expected and the found shape);
        values are cast to ``dtype``.  When the file holds biases for every
        layer they are loaded too and ``bias_init`` is ignored.  Only the
        arrays are read: sizes and activations come from the arguments.
    bias_init : same forms as ``init`` (no path)
        Bias initializer (default ``"zeros"``).
    seed : int
        Key of the initializers; layer ``k`` uses streams ``2k`` (W), ``2k+1`` (b).
    dtype : {"float32", "float64"}
        Parameter and computation dtype.
    device : {"cpu", "cuda"}
        Where the parameters live and the model computes.  A ``"cuda"`` model is
        initialised exactly as on the CPU (same values), then holds its
        parameters as one flat device array; ``forward``/``predict``/
        ``evaluate``/``loss_and_grads``/``fit`` run on the device
        (:mod:`fastinit.train_cuda`) and return host NumPy arrays.  Its
        ``weights``/``biases`` return host copies (not live views) and assigning
        to them copies the values to the device.  Without a usable GPU,
        ``"cuda"`` raises RuntimeError saying why.  See :meth:`to`.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: Any = "relu",
        init: Any = "he_normal",
        bias_init: Any = "zeros",
        seed: int = 0,
        dtype: Any = "float32",
        device: str = "cpu",
    ) -> None:
        device = check_device(device, "device")
        self._dparams = None  # the device copy of _params (device="cuda"), else None
        self.dtype = _check_dtype(dtype)
        self.sizes = _check_sizes(sizes)
        n_layers = len(self.sizes) - 1
        if not isinstance(activation, list):  # checked even with no hidden layer to use it
            _activation(activation)
        hidden = _per_layer(activation, n_layers - 1, "activation", "hidden layer")
        acts = [_activation(a) for a in hidden] + [_act.get("identity")]
        with value_errors():  # the constructor's rule: ValueError for any bad argument
            self.seed = check_seed(seed, "seed")
        self._allocate(acts)
        # another model's weights/biases: list-like, one array per layer
        init, bias_init = (list(s) if isinstance(s, LayerArrays) else s for s in (init, bias_init))
        source = file_biases = None  # the file's name, in the errors of its arrays
        if _is_path(init):
            source = os.fspath(_npz_path(init))
            init, file_biases = _arrays_from_file(init, self.sizes)
            bias_init = bias_init if file_biases is None else file_biases
        inits = _per_layer(init, n_layers, "init")
        bias_inits = _per_layer(bias_init, n_layers, "bias_init")
        w_name = "init[{}]" if isinstance(init, list) else "init"  # a list: name the layer
        b_name = "bias_init[{}]" if isinstance(bias_init, list) else "bias_init"
        with self._host_memory():  # each draw is as large as its part of the buffer
            for k in range(n_layers):
                w_shape, b_shape = self._shape("weights", k), self._shape("biases", k)
                w = _init_values(inits[k], w_shape, seed, 2 * k, self.dtype, w_name.format(k))
                w_source = source and f"init: layer {k} weights in {source}"
                self._assign("weights", k, w, w_source or w_name.format(k))
                b = _init_values(bias_inits[k], b_shape, seed, 2 * k + 1, self.dtype,
                                 b_name.format(k))  # fmt: skip
                b_source = file_biases is not None and f"init: layer {k} biases in {source}"
                self._assign("biases", k, b, b_source or b_name.format(k))
        self.to(device)

    def _host_memory(self) -> contextlib.AbstractContextManager:
        """:func:`memory_error` naming ``sizes``, for the parameters' host allocations."""
        nbytes = _parameter_count(self.sizes) * self.dtype.itemsize
        return memory_error(lambda: _too_large(self.sizes, self.dtype.name, nbytes))

    # ------------------------------------------------------------------------- layout
    def _allocate(self, acts: list) -> None:
        rows, off = [], 0
        for k, act in enumerate(acts):
            fi, fo = self.sizes[k], self.sizes[k + 1]
            w_off = off
            b_off = w_off + fi * fo
            off = -(-(b_off + fo) // _ALIGN) * _ALIGN
            rows.append((fi, fo, w_off, b_off, act.code, 0))  # kernels: per run
        self._layers = np.array(rows, dtype=np.int64).reshape(-1, LAYER_COLUMNS)
        self._act_params = np.array([a.values for a in acts], dtype=np.float64).reshape(-1, 2)
        self._activations = acts
        with self._host_memory():
            self._params = _aligned_zeros(off, self.dtype)

    def _layer(self, k: Any) -> int:
        """Layer index ``k`` (negative counts from the end) checked and made non-negative."""
        n = len(self._layers)
        try:
            return check_int(k, "layer", low=-n, high=n - 1) % n
        except ValueError as err:  # out of range: what a list raises
            raise _LayerIndexError(str(err)) from None

    def _shape(self, kind: str, k: int) -> tuple[int, ...]:
        """Shape of layer ``k``'s (a checked index) weights or biases, as :meth:`_split_one`'s."""
        fi, fo = (int(v) for v in self._layers[k, :2])
        return (fi, fo) if kind == "weights" else (fo,)

    def _view(self, kind: str, k: Any) -> np.ndarray:
        view = self._split_one(self._params, kind, self._layer(k))
        return view if self._dparams is None else view.copy()  # device: a host copy

    def _split_one(self, flat: np.ndarray, kind: str, k: int) -> np.ndarray:
        fi, fo, w_off, b_off = (int(v) for v in self._layers[k, :4])
        if kind == "weights":
            return flat[w_off : w_off + fi * fo].reshape(fi, fo)
        return flat[b_off : b_off + fo]

    def _split(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-layer ``(W, b)`` views of a flat array in the parameter layout."""
        return [
            (self._split_one(flat, "weights", k), self._split_one(flat, "biases", k))
            for k in range(len(self._layers))
        ]

    def _assign(self, kind: str, k: Any, value: Any, name: str | None = None) -> None:
        """``kind[k] = value``, checked; errors name ``name`` (default ``kind[k]``)."""
        index = self._layer(k)
        shape = self._shape(kind, index)
        name = name or f"{kind}[{k}]"
        value = as_array(value, name, f"an array of shape {shape}")
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected a real-valued array, got dtype {value.dtype}")
        if value.shape != shape:
            raise ValueError(_shape_error(name, shape, value.shape))
        value = cast_finite(value, self.dtype, name)
        self._split_one(self._params, kind, index)[...] = value
        self._push()

    # ------------------------------------------------------------------------- attributes
    @property
    def weights(self) -> LayerArrays:
        """Per-layer weight matrices ``(fan_in, fan_out)`` (live views; assignable)."""
        return LayerArrays(self, "weights")

    @weights.setter
    def weights(self, values: Sequence[Any]) -> None:
        self._assign_all("weights", values)

    @property
    def biases(self) -> LayerArrays:
        """Per-layer bias vectors ``(fan_out,)`` (live views; assignable)."""
        return LayerArrays(self, "biases")

    @biases.setter
    def biases(self, values: Sequence[Any]) -> None:
        self._assign_all("biases", values)

    def _assign_all(self, kind: str, values: Sequence[Any]) -> None:
        self._assign_many(kind, range(len(self._layers)), values)

    def _assign_many(self, kind: str, layers: range, values: Sequence[Any]) -> None:
        name = kind if len(layers) == len(self._layers) else f"{kind}[{_slice_text(layers)}]"
        try:
            values = list(values)
        except TypeError:  # not iterable (None, a number)
            raise ValueError(
                f"{name}: expected a sequence of {len(layers)} arrays (one per layer), "
                f"got {values!r}"
            ) from None
        if len(values) != len(layers):
            raise ValueError(f"{name}: expected {len(layers)} arrays, got {len(values)}")
        # values may be this model's own views (a swap of layers): copy those first,
        # or an earlier assignment would overwrite a later value before it is read
        values = [
            as_array(v, f"{kind}[{k}]", f"an array of shape {self._shape(kind, k)}")
            for k, v in zip(layers, values, strict=True)
        ]
        values = [np.array(v) if np.may_share_memory(v, self._params) else v for v in values]
        with self._all_or_nothing():
            for k, v in zip(layers, values, strict=True):
                self._assign(kind, k, v)

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Restore the parameters (host and device) if the block raises, Ctrl-C included."""
        backup = self._params.copy()
        try:
            yield
        except BaseException:
            self._params[:] = backup
            self._push()
            raise

    # ------------------------------------------------------------------------- device
    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"``: where the parameters live and the model computes."""
        return "cpu" if self._dparams is None else "cuda"

    def to(self, device: str) -> MLP:
        """Move the model to ``device`` in place and return it (``self``, not a copy).

        ``"cuda"`` copies the parameters to one flat device array; ``"cpu"``
        drops it (the host array is kept in sync with the device after every
        fit and assignment, so nothing is copied back).  Views of the weights
        taken on the CPU (``w = model.weights[0]``) stop being views on the
        move to ``"cuda"``: writing into them no longer changes the model.  Optimizer state lives
        in the optimizer objects and follows the model either way.

        Parameters
        ----------
        device : {"cpu", "cuda"}
            Where the parameters are to live and the model to compute.

        Returns
        -------
        MLP
            ``self``.

        Raises
        ------
        ValueError
            For a device other than ``"cpu"``/``"cuda"``.
        RuntimeError
            For ``"cuda"`` without a usable GPU (see :func:`fastinit._cuda.cuda_module`).
        MemoryError
            Naming ``sizes``, when the device cannot hold the parameters (the model
            stays on the CPU).
        """
        device = check_device(device, "device")
        if device == "cpu":
            self._dparams = None
        elif self._dparams is None:
            self._dparams = _parameters_to_device(self._params, self.sizes, self.dtype)
            # views handed out on the CPU must not write into the mirror the device
            # no longer reads: they keep the old array, the model a copy of it
            host = _aligned_zeros(self._params.size, self.dtype)
            host[:] = self._params
            self._params = host
        return self

    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle (and deep-copy): the host parameters and where they live.

        Returns
        -------
        dict
            The attributes, with the device array replaced by the device's name
            (the host array mirrors it).
        """
        state = self.__dict__.copy()
        state["_dparams"] = self.device
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled model, on the device it was pickled from.

        Parameters
        ----------
        state : dict
            As from :meth:`__getstate__`.

        Raises
        ------
        RuntimeError
            For a model pickled on ``"cuda"`` without a usable GPU here (load it
            where there is one, move it with ``.to("cpu")``, and pickle again).
        """
        device = state["_dparams"]
        self.__dict__.update(state, _dparams=None)
        host = _aligned_zeros(self._params.size, self.dtype)  # pickling loses the alignment
        host[:] = self._params
        self._params = host
        if device == "cuda":
            try:
                self.to("cuda")
            except RuntimeError as err:
                raise RuntimeError(
                    f"{err} This model was pickled on 'cuda': load it where there is a GPU, "
                    "move it with .to('cpu') and pickle it again."
                ) from err

    def _push(self) -> None:
        """Copy the host parameters to the device copy, if there is one."""
        if self._dparams is not None:
            self._dparams.copy_to_device(self._params)

    @property
    def activations(self) -> list[_act.Activation]:
        """Activation of every layer (the last is the identity)."""
        return list(self._activations)

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return int(sum(fi * fo + fo for fi, fo in zip(self.sizes, self.sizes[1:], strict=False)))

    def __repr__(self) -> str:
        def text(a: Any) -> str:
            params = ", ".join(f"{k}={v!r}" for k, v in a.params.items())
            return f"{a.name}({params})" if params else a.name

        acts = ", ".join(text(a) for a in self._activations[:-1])
        device = "" if self.device == "cpu" else f", device={self.device!r}"
        dtype = self.dtype.name
        return f"MLP(sizes={list(self.sizes)}, activation=[{acts}], dtype={dtype!r}{device})"

    # ------------------------------------------------------------------------- inference
    def forward(self, X: Any) -> np.ndarray:
        """Logits ``(n, sizes[-1])`` of the rows of ``X`` (cast once to the model dtype).

        Parameters
        ----------
        X : array_like, shape (n, sizes[0])
            Inputs, real-valued and finite, n >= 1; cast once to the model dtype
            unless already in it (:func:`fastinit.train.prepare_x`).

        Returns
        -------
        numpy.ndarray of the model dtype, (n, sizes[-1])
            The network's outputs (no final activation); a host array on either
            device.
        """
        if self._dparams is not None:  # forward_cuda checks X (prepare_x) as below
            from fastinit.train_cuda import forward_cuda

            return forward_cuda(self, X)
        X = _train.prepare_x(self, X)
        block = min(X.shape[0], _FORWARD_BLOCK)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        xbuf = np.empty((block, X.shape[1]), self.dtype)
        work = np.empty(_work_size(self._layers, block), self.dtype)
        net = (self._params, with_kernels(self._layers, self.dtype), self._act_params)
        forward_rows(ops_table(self.dtype), net, 0, len(self._layers), X, out, xbuf, work)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class indices: the argmax of the logits, or ``logit > 0`` for one output unit.

        Parameters
        ----------
        X : array_like, shape (n, sizes[0])
            As for :meth:`forward`.

        Returns
        -------
        numpy.ndarray of int64, (n,)
            The predicted class of every row (0 or 1 for one output unit).  A
            row whose logits hold NaN (parameters that are not finite, or an
            overflow inside the network) has no class; it gets NumPy's
            ``argmax`` (the first NaN's index), or 0 for one output unit, and
            :meth:`evaluate` reports a NaN accuracy.
        """
        return _classes(self.forward(X))

    def evaluate(self, X: Any, y: Any, loss: str = "softmax_cross_entropy") -> dict[str, float]:
        """Loss and accuracy on a data set.

        Accuracy is the fraction of rows whose :meth:`predict` equals the label
        (softmax CE: the class; sigmoid CE: ``y >= 0.5``; mse: the argmax of the
        target row, or NaN for a single output unit).  It is NaN, like the loss,
        when a logit is NaN (parameters that are not finite, or an overflow
        inside the network): such a row has no predicted class.

        Parameters
        ----------
        X : array_like, shape (n, sizes[0])
            Inputs, real-valued and finite, n >= 1; cast once to the model dtype
            unless already in it (:func:`fastinit.train.prepare_x`).
        y : array_like
            Targets for ``loss`` (see :func:`fastinit.losses.prepare_targets`):
            softmax cross-entropy: integer labels (n,) or one-hot (n, sizes[-1]);
            sigmoid cross-entropy: (n,) or (n, 1) values in [0, 1]; mse:
            (n, sizes[-1]), or (n,) for one output unit.
        loss : str, default "softmax_cross_entropy"
            ``"softmax_cross_entropy"``, ``"sigmoid_cross_entropy"`` or ``"mse"``
            (:func:`fastinit.losses.get`).

        Returns
        -------
        dict
            ``{"loss": float, "accuracy": float}``.
        """
        spec = _losses.get(loss)
        X = _train.prepare_x(self, X)
        y_int, y_float = _losses.prepare_targets(spec, y, X.shape[0], self.sizes[-1], self.dtype)
        logits = self.forward(X)
        row_loss = np.empty(len(X), self.dtype)
        kernel = _losses.loss_kernel(spec.code, self.dtype)
        value = _losses.loss_value(kernel, logits, y_int, y_float, False, row_loss)
        predicted = _classes(logits) if spec.code != _losses.MSE else logits.argmax(axis=1)
        if spec.code == _losses.SOFTMAX_CE:
            truth = y_int
        elif spec.code == _losses.SIGMOID_CE:
            truth = (y_float[:, 0] >= 0.5).astype(np.int64)
        else:
            truth = y_float.argmax(axis=1) if self.sizes[-1] > 1 else None
        if truth is None or np.isnan(logits).any():  # a NaN logit: that row has no class
            accuracy = float("nan")
        else:
            accuracy = float(np.mean(predicted == truth))
        return {"loss": float(value), "accuracy": accuracy}

    # ------------------------------------------------------------------------- training
    def loss_and_grads(
        self, X: Any, y: Any, loss: str = "softmax_cross_entropy"
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """Full-batch loss and gradients, without updating the model.

        Parameters
        ----------
        X, y, loss
            As for :meth:`evaluate`.

        Returns
        -------
        loss : float
        grads : list of (dW, db)
            One pair per layer, shaped like the weights and biases (NaN when the
            loss is not finite).
        """
        if self._dparams is not None:  # both check X and y (prepare_x, prepare_targets)
            from fastinit.train_cuda import loss_and_grads_cuda

            return loss_and_grads_cuda(self, X, y, loss)
        return _train.loss_and_grads(self, X, y, loss)

    def fit(self, X: Any, y: Any, **kwargs: Any) -> History:
        """Train with minibatch gradient descent in one compiled loop.

        Keyword arguments are those of :func:`fastinit.train.fit_many`
        (``optimizer``, ``batch_size=128``, ``iterations`` or ``epochs``,
        ``sampling="replacement"|"shuffle"|"full"``, ``loss``, ``seed``,
        ``progress``, ``record_stats=False``, ``stats_every=10``).  With
        ``record_stats=True`` the compiled loop records the per-layer statistics
        of :func:`fastinit.diagnose` every ``stats_every`` iterations into
        ``History.stats``, so an init's effect can be watched as training goes.

        Parameters
        ----------
        X : array_like, shape (n, sizes[0])
            Inputs; cast once to the model dtype unless already in it.
        y : array_like
            Targets for ``loss`` (see :func:`fastinit.losses.prepare_targets`).
        **kwargs
            Keyword arguments of :func:`fastinit.train.fit_many`, documented
            there: ``optimizer``, ``batch_size``, ``iterations``, ``epochs``,
            ``sampling``, ``loss``, ``seed``, ``progress``, ``record_stats`` and
            ``stats_every``.

        Returns
        -------
        History
            Per-iteration training loss, iterations done, wall time and status
            (``"ok"``, ``"diverged"``, ``"interrupted"``).
        """
        _check_keywords(kwargs, _train.fit_many, "MLP.fit")
        return _train.fit_many([self], X, y, **kwargs)[0]  # dispatches on the device

    # ------------------------------------------------------------------------- files
    def save(self, path: str | bytes | os.PathLike | IO[bytes]) -> None:
        """Write the architecture and parameters to an ``.npz`` file (no pickles).

        A device model writes the same file (its host copy, kept in sync); the
        file holds no device: :meth:`load` returns a CPU model (``.to("cuda")``).
        The file is written under a temporary name in the same directory, then
        renamed over ``path``: an existing file is replaced whole or, if the
        save fails or is interrupted, left as it was.

        The file holds no optimizer state (it lives in the optimizer object, per
        model: :mod:`fastinit.optim`), and a loaded model is a new model: fitted
        with plain ``SGD`` it continues bit for bit as the saved one would, while
        a stateful optimizer (momentum, AdaGrad, RMSprop, Adam) starts afresh for
        it.  To resume such a run exactly, pickle the model and its optimizer
        together.

        Parameters
        ----------
        path : str, bytes, os.PathLike or binary file object
            File to write; like ``numpy.savez``, ``.npz`` is appended to a name
            without it (and :meth:`load` finds it by the same name).  A file
            object open for binary writing is written directly.

        Raises
        ------
        ValueError
            If a parameter is NaN or infinite (written through a view, or by a
            training update that overflowed), naming the array: :meth:`load`
            refuses such values, so nothing is written and an existing file is
            left as it was.  Also for an empty ``path``.
        TypeError
            Naming ``path``, if it is neither a file name nor a file object.
        OSError
            Naming the file, if it cannot be written (a full disk); an existing
            file is left as it was.
        """
        arrays = {
            "format": np.array(_FORMAT),
            "sizes": np.array(self.sizes, dtype=np.int64),
            "activations": np.array([a.name for a in self._activations]),
            "activation_params": self._act_params.copy(),
            "dtype": np.array(self.dtype.name),
            "seed": np.array(self.seed, dtype=np.uint64),
        }
        for k, (w, b) in enumerate(self._split(self._params)):
            arrays[f"W{k}"] = w
            arrays[f"b{k}"] = b
        if not all_finite(self._params):  # load would refuse the file: write nothing
            bad = next(
                f"{kind}[{k}]"
                for k, pair in enumerate(self._split(self._params))
                for kind, a in zip(("weights", "biases"), pair, strict=True)
                if not all_finite(a)
            )
            raise ValueError(
                f"{bad}: expected finite values to save, found NaN or inf (load would refuse "
                "the file); nothing was written"
            )
        if hasattr(path, "write"):
            np.savez(path, **arrays)  # a file object: as numpy does
            return
        check_path(path, "path", "a file name or a binary file object", allow_bytes=True)
        name = os.fsdecode(path)
        if not name:
            raise ValueError("path: expected a file name, got ''")
        with replacing(name if name.endswith(".npz") else name + ".npz", keep_mode=True) as f:
            np.savez(f, **arrays)  # a symlink written through, an existing file's mode kept

    @classmethod
    def load(cls, path: str | os.PathLike | IO[bytes]) -> MLP:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str, os.PathLike or binary file object
            The file, or the name given to :meth:`save` (without ``.npz``), or
            a seekable file object open for binary reading.

        Returns
        -------
        MLP
            A CPU model with the file's sizes, activations, dtype, parameters and
            seed (0 from a file of format 1, which did not hold it).

        Raises
        ------
        ValueError
            If the file is missing, not an ``.npz`` archive (or one that zipfile or
            NumPy cannot read), or its contents are inconsistent (an array not of the
            file's dtype or not finite included); the message names the file and
            the problem.
        """
        if not hasattr(path, "read"):
            check_path(path, "path", "a file name or a binary file object", allow_bytes=True)
        path = _npz_path(path)
        name = _file_name(path)
        contents = read_npz(path, f"{name}: not a readable .npz model file")
        try:
            return cls._from_arrays(contents)
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{name}: invalid fastinit model file: {err}") from None

    @classmethod
    def _from_arrays(cls, a: dict[str, np.ndarray]) -> MLP:
        if "format" not in a:
            hint = ""
            if "W0" in a or "weights_0" in a:  # an archive of layer arrays (np.savez)
                hint = "; its layer arrays load as weights with MLP(sizes, init=path)"
            raise ValueError(f"no 'format' entry: not a file written by MLP.save{hint}")
        form = str(a["format"])
        if form not in _FORMAT_KEYS:
            raise ValueError(f"expected format {_FORMAT!r}, got {a.get('format')!r}")
        keys = _FORMAT_KEYS[form]
        absent = [key for key in keys if key not in a]  # read below, before the layers'
        if absent:
            raise ValueError(f"missing {absent}")
        if a["sizes"].ndim != 1 or a["sizes"].dtype.kind not in "iu":
            raise ValueError(f"sizes: expected a 1-D integer array, got {a['sizes']!r}")
        sizes = [int(s) for s in a["sizes"]]
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least two layer widths, got {sizes}")
        if a["activations"].ndim != 1:
            raise ValueError(
                f"activations: expected a 1-D array of names, got {a['activations']!r}"
            )
        names = [str(s) for s in a["activations"]]
        if a["activation_params"].dtype.kind != "f":
            raise ValueError(
                f"activation_params: expected real floats, got {a['activation_params'].dtype}"
            )
        params = np.asarray(a["activation_params"], dtype=np.float64)
        dtype = str(a["dtype"])
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        seed = check_seed(a["seed"][()], "seed") if "seed" in keys else 0
        if len(names) != len(sizes) - 1 or params.shape != (len(names), 2):
            raise ValueError("activations do not match the layer sizes")
        acts = [
            _act.from_values(name, p, "activations") for name, p in zip(names, params, strict=True)
        ]
        if acts[-1].name != "identity":
            raise ValueError(f"activations: the output layer is linear, got {acts[-1].name!r}")
        expected = set(keys) | {f"{kind}{k}" for k in range(len(names)) for kind in "Wb"}
        extra, missing = sorted(set(a) - expected), sorted(expected - set(a))
        if extra or missing:
            raise ValueError(f"unexpected arrays {extra}, missing {missing}")
        weights = [a[f"W{k}"] for k in range(len(names))]
        biases = [a[f"b{k}"] for k in range(len(names))]
        # the arrays must match sizes before MLP(sizes) allocates anything
        for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.shape != (sizes[k], sizes[k + 1]) or b.shape != (sizes[k + 1],):
                raise ValueError(
                    f"W{k}, b{k}: shapes {w.shape}, {b.shape} do not match sizes "
                    f"{sizes[k]} -> {sizes[k + 1]}"
                )
            for name, array in ((f"W{k}", w), (f"b{k}", b)):  # save writes them in dtype
                if array.dtype != dtype:
                    raise ValueError(
                        f"{name}: expected the file's dtype {dtype}, got {array.dtype}"
                    )
                if not all_finite(array):
                    raise ValueError(f"{name}: expected finite values, found NaN or inf")
        return cls(sizes, acts[:-1], init=weights, bias_init=biases, seed=seed, dtype=dtype)


def _file_name(path: Any) -> str:
    """What to call ``path`` (a name or a file object) in error messages."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(path)
    return str(getattr(path, "name", None) or f"<{type(path).__name__}>")


def _npz_path(path: Any) -> Any:
    """``path``, or ``path + ".npz"`` where that is what :meth:`MLP.save` wrote
    (``np.savez`` appends the suffix to a name without it); a file object as it is."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return path
    name = os.fsdecode(path)  # a bytes name, as save takes it
    saved = not name.endswith(".npz") and os.path.exists(name + ".npz")
    if saved and (not os.path.exists(name) or os.path.isdir(name)):  # a directory is no file
        return name + ".npz"
    return path


def _classes(logits: np.ndarray) -> np.ndarray:
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(np.int64)
    return logits.argmax(axis=1)


def _check_dtype(dtype: Any) -> np.dtype:
    with value_errors():
        return check_dtype(dtype)


def _check_sizes(sizes: Any) -> tuple[int, ...]:
    if isinstance(sizes, np.ndarray) and sizes.ndim == 1:
        sizes = sizes.tolist()
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise ValueError(f"sizes: expected at least two layer widths, got {sizes!r}")
    try:
        checked = tuple(check_int(s, "sizes", low=1) for s in sizes)
    except TypeError as err:
        raise ValueError(str(err)) from None
    n_params = _parameter_count(checked)
    if 8 * n_params > np.iinfo(np.intp).max:  # numpy's limit on an array's bytes
        raise ValueError(f"sizes: {n_params} parameters are more than any array can hold")
    return checked


def _aligned_zeros(n: int, dtype: np.dtype) -> np.ndarray:
    """Zeros whose first element sits on a 64-byte boundary."""
    raw = np.zeros(n + 64 // dtype.itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // dtype.itemsize
    return raw[skip : skip + n]
