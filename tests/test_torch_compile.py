"""torch.compile over lstmcore.torch modules: each pass is one custom operator with a fake
(shape-only) implementation, so fullgraph=True compiles with no graph break, and the
compiled function's outputs and gradients (input, initial state, every parameter) equal
eager mode's. aot_eager for the LSTM, GRU, RNN and the cells, for new shapes (recompiled
with symbolic sizes) and in train mode (the same seed, the same masks); one test with
inductor, the default backend, which generates and builds C++ and so is the slow one
(marked ``slow``).

Tolerances: float64, 1e-12 (the same core calls; only the compiled graph's own arithmetic
around them may round in another order); float32 with inductor, 1e-5 (inductor fuses and
reorders the loss's float32 sums, whose gradient is the core's dy).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lstmcore.torch as lt  # noqa: E402
from _torch_twins import check, check_all, parts  # noqa: E402

# torch's own import of its deprecated torch.jit while dynamo starts.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

STEPS, BATCH, INPUT, HIDDEN = 4, 2, 3, 4

CASES = {
    "lstm-stacked": ("LSTM", {"num_layers": 2}),
    "projected-bidirectional": ("LSTM", {"proj_size": 2, "bidirectional": True}),
    "peephole-reverse": ("LSTM", {"peephole": True, "reverse": True}),
    "gru-bidirectional-batch_first": ("GRU", {"bidirectional": True, "batch_first": True}),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}),
    "lstm_cell": ("LSTMCell", {}),
    "gru_cell-reset_before": ("GRUCell", {"reset_after": False}),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    # Every test compiles its own function: no guard or cache of an earlier test's.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def module_and_inputs(case, dtype):
    kind, options = CASES[case]
    torch.manual_seed(0)
    module = getattr(lt, kind)(INPUT, HIDDEN, dtype=dtype, **options)
    generator = torch.Generator().manual_seed(1)
    if kind.endswith("Cell"):
        x = torch.randn(BATCH, INPUT, generator=generator, dtype=dtype)
        state = [torch.randn(BATCH, HIDDEN, generator=generator, dtype=dtype) for _ in range(2 if kind == "LSTMCell" else 1)]
    else:
        shape = (BATCH, STEPS, INPUT) if module.batch_first else (STEPS, BATCH, INPUT)
        x = torch.randn(shape, generator=generator, dtype=dtype)
        count = module.num_layers * (2 if module.bidirectional else 1)
        sizes = [options.get("proj_size") or HIDDEN] + ([HIDDEN] if kind == "LSTM" else [])
        state = [torch.randn(count, BATCH, size, generator=generator, dtype=dtype) for size in sizes]
    return module, x, state


def loss_of(module):
    """A loss that uses every output, y squared (a consumer inductor may fuse with y's buffer)."""

    def loss(x, *state):
        out = module(x, tuple(state) if len(state) == 2 else state[0])
        outputs = parts(out) if isinstance(module, (lt.LSTMCell, lt.GRUCell, lt.RNNCell)) else [out[0], *parts(out[1])]
        return sum((output * output).sum() * (k + 1) for k, output in enumerate(outputs))

    return loss


def eager_and_compiled(module, x, state, backend):
    results = []
    for function in (loss_of(module), torch.compile(loss_of(module), backend=backend, fullgraph=True)):
        leaves = [x.clone().requires_grad_()] + [part.clone().requires_grad_() for part in state]
        value = function(*leaves)
        results.append((value, torch.autograd.grad(value, [*leaves, *module.parameters()])))
    names = ["x"] + [f"initial state {k}" for k in range(len(state))] + [name for name, _ in module.named_parameters()]
    return results, names


@pytest.mark.parametrize("case", list(CASES))
def test_aot_eager_fullgraph_gives_eager_outputs_and_gradients(case):
    module, x, state = module_and_inputs(case, torch.float64)
    ((expected, expected_grads), (got, got_grads)), names = eager_and_compiled(module, x, state, "aot_eager")
    check("loss", got, expected)
    check_all(names, got_grads, expected_grads)


def test_aot_eager_fullgraph_without_gradients_gives_eager_outputs():
    module, x, state = module_and_inputs("lstm-stacked", torch.float64)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        expected, got = module(x, tuple(state)), compiled(x, tuple(state))
    check_all(["y", "h_n", "c_n"], [got[0], *got[1]], [expected[0], *expected[1]])


def test_aot_eager_fullgraph_follows_new_shapes():
    # A second shape recompiles with symbolic sizes, which the fake implementations take.
    torch.manual_seed(0)
    module = lt.GRU(INPUT, HIDDEN, num_layers=2, dtype=torch.float64)
    compiled = torch.compile(lambda x: module(x)[0].square().sum(), backend="aot_eager", fullgraph=True)
    for steps, batch in [(STEPS, BATCH), (STEPS + 1, BATCH + 1), (STEPS + 3, BATCH + 2), (STEPS + 5, BATCH + 3)]:
        x = torch.randn(steps, batch, INPUT, dtype=torch.float64, requires_grad=True)
        got = compiled(x)
        (got_grad,) = torch.autograd.grad(got, x)
        expected = module(x)[0].square().sum()
        (expected_grad,) = torch.autograd.grad(expected, x)
        check(f"loss at {steps} steps, batch {batch}", got, expected)
        check(f"dx at {steps} steps, batch {batch}", got_grad, expected_grad)


def test_aot_eager_fullgraph_in_train_mode_draws_eager_masks_from_the_same_seed():
    torch.manual_seed(0)
    module = lt.LSTM(INPUT, HIDDEN, num_layers=2, dropout=0.5, zoneout=0.3, dtype=torch.float64).train()
    compiled = torch.compile(lambda x: module(x)[0].square().sum(), backend="aot_eager", fullgraph=True)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    torch.manual_seed(3)
    got = compiled(x)
    torch.manual_seed(3)
    check("loss", got, module(x)[0].square().sum())
    assert not torch.equal(compiled(x), got), "train mode drew the same masks twice"


@pytest.mark.slow
def test_slow_inductor_fullgraph_gives_eager_outputs_and_gradients():
    module, x, state = module_and_inputs("lstm-stacked", torch.float32)
    ((expected, expected_grads), (got, got_grads)), names = eager_and_compiled(module, x, state, "inductor")
    check("loss", got, expected)
    check_all(names, got_grads, expected_grads)
