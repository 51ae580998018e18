"""The command line's limits: every size a user types is refused above a sane bound before
anything is allocated, and so is a model whose weights or one batch's passes would need
more memory than a CPU training run sensibly takes.

The bounds are far above what the tasks need (the defaults are 24-128) and far below what
would exhaust a machine: a typo like ``--layers 100000000`` is a one-line error, not a
process that allocates until it is killed.
"""

from __future__ import annotations

from lstmcore.cli._errors import TaskError

# option (the Python keyword) -> (lowest, highest) accepted
BOUNDS = {
    "hidden": (1, 4096),
    "embedding": (1, 4096),
    "layers": (1, 16),
    "epochs": (1, 100_000),
    "charlm_epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "window": (1, 10_000),
    "horizon": (1, 10_000),
    "season": (0, 10_000),
    "steps": (1, 10_000),
    # lstmcore demo memory: three models trained on T steps, a few minutes at most
    "memory_steps": (2, 1_000),
    # lstmcore convert: ONNX's opsets from the one whose recurrent operators it writes
    "opset": (14, 30),
    "samples": (1, 1_000_000),
    "max_steps": (1, 10_000),
    "vocabulary_size": (1, 1_000_000),
    "length": (0, 100_000),
    "max_samples": (0, 1_000_000_000),
    "seed": (0, 2**63 - 1),
}
# --temperature: far below, scores / temperature overflow to NaN probabilities; far above,
# every character is as likely as any other.
TEMPERATURE = (1e-3, 1e3)
# The most characters, tokens or classes a model file's metadata may list.
MAX_VOCABULARY = BOUNDS["vocabulary_size"][1]

# 100 M parameters: 400 MB of float32 weights, and as much again for the gradients and
# each of Adam's two moments.
MAX_PARAMETERS = 100_000_000
# The float32 values one training batch's forward and backward keep: 2 GB.
MAX_BATCH_VALUES = 500_000_000


def lstm_parameters(inputs, hidden, layers):
    """Parameters of a stack of LSTM layers: 4H (I + H + 2) for each."""
    total, width = 0, inputs
    for _ in range(layers):
        total += 4 * hidden * (width + hidden + 2)
        width = hidden
    return total


def check_model_size(*, parameters, batch_size, steps, hidden, layers, outputs_per_step=0):
    """A TaskError when the model's weights or one batch's passes would take more memory
    than MAX_PARAMETERS or MAX_BATCH_VALUES allow, naming the options to lower.

    A batch keeps per step and sequence, for each LSTM layer, its gates (4H), cells and
    output (H each) for backward, and about as much again while backward runs; the
    per-step outputs of a final Dense (charlm: one score per character) are counted once
    more for their gradient.
    """
    if parameters > MAX_PARAMETERS:
        raise TaskError(
            f"the model would have {parameters:,} parameters, more than the {MAX_PARAMETERS:,} this command "
            "trains: lower --hidden, --layers or --embedding"
        )
    values = batch_size * steps * (2 * layers * 6 * hidden + 2 * outputs_per_step)
    if values > MAX_BATCH_VALUES:
        raise TaskError(
            f"one batch would keep {values:,} values for training, more than {MAX_BATCH_VALUES:,}: "
            "lower --batch-size, --hidden, --layers or the sequence length"
        )
