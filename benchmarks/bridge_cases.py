"""The cases of the PyTorch-bridge benchmark (torch_bridge.py) and the issue's targets.

A case is one training step of a next-token model, Embedding (V -> I) -> recurrent layer
(I -> H) -> Linear (H -> V), on a batch of B token sequences of T steps. The PyTorch side
runs ``torch.nn``'s layer, or for the LSTM variants torch.nn lacks, a Python loop over a
cell (torch_cells.py); the lstmcore side runs ``lstmcore.torch``'s module with the same
weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

VOCABULARY = 128

# torch / lstmcore a case should reach (the targets), by the kind of layer.
TARGETS = {"gru": 2.0, "lstm": 1.1, "layernorm": 3.0, "peephole": 3.0}


@dataclass(frozen=True)
class BridgeCase:
    """One model and batch.

    kind: "lstm" or "gru" (the lstmcore.torch module and torch.nn's layer).
    torch_cell: a cell class of torch_cells.py that PyTorch's side loops over, or None for
        torch.nn's layer; lstmcore_options turn the same variant on in lstmcore.torch.
    min_length: None for full sequences; else each sequence's length is drawn uniform in
        [min_length, T] and both sides take the batch as one PackedSequence.
    check_rtol: how far lstmcore's loss and every gradient may be from PyTorch's, relative
        to the tensor's largest magnitude, before the case is refused as not the same model.
    """

    name: str
    kind: str
    hidden_size: int
    seq_len: int
    batch: int
    target: str
    torch_cell: str | None = None
    lstmcore_options: dict = field(default_factory=dict)
    min_length: int | None = None
    check_rtol: float = 1e-4
    vocabulary: int = VOCABULARY

    @property
    def input_size(self):
        return self.hidden_size  # the embedding's width

    @property
    def target_ratio(self):
        return TARGETS[self.target]

    def quick(self):
        """The same case at tiny sizes, for a smoke test of the harness."""
        min_length = None if self.min_length is None else 2
        return replace(self, hidden_size=16, seq_len=8, batch=4, vocabulary=16, min_length=min_length)

    def describe(self):
        layer = f"{self.kind.upper()}" + (f" ({self.target}, torch: {self.torch_cell} loop)" if self.torch_cell else "")
        packed = f", packed, lengths {self.min_length}-{self.seq_len}" if self.min_length is not None else ""
        return f"{layer}, I=H={self.hidden_size} T={self.seq_len} B={self.batch} V={self.vocabulary}{packed}"


def _sizes(name, kind, target, **options):
    """The case at the issue's two sizes: I=H=256, B=64 and I=H=128, B=32, both T=100."""
    return [
        BridgeCase(f"{name}_h256_t100_b64", kind, 256, 100, 64, target, **options),
        BridgeCase(f"{name}_h128_t100_b32", kind, 128, 100, 32, target, **options),
    ]


CASES = [
    *_sizes("gru", "gru", "gru"),
    *_sizes("lstm", "lstm", "lstm"),
    # The layer-normalised LSTM drifts further in fp32 over 100 steps (cases.py says how far).
    *_sizes(
        "lstm_layernorm",
        "lstm",
        "layernorm",
        torch_cell="LayerNormLSTMCell",
        lstmcore_options={"layer_norm": True},
        check_rtol=5e-3,
    ),
    *_sizes("lstm_peephole", "lstm", "peephole", torch_cell="PeepholeLSTMCell", lstmcore_options={"peephole": True}),
    BridgeCase("lstm_packed_h256_t100_b64", "lstm", 256, 100, 64, "lstm", min_length=10),
]

CASES_BY_NAME = {case.name: case for case in CASES}
