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

CASES_BY_NAME = {case.name: case for case in CASES}
