"""The cases of the inference benchmark (inference.py): issue 22's shapes.

A case is one forward pass of a one-layer recurrent layer, batch first, float32, from a
zero state: x (B, T, I) in, y (B, T, H) and the final state out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class InferenceCase:
    """One layer and input: ``kind`` "lstm" or "gru", input size I, hidden size H, T steps, B sequences."""

    name: str
    kind: str
    input_size: int
    hidden_size: int
    seq_len: int
    batch: int

    def quick(self):
        """The same case at tiny sizes, for a smoke test of the harness (B=1 stays 1)."""
        return replace(self, input_size=8, hidden_size=16, seq_len=6, batch=min(self.batch, 4))

    def describe(self):
        return f"{self.kind.upper()} I={self.input_size} H={self.hidden_size} T={self.seq_len} B={self.batch}"


CASES = [
    InferenceCase("lstm_i16_h32_t20_b1", "lstm", 16, 32, 20, 1),
    InferenceCase("lstm_i64_h128_t50_b1", "lstm", 64, 128, 50, 1),
    InferenceCase("lstm_h256_t100_b1", "lstm", 256, 256, 100, 1),
    InferenceCase("lstm_h256_t100_b64", "lstm", 256, 256, 100, 64),
    InferenceCase("gru_h256_t100_b1", "gru", 256, 256, 100, 1),
    # the shape of a voice-activity detector's LSTM run over a clip: a long sequence at B=1
    InferenceCase("lstm_i128_h128_t730_b1", "lstm", 128, 128, 730, 1),
]

# Shapes beyond the issue's, for a side-by-side that does not stop at the shapes tuned
# for: batches of 2 to 64, a width that is not a multiple of 16, H=512 and 1024 (W_hh
# past the caches), GRU at B=4 and B=64. `--cases beyond` runs them.
BEYOND_CASES = [
    InferenceCase("lstm_i32_h64_t200_b1", "lstm", 32, 64, 200, 1),
    InferenceCase("lstm_i128_h512_t50_b1", "lstm", 128, 512, 50, 1),
    InferenceCase("lstm_i40_h300_t200_b2", "lstm", 40, 300, 200, 2),
    InferenceCase("lstm_h256_t100_b8", "lstm", 256, 256, 100, 8),
    InferenceCase("lstm_h256_t100_b16", "lstm", 256, 256, 100, 16),
    InferenceCase("lstm_i64_h128_t50_b32", "lstm", 64, 128, 50, 32),
    InferenceCase("gru_i32_h64_t100_b4", "gru", 32, 64, 100, 4),
    InferenceCase("gru_h256_t100_b64", "gru", 256, 256, 100, 64),
    InferenceCase("lstm_h1024_t20_b1", "lstm", 1024, 1024, 20, 1),
]

CASES_BY_NAME = {case.name: case for case in CASES + BEYOND_CASES}


def parse_shape(text):
    """The case of ``--shape KIND:I:H:T:B`` (for example ``gru:40:300:200:2``)."""
    parts = text.split(":")
    if len(parts) != 5 or parts[0] not in ("lstm", "gru"):
        raise ValueError(f"expected a shape as KIND:I:H:T:B with KIND lstm or gru (e.g. lstm:40:300:200:2), got {text!r}")
    try:
        sizes = [int(part) for part in parts[1:]]
    except ValueError:
        raise ValueError(f"expected whole numbers for I, H, T and B in {text!r}") from None
    if min(sizes) < 1:
        raise ValueError(f"expected I, H, T and B of at least 1, got {text!r}")
    i, h, t, b = sizes
    return InferenceCase(f"{parts[0]}_i{i}_h{h}_t{t}_b{b}", parts[0], i, h, t, b)
