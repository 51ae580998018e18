"""The benchmark cases, the LSTM variants they may use, and how their FLOPs are counted.

To add a case, add one ``Case`` line to ``CASES``. To add a variant whose PyTorch side is
a Python loop over a cell (torch_cells.py, parameters named as lstmcore's), add an entry
to ``VARIANTS``: the keyword that turns it on in ``lstmcore.LSTM``, the torch cell, and
the ``lstmcore.reference`` kind.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# fp32 outputs of two implementations of the same layer agree to this (times the tensor's
# scale, max(1, max |expected|)).
CHECK_ATOL = 1e-4


@dataclass(frozen=True)
class Variant:
    """An LSTM variant: how each side builds it.

    lstmcore_kwargs: extra keywords for ``lstmcore.LSTM``.
    torch_cell: name of a cell class in torch_cells.py, run by ``LoopRNN``; None means
        the torch side is nn.LSTM / nn.GRU / nn.RNN.
    reference_kind: the ``kind`` argument of ``lstmcore.reference.rnn_forward``.
    check_atol: how far the other sides' fp32 outputs may be from lstmcore's before a
        case is refused as not computing the same thing.
    """

    lstmcore_kwargs: dict = field(default_factory=dict)
    torch_cell: str | None = None
    reference_kind: str | None = None
    check_atol: float = CHECK_ATOL


VARIANTS = {
    # nn.LSTM / nn.GRU / nn.RNN against lstmcore.LSTM / lstmcore.GRU / lstmcore.RNN.
    None: Variant(),
    # Plain LSTM whose torch side is nn.LSTMCell in a Python loop: shows what the
    # loop recipe costs next to nn.LSTM.
    "cell_loop": Variant(torch_cell="LSTMCell"),
    "peephole": Variant(lstmcore_kwargs={"peephole": True}, torch_cell="PeepholeLSTMCell", reference_kind="peephole_lstm"),
    # A layer-normalised LSTM amplifies rounding: over T = 100 steps at H = 256, lstmcore's
    # and PyTorch's fp32 outputs each drift about 9e-4 from the fp64 result (which the two
    # share to 3e-12), so fp32 sides are compared at 5e-3.
    "layernorm": Variant(
        lstmcore_kwargs={"layer_norm": True},
        torch_cell="LayerNormLSTMCell",
        reference_kind="layer_norm_lstm",
        check_atol=5e-3,
    ),
}


@dataclass(frozen=True)
class Case:
    """One benchmark: a layer, its sizes, and whether it trains or infers.

    x is (B, T, I) float32 (batch first, lstmcore's default; nn.LSTM gets batch_first=True);
    training is forward + backward of sum(y * dy) for a fixed random dy.
    """

    name: str
    kind: str  # "lstm", "gru" or "rnn" (tanh)
    mode: str  # "train" or "infer"
    hidden_size: int
    seq_len: int
    batch: int
    input_size: int | None = None  # None: same as hidden_size
    num_layers: int = 1
    bidirectional: bool = False
    variant: str | None = None  # a key of VARIANTS
    default: bool = True  # part of the default set
    proj_size: int = 0  # LSTM only: PyTorch's proj_size (0: none), on both sides

    def __post_init__(self):
        if self.input_size is None:
            object.__setattr__(self, "input_size", self.hidden_size)
        if self.kind not in GATES or self.mode not in ("train", "infer") or self.variant not in VARIANTS:
            raise ValueError(f"bad case {self}")
        if VARIANTS[self.variant].torch_cell and (self.num_layers != 1 or self.bidirectional):
            raise ValueError(f"case {self.name}: a cell-loop variant is one unidirectional layer")
        if self.proj_size and (self.kind != "lstm" or self.variant or not 0 < self.proj_size < self.hidden_size):
            raise ValueError(f"case {self.name}: proj_size is for a plain LSTM, between 0 and hidden_size")

    @property
    def spec(self):
        return VARIANTS[self.variant]

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        """Features of h_t per direction: proj_size if set, else hidden_size."""
        return self.proj_size or self.hidden_size

    def quick(self):
        """The same case at tiny sizes, for a smoke test of the harness."""
        proj = 8 if self.proj_size else 0
        return replace(self, hidden_size=16, input_size=16, seq_len=8, batch=min(self.batch, 4), proj_size=proj)

    def describe(self):
        parts = [
            f"{self.kind.upper()}{'(' + self.variant + ')' if self.variant else ''}",
            f"I={self.input_size} H={self.hidden_size}{f' P={self.proj_size}' if self.proj_size else ''} "
            f"T={self.seq_len} B={self.batch}",
        ]
        if self.num_layers > 1 or self.bidirectional:
            parts.append(f"layers={self.num_layers}{' bidirectional' if self.bidirectional else ''}")
        return ", ".join(parts) + f", {self.mode}"


CASES = [
    Case("lstm_train_h128_t100_b32", "lstm", "train", 128, 100, 32),
    Case("lstm_train_h256_t100_b64", "lstm", "train", 256, 100, 64),
    Case("lstm_train_h512_t35_b20", "lstm", "train", 512, 35, 20),
    Case("lstm_infer_h256_t100_b1", "lstm", "infer", 256, 100, 1),
    Case("lstm_infer_h256_t100_b64", "lstm", "infer", 256, 100, 64),
    Case("gru_train_h256_t100_b64", "gru", "train", 256, 100, 64),
    Case("gru_train_h128_t100_b32", "gru", "train", 128, 100, 32),
    Case("lstm_train_h256_t100_b64_bidir2", "lstm", "train", 256, 100, 64, num_layers=2, bidirectional=True),
    Case("lstm_peephole_train_h256_t100_b64", "lstm", "train", 256, 100, 64, variant="peephole"),
    Case("lstm_layernorm_train_h256_t100_b64", "lstm", "train", 256, 100, 64, variant="layernorm"),
    Case("lstm_cellloop_train_h256_t100_b64", "lstm", "train", 256, 100, 64, variant="cell_loop", default=False),
    # Beyond the list (--cases 'extra_*'): other sizes and shapes a user may run.
    Case("extra_lstm_train_h64_t100_b64", "lstm", "train", 64, 100, 64, default=False),
    Case("extra_lstm_train_h96_t100_b32", "lstm", "train", 96, 100, 32, default=False),
    Case("extra_lstm_train_h1024_t20_b16", "lstm", "train", 1024, 20, 16, default=False),
    Case("extra_lstm_train_h128_t100_b32_l3", "lstm", "train", 128, 100, 32, num_layers=3, default=False),
    Case("extra_lstm_train_i32_h256_t100_b64", "lstm", "train", 256, 100, 64, input_size=32, default=False),
    Case("extra_lstm_infer_h256_t50_b256", "lstm", "infer", 256, 50, 256, default=False),
    Case("extra_lstm_infer_h512_t100_b1", "lstm", "infer", 512, 100, 1, default=False),
    Case(
        "extra_lstm_infer_h256_t100_b64_bidir2",
        "lstm",
        "infer",
        256,
        100,
        64,
        num_layers=2,
        bidirectional=True,
        default=False,
    ),
    Case("extra_gru_infer_h256_t100_b64", "gru", "infer", 256, 100, 64, default=False),
    Case("extra_gru_infer_h256_t100_b1", "gru", "infer", 256, 100, 1, default=False),
    # The vanilla RNN (tanh) against nn.RNN: one gate block, so the element-wise work is a
    # larger share than the LSTM's.
    Case("rnn_train_h256_t100_b64", "rnn", "train", 256, 100, 64, default=False),
    Case("rnn_train_h128_t100_b32", "rnn", "train", 128, 100, 32, default=False),
    Case("rnn_infer_h256_t100_b64", "rnn", "infer", 256, 100, 64, default=False),
    Case("rnn_infer_h256_t100_b1", "rnn", "infer", 256, 100, 1, default=False),
    Case("extra_lstm_proj_train_h256_p64_t100_b64", "lstm", "train", 256, 100, 64, proj_size=64, default=False),
    Case("extra_lstm_proj_infer_h512_p128_t100_b1", "lstm", "infer", 512, 100, 1, proj_size=128, default=False),
]

CASES_BY_NAME = {case.name: case for case in CASES}


def select(patterns=None):
    """Cases named by a list of names or globs (in registry order); None: the default set."""
    if not patterns:
        return [case for case in CASES if case.default]
    chosen = set()
    for pattern in patterns:
        matched = [case.name for case in CASES if fnmatch.fnmatchcase(case.name, pattern)]
        if not matched:
            raise ValueError(f"no case matches {pattern!r}; known cases: {', '.join(CASES_BY_NAME)}")
        chosen.update(matched)
    return [case for case in CASES if case.name in chosen]


FLOP_MODEL = (
    "Matrix products only, counted as 2 FLOPs per multiply-add; element-wise work "
    "(activations, cell update, peepholes, layer norm) is ignored: it is O(T*B*H), "
    "under 1% of the products here except at tiny sizes. Forward, per layer and direction: "
    "2*T*B*G*H*(I_l + W) with G = 4 gates (LSTM), 3 (GRU) or 1 (RNN), W the width of h_t (H, or P "
    "with proj_size, which adds the projection's 2*T*B*H*P) and I_l the layer's input width "
    "(I for the first layer, D*W above it). Backward: 2x forward (one product each for "
    "dx, dW_ih, dh_prev, dW_hh). Training = forward + backward = 3x forward; inference = forward."
)


def count_flops(case):
    """FLOPs of one timed iteration of ``case``; see FLOP_MODEL for what is counted.

    Forward per layer and direction: 2*T*B*(G*H*(I_l + W) + H*P), G = 4 for LSTM, 3 for
    GRU, 1 for RNN, W = P with proj_size (else H and no projection term); element-wise work ignored.
    Backward = 2x forward, so training = 3x forward.
    """
    gates = GATES[case.kind]
    width = case.output_size
    forward = 0
    for layer in range(case.num_layers):
        layer_input = case.input_size if layer == 0 else case.directions * width
        per_row = gates * case.hidden_size * (layer_input + width) + case.hidden_size * case.proj_size
        forward += case.directions * 2 * case.seq_len * case.batch * per_row
    return 3 * forward if case.mode == "train" else forward
