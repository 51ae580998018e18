"""The GRU layer, PyTorch's formulation."""

from __future__ import annotations

import numpy as np

from lstmcore import _aligned, _core
from lstmcore._recurrent import _GatedRecurrent


class GRU(_GatedRecurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` formulation and parameter names.

    Gates r, z, n stacked in that order (3H rows); the reset gate multiplies
    ``h W_hn^T + b_hn`` as in PyTorch. State is ``h``, (num_layers * D, B, H).
    ``dropout=p``: dropout on the input of every layer but the first, in training.
    """

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
        dropout=0.0,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dtype=dtype,
            seed=seed,
            dropout=dropout,
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
        (tape,) = core_tape
        hidden = self.hidden_size
        return {name: tape[:, :, k * hidden : (k + 1) * hidden] for k, name in enumerate(("reset", "update", "candidate"))}

    def _core_forward(self, run, weights, initial, reverse, batch_sizes, clamps, training, traced):
        steps, batch = run.steps_and_batch()
        # Inference without gate traces keeps no tape: the kernel then writes only y.
        taped = traced or training
        gates = _aligned.empty((steps, batch, _core.diagnostics.gru_tape_width(self.hidden_size)), self.dtype) if taped else None
        _core.gru_forward(
            run.x,
            weights["weight_ih"],
            weights["weight_hh"],
            weights["bias_ih"],
            weights["bias_hh"],
            *initial,
            reverse,
            run.y,
            run.offset,
            gates,
            batch_sizes=batch_sizes,
            batch_first=run.batch_first,
        )
        return (gates,)

    def _core_backward(
        self, run, reverse, dy, dx, accumulate_dx, batch_sizes, weights, initial, d_final, grads, d_initial, clamps
    ):
        _core.gru_backward(
            run.x,
            weights["weight_ih"],
            weights["weight_hh"],
            weights["bias_ih"],
            weights["bias_hh"],
            *initial,
            reverse,
            run.y,
            run.offset,
            *run.tape,
            dy,
            None if d_final is None else d_final[0],
            dx,
            grads["weight_ih"],
            grads["weight_hh"],
            grads["bias_ih"],
            grads["bias_hh"],
            *d_initial,
            batch_sizes=batch_sizes,
            batch_first=run.batch_first,
            accumulate_dx=accumulate_dx,
        )
