"""The GRU layer: PyTorch's formulation, or the original one of Cho et al. (reset_after=False)."""

from __future__ import annotations

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import DTypeLike
from lstmcore._util.checks import check_bool
from lstmcore.reference._activations import Activations
from lstmcore.rnn._activations import as_config, check_activation, check_clip, core_spec
from lstmcore.rnn._recurrent import CoreCall, _GatedRecurrent


class GRU(_GatedRecurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` formulation and parameter names.

    Gates r, z, n stacked in that order (3H rows); the reset gate multiplies
    ``h W_hn^T + b_hn`` as in PyTorch. State is ``h``, (num_layers * D, B, H).
    ``dropout=p``: dropout on the input of every layer but the first, in training.
    ``bias=False``: no bias parameters. ``reverse=True``: the one direction runs from each
    sequence's own end (ONNX's ``direction="reverse"``), as for the LSTM.
    ``reset_after=False``: the original GRU of Cho et al. 2014 (ONNX's default,
    ``linear_before_reset=0``; Keras's ``reset_after=False``), whose reset gate scales h
    before W_hn: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``; same parameters.
    ``gate_activation`` (r, z; default "sigmoid"), ``activation`` (n; default "tanh") and
    ``clip=c`` (every gate pre-activation clipped to [-c, c] before its activation): ONNX's
    activations and clip, in either form; the activations as for the LSTM.
    """

    _state_names = ("h",)

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
        reset_after: bool = True,
        gate_activation: str | tuple[str, float, float] = "sigmoid",
        activation: str | tuple[str, float, float] = "tanh",
        clip: float | None = None,
    ) -> None:
        self.reset_after = check_bool(reset_after, "reset_after")
        self.gate_activation = check_activation(gate_activation, "gate_activation")
        self.activation = check_activation(activation, "activation")
        self.clip = check_clip(clip)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dtype=dtype,
            seed=seed,
            dropout=dropout,
            bias=bias,
            reverse=reverse,
        )
        self._init_params()

    def get_config(self):
        config = super().get_config()
        config.update(
            reset_after=self.reset_after,
            gate_activation=as_config(self.gate_activation),
            activation=as_config(self.activation),
            clip=self.clip,
        )
        return config

    def _activation_options(self):
        """The activation keywords off their defaults, by name."""
        found = {"gate_activation": self.gate_activation, "activation": self.activation, "clip": self.clip}
        defaults = {"gate_activation": "sigmoid", "activation": "tanh", "clip": None}
        return {name: value for name, value in found.items() if value != defaults[name]}

    def _chosen_activations(self):
        """[gate, candidate, output (unused)], or None for the default sigmoid and tanh."""
        if self.gate_activation == "sigmoid" and self.activation == "tanh" and self.clip is None:
            return None
        return [self.gate_activation, self.activation, "tanh"]

    def _gate_blocks(self):
        return 3

    def _unpack_state(self, state, name):
        return [state]

    def _pack_state(self, parts):
        return parts[0]

    def _named_gates(self, core_tape):
        """Trace names -> (T, B, H) views of one run's tape: reset, update, candidate."""
        gates, hidden = core_tape.gates, self.hidden_size
        named = {name: gates[:, :, k * hidden : (k + 1) * hidden] for k, name in enumerate(("reset", "update", "candidate"))}
        chosen = self._chosen_activations()
        if chosen:  # the tape holds pre-activations
            acts = Activations(*chosen, clip=self.clip)
            named = {name: (acts.candidate if name == "candidate" else acts.gate)(value)[0] for name, value in named.items()}
        return named

    @staticmethod
    def _core_weights(weights):
        return _core.GruWeights(
            weights["weight_ih"],
            weights["weight_hh"],
            weights["bias_ih"],
            weights["bias_hh"],
        )

    def _core_call(self, weights, reverse, offset, batch_first, batch_sizes, clamps, steps, batch, training, traced):
        options = _core.PassOptions(reverse=reverse, y_offset=offset, batch_sizes=batch_sizes, batch_first=batch_first)
        chosen = self._chosen_activations()
        # Inference without gate traces keeps no tape: the kernel then writes only y.
        keywords = {
            "reset_after": self.reset_after,
            "activations": None if chosen is None else core_spec(chosen),
            "clip": self.clip or 0.0,
        }
        return CoreCall(_core.gru_forward, self._core_weights(weights), options, (traced or training,), keywords)

    def _core_backward_function(self):
        return _core.gru_backward
