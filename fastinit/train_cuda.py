"""The training loop for models on ``device="cuda"``: the twin of :mod:`fastinit.train`.

A fit copies the data to the device once, then each iteration is a fixed
sequence of kernel launches from a host loop, with no host round-trip inside a
step: one gather kernel (the batch's row indices drawn on the device with
:func:`fastinit.random_cuda.uniform_index`, the same draws as the CPU, then the
rows of ``X`` and of the targets copied into the batch buffers), per network
one fused GEMM + bias + activation kernel per layer
(:mod:`fastinit.dense_cuda`), one loss kernel writing ``dL/dlogits`` in place
and the loss into a device record (:mod:`fastinit.losses_cuda`), the backward
kernels (derivative product + bias sums, ``dW``, ``dA``) and one element-wise
optimizer update over the flat parameters (:mod:`fastinit.optim_cuda`).  The
launches, their views and configurations are prepared once per fit (per batch
height) and replayed, each one driver call (:class:`fastinit.dense_cuda.Launch`),
with the iteration and Adam's bias corrections set in place.  The recorded
losses and the divergence flags are copied back once per chunk of iterations
(chunks sized to about 0.2 s as on the CPU), which drives the progress bar
and Ctrl-C handling: as on the CPU, a Ctrl-C is taken between chunks (held
while a chunk's launches are queued), so an interrupted fit reports every
update it applied.

Results match the CPU: the batches are the same rows (``"replacement"``: draw
``t * batch_size + r`` of stream 0 of the run key, :func:`fastinit.train.run_key`;
``"shuffle"``: the CPU's Fisher-Yates permutation of its stream 1, computed on
the host by the CPU function once per epoch and copied to the device;
``"full"``: the data in place), the formulas are the CPU ones, and only float
rounding differs (GEMM summation order, libdevice ``exp``).  The History is
built as :func:`fastinit.train.fit_many` builds it.

Divergence (exact CPU semantics)
--------------------------------
Each network has a one-element device flag.  The loss kernel sets it to
``t + 1`` when the loss of iteration ``t`` is not finite; every later kernel of
that network (backward, update, and the next iterations' forward and loss)
reads the flag first and returns, so the network is not updated by the step
whose loss was not finite, its later losses are recorded as NaN, and the host
learns of it at the end of the chunk without ever waiting inside a step.

Optimizer state
---------------
The optimizer object keeps its per-model state on the host as on the CPU
(:meth:`fastinit.optim.Optimizer.state_for`); a fit copies it to the device at
the start and back at the end, so CPU and CUDA fits continue each other's
state.  The model's parameters are copied back to its host mirror at the end of
the fit (and on Ctrl-C, which keeps every completed update, as on the CPU).

Running the tests on a real GPU
-------------------------------
The test suite runs these kernels under numba's CUDA simulator when no driver
is found; on a machine with an NVIDIA GPU run them for real with::

    NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_cuda_train.py
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastinit import losses as _losses
from fastinit import optim as _optim
from fastinit import optim_cuda
from fastinit import train as _train
from fastinit._cuda import NamedMemoryError, cuda_module, memory_error, simulator_enabled
from fastinit._files import deferred_interrupt
from fastinit._progress import ProgressBar
from fastinit.dense import work_size
from fastinit.dense_cuda import Launch, backward_launches, forward_launches
from fastinit.train import FULL, REPLACEMENT, SHUFFLE, History

__all__ = ["fit_many_cuda", "forward_cuda", "loss_and_grads_cuda", "run_fit"]

cuda: Any = None  # numba.cuda, set on first use (never at import)

_CHUNK_SECONDS = 0.2
_FORWARD_BLOCK = 8192  # rows per block in forward/predict on the device


def _gather_config(m: int) -> tuple[int, int]:
    """``(blocks, threads)`` of the gather kernel for ``m`` rows (one block under the simulator)."""
    return (1, 4) if simulator_enabled() else (min(m, 65535), 128)


@functools.cache
def gather_kernel() -> Any:
    """The batch gather kernel: draws a minibatch's rows and copies them into the buffers.

    Launched as ``kernel[blocks, threads](x, y_int, y_float, xbuf, ybi, ybf, perm,
    k0, k1, mode, t, b, start, m, hi, hf)``.

    For each batch row ``r < m`` (rows shared out over the blocks), a block
    copies row ``idx[r]`` of ``x`` (and of the integer / float targets when
    ``hi`` / ``hf``) into row ``r`` of the buffers; ``idx[r]`` is draw ``t * b + r`` of
    stream 0 of the run key ``(k0, k1)`` (``"replacement"``) or ``perm[start + r]`` (``"shuffle"``).

    Returns
    -------
    numba CUDA kernel
        Its arguments: the device data ``x``, ``y_int``, ``y_float`` and batch
        buffers ``xbuf``, ``ybi``, ``ybf``; the device permutation ``perm``; the
        key words ``k0``, ``k1``; ``mode`` (``REPLACEMENT`` or ``SHUFFLE``);
        iteration ``t``, batch size ``b``, first position ``start`` in ``perm``
        and rows ``m``; ``hi``, ``hf``: whether to copy the integer and the
        float targets.  Built once per process.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    from numba import types

    from fastinit.random_cuda import uniform_index

    stream = np.uint32(0)

    @cuda.jit
    def kernel(x, y_int, y_float, xbuf, ybi, ybf, perm, k0, k1, mode, t, b, start, m, hi, hf):
        row = cuda.shared.array(1, types.int64)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for r in range(cuda.blockIdx.x, m, cuda.gridDim.x):
            if tid == 0:
                if mode == REPLACEMENT:
                    row[0] = uniform_index(k0, k1, stream, stream, t * b + r, x.shape[0])
                else:
                    row[0] = perm[start + r]
            cuda.syncthreads()
            i = row[0]
            for c in range(tid, x.shape[1], nt):
                xbuf[r, c] = x[i, c]
            if hi and tid == 0:
                ybi[r] = y_int[i]
            if hf:
                for c in range(tid, y_float.shape[1], nt):
                    ybf[r, c] = y_float[i, c]
            cuda.syncthreads()

    return kernel


@dataclass
class _Plan:
    """The prepared launches of one network for batches of ``m`` rows."""

    forward: list
    loss: Launch  # its iteration ``t`` is set before each replay
    backward: list


@dataclass
class _Net:
    """One network's device arrays for a fit."""

    model: Any
    params: Any
    grads: Any
    work: Any
    flag: Any
    slots: Any
    step0: int
    update: Launch | None = None  # None for NoUpdate; Adam's factors are set each step
    plans: dict = field(default_factory=dict)


def _device_targets(cuda: Any, y_int: np.ndarray, y_float: np.ndarray, dtype: np.dtype) -> tuple:
    """Device copies of the targets; an unused one is a (1,)/(1, 1) placeholder (shape[0] == 1)."""
    yi = y_int if y_int.size else np.zeros(1, np.int64)
    yf = y_float if y_float.size else np.zeros((1, max(1, y_float.shape[1])), dtype)
    return cuda.to_device(yi), cuda.to_device(np.ascontiguousarray(yf))


def _plan(net: _Net, j: int, x: Any, yi: Any, yf: Any, code: int, records: Any) -> _Plan:
    """Network ``j``'s launches for the batch ``x`` (targets ``yi``, ``yf``), loss ``code``."""
    from fastinit.losses_cuda import loss_kernel, threads

    model = net.model
    fwd, logits = forward_launches(
        net.params, model._layers, model._act_params, x, net.work, net.flag
    )
    loss = Launch(loss_kernel(), 1, threads(), (logits, yi, yf, code, records, 0, j, net.flag))
    bwd = backward_launches(net.params, net.grads, model._layers, x, net.work, net.flag)
    return _Plan(fwd, loss, bwd)


def _update(net: _Net, opt: Any, dtype: np.dtype) -> Launch | None:
    """The update launch of ``net`` (None for ``NoUpdate``), with the factors of its first step."""
    if opt.code == _optim.NONE:
        return None
    f = optim_cuda.factors(opt.code, opt.hyper(), net.step0 + 1, dtype)
    s, p = net.slots, net.params
    args = (opt.code, p, net.grads, s[0], s[1], *f, net.flag)
    kernel = optim_cuda.update_kernel()
    return Launch(kernel, optim_cuda.blocks(p.shape[0]), optim_cuda.threads(), args)


def _net(cuda: Any, model: Any, opt: Any, rows: int) -> _Net:
    state = opt.state_for(model, model._params.size, model.dtype)
    slots = cuda.to_device(state.slots if state.slots.size else np.zeros((2, 1), model.dtype))
    return _Net(
        model,
        model._dparams,
        cuda.to_device(np.zeros(model._params.size, model.dtype)),
        cuda.device_array(max(1, work_size(model._layers, rows)), model.dtype),
        cuda.to_device(np.zeros(1, np.int64)),
        slots,
        state.step,
    )


def _check_device_models(models: list) -> None:
    for m in models:
        if getattr(m, "device", "cpu") != "cuda":
            raise ValueError(
                "models: fit_many_cuda needs models on device='cuda' (use model.to('cuda'))"
            )


def fit_many_cuda(models: Sequence[Any], X: Any, y: Any, **kwargs: Any) -> list[History]:
    """Train several device models on the same minibatch sequence, on the GPU.

    :func:`fastinit.train.fit_many` restricted to models on ``device="cuda"``
    (it validates the arguments and routes device models to :func:`run_fit`);
    same keyword arguments, batches and History, except ``record_stats``
    (CPU only).

    Parameters
    ----------
    models : sequence of MLP
        Models on ``device="cuda"``, with the same dtype and input/output sizes.
    X : array_like, shape (n, n_in)
        Inputs; cast once to the model dtype and copied to the device.
    y : array_like
        Targets for ``loss`` (see :func:`fastinit.losses.prepare_targets`).
    **kwargs
        Keyword arguments of :func:`fastinit.train.fit_many`: ``optimizer``,
        ``batch_size``, ``iterations``, ``epochs``, ``sampling``, ``loss``,
        ``seed``, ``progress``, ``record_stats`` (``True`` is refused: CPU only)
        and ``stats_every``.

    Returns
    -------
    list of History
        One per model.

    Raises
    ------
    ValueError
        When a model is not on the device, or for the arguments
        :func:`fastinit.train.fit_many` refuses.
    """
    _check_device_models(_train._check_models(models))
    return _train.fit_many(models, X, y, **kwargs)


def run_fit(models: list, fa: Any, bar: ProgressBar, start_time: float) -> list[History]:
    """The device loop of :func:`fastinit.train.fit_many`, on validated arguments.

    Parameters
    ----------
    models : list of MLP
        Device models (checked by ``fit_many``).
    fa : fastinit.train.FitArguments
        The validated optimizers, loss, sampling, batch size, seed, data and
        iteration count.
    bar : ProgressBar
        Advanced once per chunk, closed at the end.
    start_time : float
        ``time.perf_counter()`` when ``fit_many`` was called (for ``wall_time``).

    Returns
    -------
    list of History
        One per model.

    Raises
    ------
    MemoryError
        When the device (or the host) cannot hold the run: naming ``X`` when the
        inputs do not fit (:func:`upload_inputs`), else naming ``iterations``
        (or ``epochs``) and ``batch_size``.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    with memory_error(lambda: fa.allocation_error(len(models))):
        run = _Run(cuda, models, fa.opts, fa.X, fa.y_int, fa.y_float, fa.spec, fa.mode, fa.batch,
                   fa.seed, fa.n_iter)  # fmt: skip
    status = "ok"
    try:
        status = run.chunks(bar)
    finally:
        run.write_back()
    seconds = time.perf_counter() - start_time
    return [run.history(j, status, seconds, fa.settings()) for j in range(len(models))]


class InputsTooLarge(NamedMemoryError):
    """The inputs ``X`` do not fit in the device's memory."""


def upload_inputs(cuda: Any, Xc: np.ndarray) -> Any:
    """Copy the validated inputs to the device, naming ``X`` when they do not fit.

    Parameters
    ----------
    cuda : module
        ``numba.cuda`` or its simulator (:func:`fastinit._cuda.cuda_module`).
    Xc : numpy.ndarray, shape (n, n_in)
        Inputs prepared by :func:`fastinit.train.prepare_x`.

    Returns
    -------
    DeviceNDArray
        ``Xc`` on the device.

    Raises
    ------
    InputsTooLarge
        A ``MemoryError`` naming ``X`` and its size, when the device is out of
        memory.
    """
    message = (
        f"X: {Xc.shape[0]} rows of inputs ({Xc.nbytes:.3g} bytes) do not fit in the "
        "device's memory; use fewer rows, or train a model moved with .to('cpu')"
    )
    with memory_error(lambda: InputsTooLarge(message)):
        return cuda.to_device(Xc)


class _Run:
    """Device arrays, prepared launches and the host loop of one fit."""

    def __init__(self, cuda, models, opts, Xc, y_int, y_float, spec, mode, batch, seed, n_iter):
        self.cuda, self.models, self.opts = cuda, models, opts
        self.mode, self.batch, self.n_iter, self.code = mode, batch, n_iter, spec.code
        dtype = models[0].dtype
        self.n = n = Xc.shape[0]
        self.key = _train.run_key(seed)
        self.x = upload_inputs(cuda, Xc)
        self.y_int, self.y_float = _device_targets(cuda, y_int, y_float, dtype)
        rows = n if mode == FULL else batch
        if mode == FULL:
            self.xbuf, self.ybi, self.ybf = self.x, self.y_int, self.y_float
        else:
            self.xbuf = cuda.device_array((batch, Xc.shape[1]), dtype)
            self.ybi = cuda.device_array(batch if y_int.size else 1, np.int64)
            self.ybf = cuda.device_array(
                (batch if y_float.size else 1, self.y_float.shape[1]), dtype
            )
        self.perm_host = np.zeros(n if mode == SHUFFLE else 0, np.int64)
        self.perm = cuda.to_device(np.zeros(max(1, self.perm_host.size), np.int64))
        self.epoch = -1
        self.nets = [_net(cuda, m, o, rows) for m, o in zip(models, opts, strict=True)]
        self.records = cuda.to_device(np.full((max(1, n_iter), len(models)), np.nan))
        self.losses = np.full((n_iter, len(models)), np.nan)
        self.launched = [0] * len(models)  # iterations whose update has been launched
        self.diverged = [-1] * len(models)
        self.gathers: dict[int, Launch] = {}  # by batch height
        for net, o in zip(self.nets, opts, strict=True):
            net.update = _update(net, o, dtype)
        self.has_int, self.has_float = int(y_int.size > 0), int(y_float.size > 0)
        self.hyper = [o.hyper() for o in opts]

    def _batch(self, t: int) -> int:
        """Launch the gather of iteration ``t``'s batch; returns its rows ``m``."""
        if self.mode == FULL:
            return self.n
        b, start, m = self.batch, 0, self.batch
        if self.mode == SHUFFLE:
            per_epoch = (self.n + b - 1) // b
            epoch = t // per_epoch
            if epoch != self.epoch:
                self.perm_host[:] = _train.epoch_permutation(self.n, self.key, epoch)
                self.perm.copy_to_device(self.perm_host)
                self.epoch = epoch
            start = (t % per_epoch) * b
            m = min(b, self.n - start)
        gather = self.gathers.get(m)
        if gather is None:
            args = (self.x, self.y_int, self.y_float, self.xbuf, self.ybi, self.ybf, self.perm,
                    self.key[0], self.key[1], self.mode, t, b, start, m, self.has_int,
                    self.has_float)  # fmt: skip
            gather = self.gathers[m] = Launch(gather_kernel(), *_gather_config(m), args)
        else:
            gather.set(t=t, start=start)
        gather()
        return m

    def _new_plan(self, j: int, m: int) -> _Plan:
        """Network ``j``'s launches for batches of ``m`` rows (views of the batch buffers)."""
        yi = self.ybi[:m] if self.has_int else self.ybi
        yf = self.ybf[:m] if self.has_float else self.ybf
        return _plan(self.nets[j], j, self.xbuf[:m], yi, yf, self.code, self.records)

    def step(self, t: int) -> None:
        """Launch iteration ``t`` for every network not known to have diverged.

        A replay of prepared launches (:class:`fastinit.dense_cuda.Launch`), with
        the iteration (and Adam's factors) set in between.  Run with Ctrl-C held
        (:meth:`chunks`): once a GPU's launch queue is full the host waits inside a
        launch, and a Ctrl-C raised as an update's launch returns would leave that
        update applied but not counted in ``launched``.
        """
        m = self._batch(t)
        for j, net in enumerate(self.nets):
            if self.diverged[j] >= 0:
                continue
            plan = net.plans.get(m)
            if plan is None:
                plan = net.plans[m] = self._new_plan(j, m)
            for launch in plan.forward:
                launch()
            plan.loss.set(t=t)
            plan.loss()
            for launch in plan.backward:
                launch()
            if net.update is not None:
                code = self.opts[j].code
                if code == _optim.ADAM:
                    step = net.step0 + t + 1
                    f = optim_cuda.factors(code, self.hyper[j], step, net.params.dtype)
                    net.update.set(**dict(zip(optim_cuda.FACTORS, f, strict=True)))
                net.update()
            self.launched[j] = t + 1

    def _sync(self, t0: int, t1: int) -> None:
        """Copy the losses of iterations ``t0 .. t1-1`` and the divergence flags to the host."""
        if t1 > t0:
            self.losses[t0:t1] = self.records[t0:t1].copy_to_host()
        for j, net in enumerate(self.nets):
            flag = int(net.flag.copy_to_host()[0])
            if flag and self.diverged[j] < 0:
                self.diverged[j] = flag - 1

    def chunks(self, bar: ProgressBar) -> str:
        """Run every iteration chunk by chunk; returns "ok" or "interrupted"."""
        done, chunk = 0, min(self.n_iter, 4)
        try:
            while done < self.n_iter and min(self.diverged) < 0:
                begin = time.perf_counter()
                with deferred_interrupt():  # Ctrl-C between chunks, as on the CPU (see step)
                    for t in range(done, done + chunk):
                        self.step(t)
                self._sync(done, done + chunk)
                seconds = time.perf_counter() - begin
                done += chunk
                bar.update(done, _train._bar_loss(self.losses[done - 1]))  # as on the CPU
                chunk = int(min(max(1, _CHUNK_SECONDS * chunk / max(seconds, 1e-9)), 16 * chunk))
                chunk = min(chunk, self.n_iter - done)
        except KeyboardInterrupt:
            reached = max(self.launched)
            self._sync(done, reached)
            if reached > done:  # the bar says where it stopped, as on the CPU
                bar.update(reached, _train._bar_loss(self.losses[reached - 1]))
            return "interrupted"
        finally:
            bar.close()
        return "ok"

    def updates(self, j: int) -> int:
        """Updates applied to network ``j``."""
        d = self.diverged[j]
        return d if d >= 0 else self.launched[j]

    def write_back(self) -> None:
        """Copy the parameters and optimizer state back to the host (model mirror, optimizer)."""
        for j, (net, o) in enumerate(zip(self.nets, self.opts, strict=True)):
            m = net.model
            m._params[:] = net.params.copy_to_host()
            state = o.state_for(m, m._params.size, m.dtype)
            if state.slots.size:
                state.slots[:] = net.slots.copy_to_host()
            if o.code != _optim.NONE:
                state.step = net.step0 + self.updates(j)

    def history(self, j: int, status: str, seconds: float, settings: dict) -> History:
        """The History of network ``j``, as :func:`fastinit.train.fit_many` builds it."""
        done, diverged = self.updates(j), int(self.diverged[j])
        params = self.nets[j].model._params  # the host mirror, after write_back
        status, diverged_at = _train.outcome(status, done, diverged, params)
        return History(
            loss=self.losses[: done + (diverged >= 0), j].copy(),
            iterations=done,
            wall_time=seconds,
            status=status,
            diverged_at=diverged_at,
            settings=settings,
        )


def forward_cuda(model: Any, X: Any) -> np.ndarray:
    """Logits of the rows of ``X`` for a device model (host array ``(n, sizes[-1])``).

    ``X`` is validated and cast as on the CPU, copied to the device once, and
    run through the forward kernels in blocks of up to 8192 rows.

    Parameters
    ----------
    model : MLP
        A model on ``device="cuda"``.
    X : array_like, shape (n, sizes[0])
        Inputs (:func:`fastinit.train.prepare_x`).

    Returns
    -------
    numpy.ndarray of the model dtype, (n, sizes[-1])
        The logits, on the host.
    """
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    Xc = _train.prepare_x(model, X)
    n = Xc.shape[0]
    block = min(n, _FORWARD_BLOCK)
    x = upload_inputs(cuda, Xc)
    message = (f"model: the work arrays of a forward pass over {block} rows of a network "
               f"of widths {list(model.sizes)} do not fit in the device's memory")  # fmt: skip
    with memory_error(lambda: MemoryError(message)):
        work = cuda.device_array(work_size(model._layers, block), model.dtype)
    flag = cuda.to_device(np.zeros(1, np.int64))
    out = np.empty((n, model.sizes[-1]), model.dtype)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        launches, logits = forward_launches(
            model._dparams, model._layers, model._act_params, x[r0:r1], work, flag
        )
        for launch in launches:
            launch()
        out[r0:r1] = logits.copy_to_host()
    return out


def loss_and_grads_cuda(model: Any, X: Any, y: Any, loss: str) -> tuple[float, list]:
    """Full-batch loss and gradients of a device model (no update), on the device.

    The twin of :func:`fastinit.train.loss_and_grads`: returns the loss and a
    list of host ``(dW, db)`` pairs (NaN when the loss is not finite).

    Parameters
    ----------
    model : MLP
        A model on ``device="cuda"``.
    X, y, loss
        As for :func:`fastinit.train.loss_and_grads`.

    Returns
    -------
    loss : float
        The mean loss over the rows of ``X``.
    grads : list of (dW, db)
        One pair of host arrays per layer, shaped like the weights and biases.

    Raises
    ------
    MemoryError
        Naming ``X`` when its rows or the full-batch work arrays do not fit in
        the device's memory.
    """
    spec = _losses.get(loss)
    Xc = _train.prepare_x(model, X)
    y_int, y_float = _losses.prepare_targets(spec, y, Xc.shape[0], model.sizes[-1], model.dtype)
    global cuda  # a module global: the simulator swaps the module in kernels' globals
    cuda = cuda_module()
    message = (f"X: the work arrays of a full-batch pass over {Xc.shape[0]} rows do not fit in "
               "the device's memory; use fewer rows")  # fmt: skip
    with memory_error(lambda: MemoryError(message)):
        run = _Run(
            cuda, [model], [_optim.NoUpdate()], Xc, y_int, y_float, spec, FULL, Xc.shape[0], 0, 1
        )
    run.step(0)
    run._sync(0, 1)
    value = float(run.losses[0, 0])
    grads = run.nets[0].grads.copy_to_host()
    if not math.isfinite(value):
        grads[:] = np.nan
    return value, model._split(grads)
