"""The custom operators ``lstmcore::recurrent_forward`` and ``lstmcore::recurrent_backward``.

Registered with ``torch.library`` so that autograd runs the core's own backward and
``torch.compile`` treats each pass as one opaque call: the fake implementations give the
compiler the output shapes without running (or tracing into) the core.
"""

from __future__ import annotations

import numpy as np
import torch

from lstmcore._util import aligned as _aligned
from lstmcore.torch import _engine
from lstmcore.torch._threads import follow_torch

# Second-order gradients would differentiate the core's backward, which has no backward.
SECOND_ORDER = (
    "lstmcore.torch modules give first-order gradients only (their backward is the core's fused "
    "kernel); create_graph=True followed by a second backward, torch.autograd.functional.hessian "
    "and gradient penalties are not supported: use torch.nn.LSTM/GRU/RNN for those"
)


def _array(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a NumPy array: no copy for a contiguous CPU tensor."""
    return tensor.detach().contiguous().numpy()


def _zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Zeros for the core to add into, on a cache line as torch's, filled on this thread:
    torch.zeros of a weight's size fills on PyTorch's threads, a parallel region whose
    threads, on cores that other processes hold, each wait for a core."""
    return torch.from_numpy(_aligned.zeros(shape, str(dtype).removeprefix("torch.")))


def _state(layer, parts):
    if not parts:
        return None
    arrays = [_array(part) for part in parts]
    return layer._pack_state(arrays)


def _parts(state):
    return list(state) if isinstance(state, (tuple, list)) else [state]


@torch.library.custom_op("lstmcore::recurrent_forward", mutates_args=())
def recurrent_forward(
    x: torch.Tensor,
    hx: list[torch.Tensor],
    weights: list[torch.Tensor],
    lengths: torch.Tensor | None,
    seed: torch.Tensor,
    config: str,
    training: bool,
    needs_tape: bool,
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """y, the final state parts and the tape's key (empty without ``needs_tape``)."""
    follow_torch()
    layer = _engine.engine(config, str(x.dtype).removeprefix("torch."))
    if training:
        layer = _engine.seeded(layer, int(seed))
    named = dict(zip(layer._param_shapes(), (_array(w) for w in weights)))
    y, final, tape = layer._forward(
        _array(x),
        _state(layer, hx),
        None if lengths is None else lengths.numpy(),
        None,
        training,
        for_backward=needs_tape,
        traced=needs_tape,
        weights=named,
    )
    key = torch.empty(0, dtype=torch.int64)
    if needs_tape:
        key = torch.from_numpy(_engine.keep_tape(layer, tape, named))
        # The tape reads the core's y in backward (the last layer's h), and y is the caller's
        # to change in place (torch.nn's modules allow `y += residual`), as is the buffer
        # torch.compile's inductor reuses for y's consumers: the caller gets a copy.
        y = y.copy()
    return torch.from_numpy(y), [torch.from_numpy(part) for part in _parts(final)], key


@recurrent_forward.register_fake
def _(x, hx, weights, lengths, seed, config, training, needs_tape):
    sizes = _engine.layout(config)
    batch_axis = 0 if sizes["batch_first"] else 1
    batch = x.shape[batch_axis]
    y = x.new_empty((*x.shape[:2], sizes["width"]))
    final = [x.new_empty((sizes["states"], batch, size)) for size in sizes["state_sizes"]]
    return y, final, x.new_empty((1 if needs_tape else 0,), dtype=torch.int64)


@torch.library.custom_op("lstmcore::recurrent_backward", mutates_args=())
def recurrent_backward(
    key: torch.Tensor, dy: torch.Tensor, dstate: list[torch.Tensor], x: torch.Tensor, weights: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The gradients of x, of the initial state parts and of every weight, in order.

    ``x`` and ``weights`` are the forward's (their shapes for the fake implementation; the
    tape already holds their memory).
    """
    follow_torch()
    holder = _engine.find_tape(int(key[0]))
    layer = holder.layer
    grads = [_zeros(w.shape, w.dtype) for w in weights]
    dx, dinitial = layer._backward(
        holder.tape,
        holder.weights,
        dict(zip(holder.weights, (grad.numpy() for grad in grads))),
        _array(dy),
        _state(layer, dstate),
        False,
    )
    return torch.from_numpy(dx), [torch.from_numpy(part) for part in _parts(dinitial)], grads


@recurrent_backward.register_fake
def _(key, dy, dstate, x, weights):
    return x.new_empty(x.shape), [part.new_empty(part.shape) for part in dstate], [w.new_empty(w.shape) for w in weights]


def _save(ctx, inputs, output):
    x, hx, weights = inputs[:3]
    y, final, key = output
    ctx.given_state = bool(hx)
    ctx.y_shape = tuple(y.shape)
    ctx.final_shapes = [tuple(part.shape) for part in final]
    ctx.weight_count = len(weights)
    # Saved (not only kept) so that autograd's version counters refuse a backward after x,
    # the initial state or a weight changed in place (the tape reads their memory, as
    # torch.nn's backward reads them); the key's storage keeps the tape alive.
    ctx.save_for_backward(key, x, *weights, *hx)


def _backward(ctx, dy, dfinal, dkey):
    key, x, *saved = ctx.saved_tensors
    weights = saved[: ctx.weight_count]
    if key.numel() == 0:
        raise RuntimeError("lstmcore: this forward pass kept no tape (it ran with gradients off)")
    if dy is None:
        dy = torch.zeros(ctx.y_shape, dtype=x.dtype)
    dstate = [torch.zeros(shape, dtype=x.dtype) if grad is None else grad for grad, shape in zip(dfinal, ctx.final_shapes)]
    dx, dinitial, dweights = recurrent_backward(key, dy, dstate, x, list(weights))
    return dx, (dinitial if ctx.given_state else []), dweights, None, None, None, None, None


def _refuse_second_order(ctx, *grads):
    raise RuntimeError(SECOND_ORDER)


recurrent_forward.register_autograd(_backward, setup_context=_save)
recurrent_backward.register_autograd(_refuse_second_order, setup_context=lambda ctx, inputs, output: None)
