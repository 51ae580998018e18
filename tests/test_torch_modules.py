"""lstmcore.torch's LSTM, GRU, RNN and cells against torch.nn's, holding the same weights:
outputs, final states and the gradients of the input, the initial state and every
parameter, for every option torch.nn has (stacking, directions, proj_size, both layouts,
bias=False, the RNN's relu, dropout in eval mode), padded, packed (sorted and unsorted,
uneven lengths) and unbatched input, with and without an initial state, in float32 and
float64. Tolerances: tests/_torch_twins.py (float64 1e-12, float32 1e-5, relative to the
tensor's magnitude).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence  # noqa: E402

from _torch_twins import check, check_all, parts, torch_dtypes, twins  # noqa: E402

# PyTorch's note that its oneDNN kernels skip projected LSTMs: true, and no concern here.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

STEPS, BATCH, INPUT, HIDDEN = 5, 3, 3, 4
# Uneven lengths, the longest as long as the input (pad_packed_sequence pads to it).
LENGTHS = {"sorted": [5, 3, 2], "unsorted": [2, 5, 3]}

# torch.nn's module kinds and options. Dropout cases run in eval mode, where torch.nn
# draws no mask; every other module stays in train mode, as a freshly built one is.
RECURRENT = {
    "lstm": ("LSTM", {}),
    "lstm-batch_first": ("LSTM", {"batch_first": True}),
    "lstm-stacked-bidirectional": ("LSTM", {"num_layers": 2, "bidirectional": True}),
    "lstm-projected": ("LSTM", {"proj_size": 2}),
    "lstm-projected-stacked-bidirectional-batch_first-no_bias": (
        "LSTM",
        {"proj_size": 3, "num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False},
    ),
    "lstm-no_bias": ("LSTM", {"bias": False}),
    "lstm-dropout-eval": ("LSTM", {"num_layers": 2, "dropout": 0.5}),
    "gru": ("GRU", {}),
    "gru-stacked-bidirectional-batch_first": ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    "gru-no_bias": ("GRU", {"bias": False}),
    "gru-dropout-eval": ("GRU", {"num_layers": 2, "dropout": 0.5}),
    "rnn": ("RNN", {}),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}),
    "rnn-relu-stacked-bidirectional-batch_first-no_bias": (
        "RNN",
        {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False},
    ),
    "rnn-dropout-eval": ("RNN", {"num_layers": 2, "dropout": 0.5}),
}
# How the input is given: padded (batched), packed with sorted or unsorted lengths, or
# unbatched; each with an initial state or without one.
INPUTS = [
    f"{form}{state}" for form in ("padded", "packed-sorted", "packed-unsorted", "unbatched") for state in ("", "-no_state")
]

CELLS = {
    "lstm_cell": ("LSTMCell", {}),
    "lstm_cell-no_bias": ("LSTMCell", {"bias": False}),
    "gru_cell": ("GRUCell", {}),
    "gru_cell-no_bias": ("GRUCell", {"bias": False}),
    "rnn_cell": ("RNNCell", {}),
    "rnn_cell-relu": ("RNNCell", {"nonlinearity": "relu"}),
    "rnn_cell-relu-no_bias": ("RNNCell", {"nonlinearity": "relu", "bias": False}),
}
CELL_INPUTS = ["batched", "batched-no_state", "unbatched", "unbatched-no_state"]
CELL_STEPS = 3  # a few steps, so each step's state gradient flows into the step before


def recurrent_twins(case, dtype):
    kind, options = RECURRENT[case]
    reference, ours = twins(kind, INPUT, HIDDEN, dtype=dtype, **options)
    if "dropout" in options:
        reference.eval()
        ours.eval()
    return reference, ours


def state_shapes(module, batch):
    """The initial state parts' shapes: (layers * directions, [batch,] size) each."""
    count = module.num_layers * (2 if module.bidirectional else 1)
    sizes = [getattr(module, "proj_size", 0) or module.hidden_size]
    if isinstance(module, torch.nn.LSTM):
        sizes.append(module.hidden_size)
    return [(count, *batch, size) for size in sizes]


def recurrent_inputs(module, form, dtype):
    """x (padded, what gradients are taken of), the initial state parts or [], and the
    generator that then draws the outputs' cotangents."""
    generator = torch.Generator().manual_seed(1)
    batch = () if form.startswith("unbatched") else (BATCH,)
    shape = (STEPS, *batch, INPUT)
    if module.batch_first and batch:
        shape = (BATCH, STEPS, INPUT)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    state = (
        []
        if form.endswith("no_state")
        else [torch.randn(s, generator=generator, dtype=dtype) for s in state_shapes(module, batch)]
    )
    return x, state, generator


def run(module, x, state, form):
    """module on x given as ``form``: (output tensor, the PackedSequence or None, final state parts)."""
    hx = None if not state else (tuple(state) if len(state) == 2 else state[0])
    if form.startswith("packed"):
        order = form.split("-")[1]
        packed_in = pack_padded_sequence(x, LENGTHS[order], batch_first=module.batch_first, enforce_sorted=order == "sorted")
        packed, final = module(packed_in, hx)
        assert isinstance(packed, PackedSequence)
        return packed.data, packed, parts(final)
    y, final = module(x, hx)
    return y, None, parts(final)


@torch_dtypes
@pytest.mark.parametrize("form", INPUTS)
@pytest.mark.parametrize("case", list(RECURRENT))
def test_recurrent_module_outputs_and_gradients_match_torch_nn(case, form, dtype):
    reference, ours = recurrent_twins(case, dtype)
    x, state, generator = recurrent_inputs(reference, form, dtype)
    results = []
    for module in (reference, ours):
        leaves = [x.clone().requires_grad_()] + [part.clone().requires_grad_() for part in state]
        y, packed, final = run(module, leaves[0], leaves[1:], form)
        results.append((leaves, y, packed, final, module))
    (leaves_t, y_t, packed_t, final_t, _), (leaves, y, packed, final, _) = results

    check("y", y, y_t)
    check_all([f"final state {k}" for k in range(len(final_t))], final, final_t)
    if packed_t is not None:
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            expected, got = getattr(packed_t, field), getattr(packed, field)
            assert (got is None and expected is None) or torch.equal(got, expected), field

    # Random cotangents for y and every final state part: every output feeds the gradients.
    cotangents = [torch.randn(t.shape, generator=generator, dtype=dtype) for t in [y_t, *final_t]]
    names = ["x"] + [f"initial state {k}" for k in range(len(state))] + [n for n, _ in reference.named_parameters()]
    assert [n for n, _ in ours.named_parameters()] == names[1 + len(state) :]
    gradients = []
    for leaves_, y_, final_, module in ((leaves_t, y_t, final_t, reference), (leaves, y, final, ours)):
        gradients.append(torch.autograd.grad([y_, *final_], [*leaves_, *module.parameters()], cotangents))
    check_all(names, gradients[1], gradients[0])


def cell_inputs(kind, form, dtype):
    generator = torch.Generator().manual_seed(2)
    batch = () if form.startswith("unbatched") else (BATCH,)
    xs = torch.randn((CELL_STEPS, *batch, INPUT), generator=generator, dtype=dtype)
    count = 2 if kind == "LSTMCell" else 1
    state = (
        []
        if form.endswith("no_state")
        else [torch.randn((*batch, HIDDEN), generator=generator, dtype=dtype) for _ in range(count)]
    )
    return xs, state, generator


@torch_dtypes
@pytest.mark.parametrize("form", CELL_INPUTS)
@pytest.mark.parametrize("case", list(CELLS))
def test_cell_steps_and_gradients_match_torch_nn(case, form, dtype):
    kind, options = CELLS[case]
    reference, ours = twins(kind, INPUT, HIDDEN, dtype=dtype, **options)
    xs, state, generator = cell_inputs(kind, form, dtype)
    runs = []
    for module in (reference, ours):
        leaves = [xs.clone().requires_grad_()] + [part.clone().requires_grad_() for part in state]
        hx = None if not state else (tuple(leaves[1:]) if kind == "LSTMCell" else leaves[1])
        outputs = []
        for step in range(CELL_STEPS):
            hx = module(leaves[0][step], hx)
            outputs.extend(parts(hx))
        runs.append((leaves, outputs, module))
    (_, outputs_t, _), (_, outputs, _) = runs
    per_step = 2 if kind == "LSTMCell" else 1
    check_all([f"state {k % per_step} after step {k // per_step}" for k in range(len(outputs_t))], outputs, outputs_t)

    cotangents = [torch.randn(t.shape, generator=generator, dtype=dtype) for t in outputs_t]
    names = ["x"] + [f"initial state {k}" for k in range(len(state))] + [n for n, _ in reference.named_parameters()]
    gradients = [torch.autograd.grad(outs, [*leaves_, *module.parameters()], cotangents) for leaves_, outs, module in runs]
    check_all(names, gradients[1], gradients[0])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_non_contiguous_input_and_state_give_torch_nn_results(kind):
    # Views in another memory order (a transposed batch, an expanded state) are read as
    # the values they show, not as their storage.
    reference, ours = twins(kind, INPUT, HIDDEN, num_layers=2)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, STEPS, INPUT, generator=generator, dtype=torch.float64).transpose(0, 1)
    state = [torch.randn(2, 1, HIDDEN, generator=generator, dtype=torch.float64).expand(2, BATCH, HIDDEN)]
    if kind == "LSTM":
        state.append(torch.randn(2, BATCH, 2 * HIDDEN, generator=generator, dtype=torch.float64)[..., ::2])
    assert not x.is_contiguous() and not any(part.is_contiguous() for part in state)
    y_t, final_t = run(reference, x, state, "padded")[::2]
    y, final = run(ours, x, state, "padded")[::2]
    check("y", y, y_t)
    check_all(["h_n", "c_n"][: len(final)], final, final_t)
