"""The vanilla RNN layer, PyTorch's ``nn.RNN``, with ONNX's activations and clip."""

from __future__ import annotations

from typing import Any

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import DTypeLike
from lstmcore.rnn._activations import as_config, check_activation, check_clip
from lstmcore.rnn._recurrent import CoreCall, _GatedRecurrent


def check_nonlinearity(value: object) -> str | tuple[str, float, float]:
    """A name, or ("hard_sigmoid", alpha, beta), as ``check_activation``."""
    return check_activation(value, "nonlinearity")


class RNN(_GatedRecurrent):
    """Elman RNN, PyTorch's ``nn.RNN`` formulation and parameter names.

    ``h_t = act(x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act ``nonlinearity``:
    PyTorch's ``"tanh"`` or ``"relu"``, or any of ONNX's RNN activations as the LSTM's
    ``activation`` takes them ("sigmoid", "hard_sigmoid" or ("hard_sigmoid", alpha, beta),
    "linear", "softsign"). ``clip=c`` (ONNX's): the pre-activation is clipped to [-c, c]
    before act, so its gradient is zero where it was clipped. One block of H rows in each
    weight. State is ``h``, (num_layers * D, B, H). ``dropout=p``: dropout on the input of
    every layer but the first, in training. ``bias=False``: no bias parameters.
    ``reverse=True``: the one direction runs from each sequence's own end (ONNX's
    ``direction="reverse"``). Gate traces hold one array, ``hidden`` (h_t).
    """

    _state_names = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        nonlinearity: str | tuple[str, float, float] = "tanh",
        bidirectional: bool = False,
        batch_first: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        reverse: bool = False,
        clip: float | None = None,
    ) -> None:
        self.nonlinearity = check_nonlinearity(nonlinearity)
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

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(nonlinearity=as_config(self.nonlinearity), clip=self.clip)
        return config

    def __repr__(self):
        clip = "" if self.clip is None else f", clip={self.clip!r}"
        return super().__repr__()[:-1] + f", nonlinearity={self.nonlinearity!r}{clip})"

    def _gate_blocks(self):
        return 1

    def _unpack_state(self, state, name):
        return [state]

    def _pack_state(self, parts):
        return parts[0]

    def _named_gates(self, core_tape):
        """Trace names -> (T, B, H) views of one run's tape: h_t, the RNN's only activation."""
        return {"hidden": core_tape.hidden}

    @staticmethod
    def _core_weights(weights):
        return _core.RnnWeights(
            weights["weight_ih"],
            weights["weight_hh"],
            weights["bias_ih"],
            weights["bias_hh"],
        )

    def _core_call(self, weights, reverse, offset, batch_first, batch_sizes, clamps, steps, batch, training, traced):
        options = _core.PassOptions(reverse=reverse, y_offset=offset, batch_sizes=batch_sizes, batch_first=batch_first)
        # Inference without traces keeps no tape; with tanh or relu and no clip the tape
        # is only the call's arrays, since backward derives act' from y.
        arguments = (self.nonlinearity, traced or training)
        return CoreCall(_core.rnn_forward, self._core_weights(weights), options, arguments, {"clip": self.clip or 0.0})

    def _core_backward_function(self):
        return _core.rnn_backward
