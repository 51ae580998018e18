"""LSTM and GRU layers: PyTorch's parameters and shapes, explicit forward and backward.

Every pass runs in the C++ core (``lstmcore._core``), one call per layer and direction,
on time-major (T, B, features) arrays; this module owns the user-facing checks, the
layout conversion (batch_first), the stacking of layers and directions and the tape.
"""

from __future__ import annotations

import weakref

import numpy as np

from lstmcore import _core
from lstmcore._checks import as_numeric_array, check_dtype, check_positive_int, shape_text


class Tape:
    """What ``backward`` needs from one ``forward``: inputs, outputs and gate tapes.

    Opaque to users; tied to the layer that made it and to that layer's parameter shapes.
    """

    def __init__(self, layer, param_shapes, batch_first, inputs, outputs, initial, per_direction):
        self._layer = weakref.ref(layer)
        self.param_shapes = param_shapes
        self.batch_first = batch_first
        self.inputs = inputs  # per layer: its (T, B, features) input
        self.outputs = outputs  # per layer: its (T, B, D*H) output
        self.initial = initial  # per state kind (h, and c for LSTM): (L*D, B, H)
        self.per_direction = per_direction  # per layer*D + direction: the core's tape arrays

    def belongs_to(self, layer):
        return self._layer() is layer


class _GatedRecurrent:
    """Shared machinery of LSTM and GRU; subclasses set the gate count and the core calls."""

    _gates = 0
    _state_names = ("h",)

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        *,
        bidirectional=False,
        batch_first=True,
        dtype=np.float32,
        seed=None,
    ):
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self.params = self._initial_params(np.random.default_rng(seed))
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    # ----------------------------------------------------------------- parameters

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _param_names(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        return [f"{kind}{suffix}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def _param_shapes(self):
        shapes = {}
        rows = self._gates * self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            for direction in range(self.num_directions):
                w_ih, w_hh, b_ih, b_hh = self._param_names(layer, direction)
                shapes[w_ih] = (rows, layer_input)
                shapes[w_hh] = (rows, self.hidden_size)
                shapes[b_ih] = (rows,)
                shapes[b_hh] = (rows,)
        return shapes

    def _initial_params(self, rng):
        # PyTorch's default: every parameter uniform in +-1/sqrt(H), drawn in
        # registration order (layer, direction, weight_ih, weight_hh, bias_ih, bias_hh).
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {
            name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            for name, shape in self._param_shapes().items()
        }

    def zero_grad(self):
        for grad in self.grads.values():
            grad[...] = 0

    def get_config(self):
        """Constructor arguments, JSON-serialisable: ``type(layer)(**config)`` rebuilds it."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    def __repr__(self):
        extras = ", bidirectional=True" if self.bidirectional else ""
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}{extras}, dtype={self.dtype.name})"
        )

    def _checked_params(self):
        """The parameters and gradients as the core needs them, or a ValueError.

        A user may replace ``params[k]`` with any array; a wrong shape is an error, a
        wrong dtype or layout is converted (a copy for this call).
        """
        expected = self._param_shapes()
        for source, label in ((self.params, "params"), (self.grads, "grads")):
            if set(source) != set(expected):
                missing = sorted(set(expected) - set(source))
                extra = sorted(set(source) - set(expected))
                raise ValueError(f"{label} keys do not match the layer: missing {missing}, unexpected {extra}")
            for name, shape in expected.items():
                given = np.shape(source[name])
                if given != shape:
                    raise ValueError(
                        f"expected {label}[{name!r}] of shape {shape_text(shape)}, got {shape_text(given)}"
                    )
        for name in expected:
            grad = self.grads[name]
            if not (isinstance(grad, np.ndarray) and grad.dtype == self.dtype and grad.flags.c_contiguous):
                raise ValueError(f"grads[{name!r}] must be a C-contiguous {self.dtype.name} array")
        weights = {name: np.ascontiguousarray(value, dtype=self.dtype) for name, value in self.params.items()}
        return weights, expected

    # ----------------------------------------------------------------- checks

    def _time_major_input(self, x):
        x = as_numeric_array(x, "x")
        layout = "(B, T, {})" if self.batch_first else "(T, B, {})"
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(
                f"expected x of shape {layout.format(self.input_size)}, got {shape_text(x.shape)}"
            )
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"expected a non-empty sequence and batch, got x of shape {shape_text(x.shape)}")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _state_shape(self, batch):
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def _state_parts(self, state, batch, name):
        """A user state (or its gradient) as a list of (L*D, B, H) arrays, one per kind."""
        shape = self._state_shape(batch)
        if state is None:
            return None
        parts = self._unpack_state(state, name)
        checked = []
        for part, kind in zip(parts, self._state_names):
            part = as_numeric_array(part, f"{name} {kind}")
            if part.shape != shape:
                raise ValueError(
                    f"expected {name} {kind} of shape {shape_text(shape)}, got {shape_text(part.shape)}"
                )
            checked.append(np.ascontiguousarray(part, dtype=self.dtype))
        return checked

    # ----------------------------------------------------------------- passes

    def __call__(self, x, state=None):
        """Inference: ``y, state_n``. See ``forward``."""
        y, state_n, _ = self.forward(x, state)
        return y, state_n

    def forward(self, x, state=None):
        """Run the layer and keep what ``backward`` needs.

        x: (B, T, I) if batch_first else (T, B, I). state: None for zeros, else as the
        returned state, each array (num_layers * D, B, H).
        Returns ``y`` ((B, T, D*H) or (T, B, D*H)), the final state and the tape.
        """
        x = self._time_major_input(x)
        steps, batch, _ = x.shape
        weights, shapes = self._checked_params()
        initial = self._state_parts(state, batch, "state")
        if initial is None:
            initial = [np.zeros(self._state_shape(batch), self.dtype) for _ in self._state_names]
        hidden = self.hidden_size
        inputs, outputs, per_direction = [x], [], []
        for layer in range(self.num_layers):
            y = np.empty((steps, batch, self.num_directions * hidden), self.dtype)
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                layer_weights = [weights[n] for n in self._param_names(layer, direction)]
                per_direction.append(
                    self._core_forward(
                        inputs[-1], layer_weights, [s[index] for s in initial], direction == 1, y, direction * hidden
                    )
                )
            outputs.append(y)
            inputs.append(y)
        inputs.pop()
        final = self._final_state(outputs, per_direction)
        tape = Tape(self, shapes, self.batch_first, inputs, outputs, initial, per_direction)
        return self._user_layout(outputs[-1]), self._pack_state(final), tape

    def backward(self, tape, dy, dstate=None):
        """Gradients from one ``forward``'s tape; adds the weight gradients to ``grads``.

        dy: gradient of y, same shape as y. dstate: None or the gradient of the final
        state, shaped like it. Returns ``(dx, dstate0)``: the gradients of x (x's layout)
        and of the initial state.
        """
        if not isinstance(tape, Tape) or not tape.belongs_to(self):
            raise ValueError("expected a tape returned by this layer's forward, got one from elsewhere")
        weights, shapes = self._checked_params()
        if shapes != tape.param_shapes:
            raise ValueError(
                "the layer's parameter shapes changed since the forward that made this tape; run forward again"
            )
        steps, batch, width = tape.outputs[-1].shape
        dy = as_numeric_array(dy, "dy")
        expected = (batch, steps, width) if self.batch_first else (steps, batch, width)
        if dy.shape != expected:
            raise ValueError(f"expected dy of shape {shape_text(expected)} (the shape of y), got {shape_text(dy.shape)}")
        if self.batch_first:
            dy = dy.transpose(1, 0, 2)
        d_output = np.ascontiguousarray(dy, dtype=self.dtype)
        d_final = self._state_parts(dstate, batch, "dstate")
        d_initial = [np.empty(self._state_shape(batch), self.dtype) for _ in self._state_names]
        hidden = self.hidden_size
        for layer in reversed(range(self.num_layers)):
            d_input = np.zeros_like(tape.inputs[layer])
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                names = self._param_names(layer, direction)
                self._core_backward(
                    tape.inputs[layer],
                    [weights[n] for n in names],
                    [s[index] for s in tape.initial],
                    direction == 1,
                    tape.outputs[layer],
                    direction * hidden,
                    tape.per_direction[index],
                    d_output,
                    None if d_final is None else [s[index] for s in d_final],
                    d_input,
                    [self.grads[n] for n in names],
                    [s[index] for s in d_initial],
                )
            d_output = d_input
        return self._user_layout(d_output), self._pack_state(d_initial)

    def _final_state(self, outputs, per_direction):
        """Per state kind, (L*D, B, H): each direction's state at its last processed step."""
        hidden = self.hidden_size
        finals = []
        for kind in range(len(self._state_names)):
            rows = []
            for layer, y in enumerate(outputs):
                for direction in range(self.num_directions):
                    last = 0 if direction == 1 else y.shape[0] - 1
                    if kind == 0:
                        rows.append(y[last, :, direction * hidden : (direction + 1) * hidden])
                    else:
                        rows.append(per_direction[layer * self.num_directions + direction][1][last])
            finals.append(np.stack(rows))
        return finals

    def _user_layout(self, time_major):
        if self.batch_first:
            return np.ascontiguousarray(time_major.transpose(1, 0, 2))
        return time_major


class LSTM(_GatedRecurrent):
    """Long short-term memory, PyTorch's ``nn.LSTM`` formulation and parameter names.

    Gates i, f, g, o stacked in that order in ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}``
    (4H, H), ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (4H,); ``_reverse`` for the backward
    direction. State is ``(h, c)``, each (num_layers * D, B, H).
    """

    _gates = 4
    _state_names = ("h", "c")

    def _unpack_state(self, state, name):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"expected {name} as an (h, c) pair of arrays, got {type(state).__name__}")
        return state

    def _pack_state(self, parts):
        return tuple(parts)

    def _core_forward(self, x, weights, initial, reverse, y, offset):
        steps, batch, _ = x.shape
        gates = np.empty((steps, batch, 4 * self.hidden_size), self.dtype)
        cells = np.empty((steps, batch, self.hidden_size), self.dtype)
        _core.lstm_forward(x, *weights, *initial, reverse, y, offset, gates, cells)
        return gates, cells

    def _core_backward(self, x, weights, initial, reverse, y, offset, tape, dy, d_final, dx, grads, d_initial):
        dh_n, dc_n = (None, None) if d_final is None else d_final
        _core.lstm_backward(x, *weights, *initial, reverse, y, offset, *tape, dy, dh_n, dc_n, dx, *grads, *d_initial)


class GRU(_GatedRecurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` formulation and parameter names.

    Gates r, z, n stacked in that order (3H rows); the reset gate multiplies
    ``h W_hn^T + b_hn`` as in PyTorch. State is ``h``, (num_layers * D, B, H).
    """

    _gates = 3
    _state_names = ("h",)

    def _unpack_state(self, state, name):
        return [state]

    def _pack_state(self, parts):
        return parts[0]

    def _core_forward(self, x, weights, initial, reverse, y, offset):
        steps, batch, _ = x.shape
        gates = np.empty((steps, batch, _core.gru_tape_width(self.hidden_size)), self.dtype)
        _core.gru_forward(x, *weights, *initial, reverse, y, offset, gates)
        return (gates,)

    def _core_backward(self, x, weights, initial, reverse, y, offset, tape, dy, d_final, dx, grads, d_initial):
        dh_n = None if d_final is None else d_final[0]
        _core.gru_backward(x, *weights, *initial, reverse, y, offset, *tape, dy, dh_n, dx, *grads, *d_initial)
