"""The GRU layer, PyTorch's formulation."""

from __future__ import annotations

import numpy as np

import lstmcore._core as _core
from lstmcore._typing import DTypeLike
from lstmcore.rnn._recurrent import _GatedRecurrent


class GRU(_GatedRecurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` formulation and parameter names.

    Gates r, z, n stacked in that order (3H rows); the reset gate multiplies
    ``h W_hn^T + b_hn`` as in PyTorch. State is ``h``, (num_layers * D, B, H).
    ``dropout=p``: dropout on the input of every layer but the first, in training.
    ``bias=False``: no bias parameters. ``reverse=True``: the one direction runs from each
    sequence's own end (ONNX's ``direction="reverse"``), as for the LSTM.
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
    ) -> None:
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

    def _gate_blocks(self):
        return 3

    def _unpack_state(self, state, name):
        return [state]

    def _pack_state(self, parts):
        return parts[0]

    def _named_gates(self, core_tape):
        """Trace names -> (T, B, H) views of one run's tape: reset, update, candidate."""
        gates, hidden = core_tape.gates, self.hidden_size
        return {name: gates[:, :, k * hidden : (k + 1) * hidden] for k, name in enumerate(("reset", "update", "candidate"))}

    @staticmethod
    def _core_weights(weights):
        return _core.GruWeights(
            weights["weight_ih"],
            weights["weight_hh"],
            weights["bias_ih"],
            weights["bias_hh"],
        )

    def _core_forward(self, run, weights, initial, reverse, batch_sizes, clamps, training, traced):
        options = _core.PassOptions(
            reverse=reverse,
            y_offset=run.offset,
            batch_sizes=batch_sizes,
            batch_first=run.batch_first,
        )
        # Inference without gate traces keeps no tape: the kernel then writes only y.
        return _core.gru_forward(
            run.x,
            self._core_weights(weights),
            *initial,
            run.y,
            options,
            traced or training,
        )

    def _core_backward(
        self,
        run,
        reverse,
        dy,
        dx,
        accumulate_dx,
        batch_sizes,
        weights,
        initial,
        d_final,
        grads,
        d_initial,
        clamps,
    ):
        # The tape holds the forward's x, h0, y and options, which are the same run's.
        dh_n = None if d_final is None else d_final[0]
        _core.gru_backward(
            run.tape,
            self._core_weights(weights),
            dy,
            dh_n,
            self._core_weights(grads),
            dx,
            *d_initial,
            accumulate_dx=accumulate_dx,
        )
