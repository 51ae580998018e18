"""What LSTM and GRU share: parameters by PyTorch's names, checks, stacking, the tape.

Every pass runs in the C++ core (``lstmcore._core``), one call per layer and direction,
on the caller's (B, T, features) or (T, B, features) arrays as they are (the core reads
either layout, so nothing is transposed), or, with variable lengths, on sorted
time-major copies (``_lengths.py``). This module owns the user-facing checks, dropout
between layers, the stacking of layers and directions and the tape. The subclasses
(``_lstm.py``, ``_gru.py``) name their parameters, call their core functions and read
their gates.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Literal, overload

import numpy as np

from lstmcore._typing import ArrayLike, DTypeLike, Params, State, StateLike
from lstmcore._util import aligned as _aligned
from lstmcore._util.checks import (
    as_numeric_array,
    check_bool,
    check_dtype,
    check_positive_int,
    param_array,
    shape_text,
)
from lstmcore.rnn._fingerprint import check_unchanged, fingerprints
from lstmcore.rnn._lengths import Packing, checked_lengths

# Every live layer, for the fork handler below.
_live_layers: weakref.WeakSet[_GatedRecurrent] = weakref.WeakSet()


def _fresh_locks_in_child():
    # A child of fork has only the forking thread: a grads lock another thread held at
    # fork time would stay held for good, and the child's backward would wait forever.
    for layer in list(_live_layers):
        layer._grads_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_in_child)


def check_probability(value, name):
    """A dropout-like rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"expected {name} as a float in [0, 1), got {type(value).__name__}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"expected {name} in [0, 1), got {value}")
    return float(value)


def _in_layout(time_major, batch_first):
    """A (T, B, F) array as a (B, T, F) view when batch_first, and back: its own inverse."""
    return time_major.transpose(1, 0, 2) if batch_first else time_major


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


def checked_step_input(layer: Any, x_t: ArrayLike) -> np.ndarray:
    """x_t (B, I) of a streaming step as an array, or a ValueError (also for a layer that
    does not run forward in time)."""
    if layer.bidirectional or layer.reverse:
        raise ValueError(
            "step needs a layer that runs forward in time: a bidirectional or reverse=True one must see the whole sequence"
        )
    x_t = as_numeric_array(x_t, "x_t")
    if x_t.ndim != 2 or x_t.shape[1] != layer.input_size:
        raise ValueError(f"expected x_t of shape (B, {layer.input_size}), got {shape_text(x_t.shape)}")
    return x_t


class CoreCall:
    """One layer-direction's core forward with everything but its arrays bound: the
    kernel, the core's weights object and the options. ``run(x, initial, y)`` calls it."""

    __slots__ = ("args", "function", "kwargs", "pass_options", "weights")

    def __init__(self, function, weights, pass_options, args=(), kwargs=None):
        self.function, self.weights, self.pass_options = function, weights, pass_options
        self.args, self.kwargs = args, kwargs or {}

    def run(self, x, initial, y):
        """The core's tape; y is written. ``initial``: this direction's (B, H) state parts."""
        return self.function(x, self.weights, *initial, y, self.pass_options, *self.args, **self.kwargs)


class _DirectionRun:
    """One layer-direction's core call: its input, where its output went, its gate tape.

    ``batch_first`` is the layout of ``x`` and ``y`` ((B, T, F) or (T, B, F)); the tape
    is always time-major.
    """

    def __init__(self, x, y, offset, tape, batch_first):
        self.x, self.y, self.offset, self.tape = x, y, offset, tape
        self.batch_first = batch_first

    def steps_and_batch(self):
        return (self.x.shape[1], self.x.shape[0]) if self.batch_first else self.x.shape[:2]


class Tape:
    """What ``backward`` needs from one ``forward``; also the source of gate traces.

    Opaque to users; tied to the layer that made it.
    """

    def __init__(self, layer, output_shape, inputs, masks, runs, initial, packing, clamps, fingerprints):
        self._layer = weakref.ref(layer)
        self.output_shape = output_shape  # the shape of y as the caller got it
        self.inputs = inputs  # per layer: its input as the core read it, after dropout
        self.masks = masks  # per layer: the dropout mask on its input, (T, B, features), or None
        self.runs = runs  # per layer*D + direction: a _DirectionRun
        self.initial = initial  # per state kind (h, and c for LSTM): (L*D, B, H), sorted
        self.packing = packing  # a Packing when lengths were given, else None
        self.clamps = clamps  # per layer*D + direction: the ablation clamps, or None
        self.fingerprints = fingerprints  # {name: fingerprint} of the parameters read (_fingerprint.py)

    def belongs_to(self, layer):
        return self._layer() is layer


class _GatedRecurrent:
    """Shared machinery of LSTM and GRU; subclasses set the gates and the core calls."""

    _state_names: tuple[str, ...] = ("h",)
    # The subclass's hooks (its core calls and state layout), declared for the type checker.
    _gate_blocks: Callable[[], int]
    _unpack_state: Callable[[StateLike, str], tuple[Any, ...]]
    _pack_state: Callable[[list[np.ndarray]], State]
    # (weights, reverse, y_offset, batch_first, batch_sizes, clamps, steps, batch, training,
    # traced) -> the CoreCall of one layer-direction's forward.
    _core_call: Callable[..., CoreCall]
    # The core's backward of this kind: (tape, weights, dy, *final state gradients, grads,
    # dx, *initial state gradients, accumulate_dx=, hidden_grads=), one argument per state.
    _core_backward_function: Callable[[], Callable[..., Any]]
    _core_weights: Callable[[Params], Any]
    _named_gates: Callable[[Any], dict[str, np.ndarray]]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        batch_first: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        reverse: bool = False,
    ) -> None:
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.dropout = check_probability(dropout, "dropout")
        self.bias = check_bool(bias, "bias")
        self.reverse = check_bool(reverse, "reverse")
        if self.reverse and self.bidirectional:
            raise ValueError(
                "reverse=True runs a one-direction layer from each sequence's end; a bidirectional layer "
                "already runs both ways (choose one)"
            )
        self._dropout_rng = np.random.default_rng(None if seed is None else [seed, 1])
        # Backward passes add to grads under this lock, so Python threads calling backward
        # on one layer at once lose no update (the core already uses every thread).
        self._grads_lock = threading.Lock()
        _live_layers.add(self)

    def _init_params(self):
        """Called by subclasses once their options are set: PyTorch's initialisation."""
        self.params = self._initial_params(np.random.default_rng(self.seed))
        self.grads = {name: _aligned.zeros(value.shape, value.dtype) for name, value in self.params.items()}

    # ----------------------------------------------------------------- parameters

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        """Features of h per direction (the LSTM's proj_size when set, else hidden_size)."""
        return self.hidden_size

    def _state_sizes(self):
        """Features of each state kind, in _state_names order."""
        return (self.output_size,)

    def _direction_suffix(self, layer, direction):
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _param_names(self, layer, direction):
        suffix = self._direction_suffix(layer, direction)
        return [f"{kind}{suffix}" for kind in self._param_kinds()]

    def _param_kinds(self):
        return ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())

    def _param_shapes(self):
        """{name: shape} of every parameter; fixed by the configuration, so built once."""
        if getattr(self, "_shapes", None) is None:
            self._shapes = self._build_param_shapes()
        return self._shapes

    def _build_param_shapes(self):
        shapes = {}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.num_directions * self.output_size
            for direction in range(self.num_directions):
                kind_shapes = self._kind_shapes(layer_input)
                for kind, name in zip(self._param_kinds(), self._param_names(layer, direction)):
                    shapes[name] = kind_shapes[kind]
        return shapes

    def _kind_shapes(self, layer_input):
        rows = self._gate_blocks() * self.hidden_size
        return {
            "weight_ih": (rows, layer_input),
            "weight_hh": (rows, self.output_size),
            "bias_ih": (rows,),
            "bias_hh": (rows,),
        }

    def _initial_params(self, rng):
        # PyTorch's default: every parameter uniform in +-1/sqrt(H), drawn in
        # registration order (layer, direction, weight_ih, weight_hh, bias_ih, bias_hh).
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {
            name: rng.uniform(-bound, bound, size=shape).astype(self.dtype) for name, shape in self._param_shapes().items()
        }

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad[...] = 0

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``type(layer)(**config)`` rebuilds it."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "dropout": self.dropout,
            "bias": self.bias,
            "reverse": self.reverse,
        }

    def __repr__(self):
        extras = ", bidirectional=True" if self.bidirectional else ""
        extras += "" if self.bias else ", bias=False"
        extras += ", reverse=True" if self.reverse else ""
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}{extras}, dtype={self.dtype.name})"
        )

    def _checked_params(self, with_grads=True):
        """The parameters as the core needs them, or a ValueError.

        A user may replace ``params[k]`` with any float array; a wrong shape is an error, the
        other float precision or a strided layout is converted (a copy for this call), any
        other dtype (str, complex, object, int, bool) is a TypeError. ``grads``, which backward
        adds to in place, must match exactly; they are checked unless ``with_grads`` is
        false (inference, which never touches them).
        """
        expected = self._param_shapes()
        sources = ((self.params, "params"), (self.grads, "grads")) if with_grads else ((self.params, "params"),)
        for source, label in sources:
            if set(source) != set(expected):
                missing = sorted(set(expected) - set(source))
                extra = sorted(set(source) - set(expected))
                raise ValueError(f"{label} keys do not match the layer: missing {missing}, unexpected {extra}")
            for name, shape in expected.items():
                given = np.shape(source[name])
                if given != shape:
                    raise ValueError(f"expected {label}[{name!r}] of shape {shape_text(shape)}, got {shape_text(given)}")
        for name in expected if with_grads else ():
            grad = self.grads[name]
            if not (isinstance(grad, np.ndarray) and grad.dtype == self.dtype and grad.flags.c_contiguous):
                raise ValueError(f"grads[{name!r}] must be a C-contiguous {self.dtype.name} array")
        return {name: param_array(value, f"params[{name!r}]", self.dtype) for name, value in self.params.items()}

    def _direction_params(self, source, layer, direction):
        """{kind: array} of one layer-direction, from ``source`` (weights or grads).

        Without biases (``bias=False``) the core still takes them: zeros, and for grads a
        fresh buffer whose sums are dropped, so no parameter and no gradient exists for them.
        """
        names = self._param_names(layer, direction)
        found = {kind: source[name] for kind, name in zip(self._param_kinds(), names)}
        if not self.bias:
            rows = found["weight_hh"].shape[0]
            found["bias_ih"] = np.zeros(rows, self.dtype)
            found["bias_hh"] = np.zeros(rows, self.dtype)
        return found

    def _runs_reversed(self, direction):
        """Whether this direction runs from each sequence's end: the second one, or the
        only one of a ``reverse=True`` layer."""
        return direction == 1 or self.reverse

    # ----------------------------------------------------------------- checks

    def _checked_input(self, x, keep):
        """x as an array the core reads, in the caller's layout ((B, T, I) when batch_first).

        ``keep``: the tape keeps x for backward, so it is never the caller's own buffer,
        which they may change before calling backward.
        """
        x = as_numeric_array(x, "x")
        layout = "(B, T, {})" if self.batch_first else "(T, B, {})"
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected x of shape {layout.format(self.input_size)}, got {shape_text(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"expected a non-empty sequence and batch, got x of shape {shape_text(x.shape)}")
        given = x
        # Aligned too: the core reads whole floats, and a buffer at an odd address is a copy.
        x = np.require(x, dtype=self.dtype, requirements=["C", "A"])
        return x.copy() if keep and np.may_share_memory(x, given) else x

    def _state_shapes(self, batch):
        """Per state kind: (L*D, B, features)."""
        return [(self.num_layers * self.num_directions, batch, size) for size in self._state_sizes()]

    def _state_parts(self, state, batch, name, keep=False):
        """A user state (or its gradient) as a list of (L*D, B, H) arrays, one per kind.

        ``keep``: the tape keeps them for backward, so none is the caller's own buffer,
        which they may change (a streaming loop reusing its state) before backward.
        """
        if state is None:
            return None
        parts = self._unpack_state(state, name)
        checked = []
        for part, kind, shape in zip(parts, self._state_names, self._state_shapes(batch)):
            part = as_numeric_array(part, f"{name} {kind}")
            if part.shape != shape:
                raise ValueError(f"expected {name} {kind} of shape {shape_text(shape)}, got {shape_text(part.shape)}")
            given = part
            part = np.require(part, dtype=self.dtype, requirements=["C", "A"])
            checked.append(part.copy() if keep and np.may_share_memory(part, given) else part)
        return checked

    def _checked_ablation(self, ablate):
        """Per layer*D + direction: the core's clamps, or None everywhere (no ablation)."""
        if ablate is None:
            return [None] * (self.num_layers * self.num_directions)
        raise ValueError(f"{type(self).__name__} does not support ablate")

    # ----------------------------------------------------------------- passes

    @overload
    def __call__(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        return_gates: Literal[False] = False,
    ) -> tuple[np.ndarray, State]: ...
    @overload
    def __call__(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        return_gates: Literal[True],
    ) -> tuple[np.ndarray, State, list[dict[str, np.ndarray]]]: ...
    def __call__(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        return_gates: bool = False,
    ) -> tuple[np.ndarray, State] | tuple[np.ndarray, State, list[dict[str, np.ndarray]]]:
        """Inference: ``y, state_n`` (and the gate traces with ``return_gates=True``).

        See ``forward``; dropout is off. Gate traces: per layer*D + direction, a dict of
        (T, B, H) time-major arrays (see the subclass for the gate names); padding steps
        are zero.
        """
        y, state_n, tape = self._forward(x, state, lengths, ablate, False, for_backward=False, traced=return_gates)
        if return_gates:
            return y, state_n, self.gate_traces(tape)
        return y, state_n

    def step(self, x_t: ArrayLike, state: StateLike = None) -> tuple[np.ndarray, State]:
        """One time step for a streaming loop: x_t (B, I) -> (y_t (B, H), state).

        The same as one call over the whole sequence when the state is carried.
        """
        x_t = checked_step_input(self, x_t)
        y, state_n = self(x_t[:, None, :] if self.batch_first else x_t[None], state)
        return (y[:, 0] if self.batch_first else y[0]), state_n

    def forward(
        self,
        x: ArrayLike,
        state: StateLike = None,
        *,
        lengths: ArrayLike | None = None,
        ablate: dict[str, ArrayLike] | None = None,
        training: bool = True,
    ) -> tuple[np.ndarray, State, Tape]:
        """Run the layer and keep what ``backward`` needs.

        x: (B, T, I) if batch_first else (T, B, I). state: None for zeros, else as the
        returned state, each array (num_layers * D, B, H). lengths: None or (B,) ints in
        [1, T]: steps past a sequence's length are padding (zero output, no effect on the
        state or the gradients). ablate: see the subclass. training: applies ``dropout``
        between layers (and the subclass's training-only options).
        Returns ``y`` ((B, T, D*H) or (T, B, D*H)), the final state and the tape.
        """
        return self._forward(x, state, lengths, ablate, training, for_backward=True, traced=True)

    def _forward(self, x, state, lengths, ablate, training, for_backward, traced, weights=None):
        """forward; without ``for_backward`` (inference) nothing is copied for the tape's sake,
        and without ``traced`` either the core may keep no gate tape at all.

        ``weights``: checked parameters the caller owns and keeps unchanged until backward
        (the PyTorch bridge, whose autograd checks that through version counters). With
        them nothing is copied or fingerprinted for the tape: x, the state and y are used
        as they are, and ``params`` is not read.
        """
        guarded = weights is None
        keep = for_backward and guarded
        x = self._checked_input(x, keep=keep)
        steps, batch = (x.shape[1], x.shape[0]) if self.batch_first else x.shape[:2]
        if guarded:
            weights = self._checked_params(with_grads=for_backward)
        recorded = fingerprints(weights) if keep else None
        initial = self._state_parts(state, batch, "state", keep=keep)
        if initial is None:
            initial = [np.zeros(shape, self.dtype) for shape in self._state_shapes(batch)]
        clamps = self._checked_ablation(ablate)
        packing = None
        # The core reads the caller's layout; variable lengths need the batch sorted by
        # length, which is done on a time-major copy.
        batch_first = self.batch_first
        if lengths is not None:
            packing = Packing(checked_lengths(lengths, batch, steps), steps)
            x = packing.sort(_in_layout(x, batch_first))
            initial = [packing.sort(part) for part in initial]
            batch_first = False
        width, directions = self.output_size, self.num_directions
        output_shape = (batch, steps) if batch_first else (steps, batch)
        layer_input, inputs, masks, runs = x, [], [], []
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and training and self.dropout > 0:
                # Drawn time-major whatever the layout, so a seed gives the same masks.
                keep = 1.0 - self.dropout
                features = layer_input.shape[2]
                mask = (self._dropout_rng.random((steps, batch, features)) < keep).astype(self.dtype)
                mask /= self.dtype.type(keep)
                layer_input = layer_input * _in_layout(mask, batch_first)
            inputs.append(layer_input)
            masks.append(mask)
            y = _aligned.empty(output_shape + (directions * width,), self.dtype)
            for direction in range(directions):
                index = layer * directions + direction
                runs.append(
                    self._run_direction(
                        layer_input,
                        self._direction_params(weights, layer, direction),
                        [part[index] for part in initial],
                        direction,
                        y,
                        batch_first,
                        packing,
                        clamps[index],
                        training,
                        traced,
                    )
                )
            layer_input = y
        final = self._final_state(runs, packing)
        output = layer_input
        if packing is not None:
            output = self._user_layout(packing.restore(output))
            final = [packing.restore(part) for part in final]
        elif keep:
            output = output.copy()  # the tape keeps the core's y: backward reads it
        tape = Tape(self, output.shape, inputs, masks, runs, initial, packing, clamps, recorded)
        return output, self._pack_state(final), tape

    def _run_direction(self, x, weights, initial, direction, y, batch_first, packing, clamps, training, traced):
        # With lengths the core starts the reverse direction at each sequence's own end.
        sizes = None if packing is None else packing.batch_sizes
        run = _DirectionRun(x, y, direction * self.output_size, None, batch_first)
        reverse = self._runs_reversed(direction)
        steps, batch = run.steps_and_batch()
        call = self._core_call(weights, reverse, run.offset, batch_first, sizes, clamps, steps, batch, training, traced)
        run.tape = call.run(x, initial, y)
        return run

    @overload
    def backward(
        self, tape: Tape, dy: ArrayLike, dstate: StateLike = None, *, return_hidden_gradients: Literal[False] = False
    ) -> tuple[np.ndarray, State]: ...
    @overload
    def backward(
        self, tape: Tape, dy: ArrayLike, dstate: StateLike = None, *, return_hidden_gradients: Literal[True]
    ) -> tuple[np.ndarray, State, np.ndarray]: ...
    def backward(
        self, tape: Tape, dy: ArrayLike, dstate: StateLike = None, *, return_hidden_gradients: bool = False
    ) -> tuple[np.ndarray, State] | tuple[np.ndarray, State, np.ndarray]:
        """Gradients from one ``forward``'s tape; adds the weight gradients to ``grads``.

        dy: gradient of y, same shape as y (padding steps are ignored). dstate: None or
        the gradient of the final state, shaped like it. Returns ``(dx, dstate0)``: the
        gradients of x (x's layout) and of the initial state.

        ``return_hidden_gradients=True`` adds a third result, G of shape
        (num_layers * D, T, B, H): G[k, t] = dL/dh_t of layer-direction k (index
        layer * D + direction, as the state), the whole gradient reaching the hidden state
        h_t (its part of dy plus all that comes back from the steps after t, for a reverse
        direction the steps before t), as the backward pass computes it. Time-major like
        the gate traces, H the output size (``proj_size`` when projected); padding steps
        are zero. It is what vanishes over the steps in a vanilla RNN (docs/memory-demo.md).
        """
        weights = self.check_tape(tape)
        with self._grads_lock:
            return self._backward(tape, weights, self.grads, dy, dstate, return_hidden_gradients)

    def _backward(self, tape, weights, grads, dy, dstate, return_hidden_gradients):
        """backward with the forward's checked ``weights``, adding to ``grads`` (by name)."""
        dy = as_numeric_array(dy, "dy")
        if dy.shape != tape.output_shape:
            raise ValueError(
                f"expected dy of shape {shape_text(tape.output_shape)} (the shape of y), got {shape_text(dy.shape)}"
            )
        batch = tape.output_shape[0 if self.batch_first else 1]
        d_output = np.ascontiguousarray(dy, dtype=self.dtype)
        d_final = self._state_parts(dstate, batch, "dstate")
        packing = tape.packing
        if packing is not None:  # the core ran on sorted time-major copies
            d_output = packing.sort(_in_layout(d_output, self.batch_first))
            d_final = None if d_final is None else [packing.sort(part) for part in d_final]
        d_initial = [_aligned.empty(shape, self.dtype) for shape in self._state_shapes(batch)]
        directions = self.num_directions
        hidden = None
        if return_hidden_gradients:  # time-major, in the core's (sorted) batch order
            steps = tape.output_shape[1 if self.batch_first else 0]
            hidden = np.empty((self.num_layers * directions, steps, batch, self.output_size), self.dtype)
        for layer in reversed(range(self.num_layers)):
            # The first direction writes the input gradient, the second adds to it.
            d_input = _aligned.empty_like(tape.inputs[layer])
            for direction in range(directions):
                index = layer * directions + direction
                # The core's tape holds the forward's x, initial state, y and options.
                finals = [None] * len(d_initial) if d_final is None else [part[index] for part in d_final]
                self._core_backward_function()(
                    tape.runs[index].tape,
                    self._core_weights(self._direction_params(weights, layer, direction)),
                    d_output,
                    *finals,
                    self._core_weights(self._direction_params(grads, layer, direction)),
                    d_input,
                    *[part[index] for part in d_initial],
                    accumulate_dx=direction == 1,
                    hidden_grads=None if hidden is None else hidden[index],
                )
            if tape.masks[layer] is not None:
                d_input *= _in_layout(tape.masks[layer], tape.runs[0].batch_first)
            d_output = d_input
        if packing is not None:
            d_output = self._user_layout(packing.restore(d_output))
            d_initial = [packing.restore(part) for part in d_initial]
            if hidden is not None:
                hidden = np.stack([packing.restore(part) for part in hidden])
        if hidden is not None:
            return d_output, self._pack_state(d_initial), hidden
        return d_output, self._pack_state(d_initial)

    def check_tape(self, tape: Tape) -> Params:
        """The checked parameters, or a ValueError when ``tape`` cannot be used by backward
        (another layer's, or recorded before the parameters changed). Adds nothing to grads,
        so a model can check every layer's tape before any backward runs."""
        if not isinstance(tape, Tape) or not tape.belongs_to(self):
            raise ValueError("expected a tape returned by this layer's forward, got one from elsewhere")
        # A parameter replaced by one of another shape since the forward is refused here,
        # one changed in value (in place or replaced) by the fingerprints.
        weights = self._checked_params()
        check_unchanged(tape.fingerprints, weights, type(self).__name__)
        return weights

    def _final_state(self, runs, packing):
        """Per state kind, (L*D, B, H): each direction's state at its last processed step."""
        width = self.output_size
        finals = [[] for _ in self._state_names]
        for index, run in enumerate(runs):
            direction = index % self.num_directions
            steps, batch = run.steps_and_batch()
            h = _in_layout(run.y[..., run.offset : run.offset + width], run.batch_first)  # (T, B, H)
            if self._runs_reversed(direction):  # every sequence run in reverse ends at t = 0
                finals[0].append(h[0])
            elif packing is not None:  # each sequence's own last step
                finals[0].append(h[packing.last_steps(), np.arange(batch)])
            else:
                finals[0].append(h[steps - 1])
            for kind, state in enumerate(self._final_tape_states(run.tape), start=1):
                finals[kind].append(state)
        # One layer-direction (the common case) as a copy with a new axis: np.stack took
        # a visible share of a streaming step() at small sizes.
        return [parts[0][None].copy() if len(parts) == 1 else np.stack(parts) for parts in finals]

    def _final_tape_states(self, core_tape):
        """The final states beyond h (LSTM: c), (B, H) each, as the core wrote them."""
        return []

    def gate_traces(self, tape: Tape) -> list[dict[str, np.ndarray]]:
        """Per layer*D + direction, the gates the fused kernel wrote, as named (T, B, H) arrays.

        Time-major and in the caller's batch order; padding steps are zero. Read-only:
        without lengths they are views of the tape (no copy), which backward reads.
        """
        if not isinstance(tape, Tape) or not tape.belongs_to(self):
            raise ValueError("expected a tape returned by this layer's forward, got one from elsewhere")
        packing = tape.packing
        if packing is not None:  # (T, B) in the caller's batch order
            steps = tape.output_shape[1 if self.batch_first else 0]
            padding = np.arange(steps)[:, None] >= packing.lengths[packing.inverse][None, :]
        traces = []
        for run in tape.runs:
            named = self._named_gates(run.tape)
            if packing is not None:
                named = {name: packing.restore(value) for name, value in named.items()}
                for value in named.values():
                    value[padding] = 0  # a derived trace (coupled: forget = 1 - input) is not zero there
            traces.append({name: _read_only(value) for name, value in named.items()})
        return traces

    def _user_layout(self, time_major):
        """A time-major result of a variable-length run in the user's layout (a new array)."""
        return np.ascontiguousarray(_in_layout(time_major, self.batch_first))
