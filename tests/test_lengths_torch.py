"""``lengths=`` against PyTorch's packed sequences (``pack_padded_sequence``): the LSTM
(plain and ``proj_size``), the GRU and the RNN (tanh), stacked and bidirectional, an
unsorted batch, a given initial state. Skipped where torch is not installed (it is not a
dependency).

Compared: y on the valid steps (PyTorch's padded output is zero past each length, as
lstmcore's), the final states, dx, the initial state's gradient and every parameter
gradient, for loss = sum(y * dy) + sum(finals * dstate) with dy zero on padded steps
(PyTorch's padded output carries no gradient there; lstmcore never reads them).

Tolerances as in tests/test_core_matches_reference.py, |got - expected| <= tol * scale +
tol * |expected|: float64, 1e-12 (the same arithmetic in another order; observed <= 1e-15);
float32, 1e-5 against PyTorch in float64 on the same float32 inputs (the float32 bound
justified there).
"""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _layers import move_off_initialisation
from _variants import dtypes

torch = pytest.importorskip("torch")

INPUT, HIDDEN, STEPS = 3, 6, 7
LENGTHS = [4, 7, 1, 6]


def load_into_torch(layer, kind, proj_size):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    extra = {"proj_size": proj_size} if proj_size else {}
    net = cls(
        INPUT, HIDDEN, layer.num_layers, bidirectional=layer.num_directions == 2, batch_first=True,
        dtype=torch.float64, **extra,
    )  # fmt: skip
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            parameter.copy_(torch.tensor(layer.params[name], dtype=torch.float64))
    return net


@dtypes
@pytest.mark.parametrize(
    "kind, proj_size", [("lstm", 0), ("lstm", 4), ("gru", 0), ("rnn", 0)], ids=["lstm", "projected", "gru", "rnn"]
)
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)], ids=["L1", "L2-bidir"])
def test_lengths_match_torch_packed_sequences(kind, proj_size, num_layers, bidirectional, dtype):
    rng = np.random.default_rng(3)
    extra = {"proj_size": proj_size} if proj_size else {}
    cls = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU, "rnn": lstmcore.RNN}[kind]
    layer = cls(INPUT, HIDDEN, num_layers, bidirectional=bidirectional, dtype=dtype, seed=5, **extra)
    move_off_initialisation(layer, 5)  # off PyTorch's initialisation, so a mix-up shows
    net = load_into_torch(layer, kind, proj_size)

    batch, count = len(LENGTHS), layer.num_layers * layer.num_directions
    sizes = [layer.output_size] + ([HIDDEN] if kind == "lstm" else [])
    x = rng.normal(size=(batch, STEPS, INPUT)).astype(dtype)
    state = [rng.normal(size=(count, batch, size)).astype(dtype) for size in sizes]
    dstate = [rng.normal(size=(count, batch, size)).astype(dtype) for size in sizes]
    dy = rng.normal(size=(batch, STEPS, layer.num_directions * layer.output_size)).astype(dtype)
    for b, length in enumerate(LENGTHS):
        dy[b, length:] = 0

    as_state = tuple if kind == "lstm" else (lambda parts: parts[0])
    layer.zero_grad()
    y, final, tape = layer.forward(x, as_state(state), lengths=np.array(LENGTHS), training=False)
    dx, dstate0 = layer.backward(tape, dy, as_state(dstate))

    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    state_t = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in state]
    packed = torch.nn.utils.rnn.pack_padded_sequence(x_t, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    out, final_t = net(packed, as_state(state_t))
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=STEPS)
    final_t = list(final_t) if kind == "lstm" else [final_t]
    loss = (y_t * torch.tensor(dy, dtype=torch.float64)).sum()
    loss = loss + sum((f * torch.tensor(d, dtype=torch.float64)).sum() for f, d in zip(final_t, dstate))
    loss.backward()

    tol = 1e-12 if dtype == np.float64 else 1e-5

    def check(name, got, expected):
        expected = expected.detach().numpy()
        assert got.dtype == dtype, f"{name} is {got.dtype}"
        assert_close(name, got, expected, tol, scaled_atol(tol, expected))

    check("y", y, y_t)
    check("dx", dx, x_t.grad)
    for k, (part, part_t) in enumerate(zip(final if kind == "lstm" else [final], final_t)):
        check(f"final state {k}", part, part_t)
    for k, (part, part_t) in enumerate(zip(dstate0 if kind == "lstm" else [dstate0], state_t)):
        check(f"initial state {k} gradient", part, part_t.grad)
    for name, parameter in net.named_parameters():
        check(f"grads[{name!r}]", layer.grads[name], parameter.grad)
