"""lstmcore.torch under autograd's rules for a graph: what the core's tape reads (the input,
the initial state, the weights) changed in place after forward makes backward raise
torch's version-counter error, as torch.nn's modules do, while the outputs are the
caller's to change; a graph backs up once without retain_graph and as often as asked
with it, with the same gradients each time; and a forward pass's tape lives exactly as
long as its graph (lstmcore.torch._engine._tapes, a registry of weak references).
Tolerances of the torch.nn comparisons: tests/_torch_twins.py.
"""

from __future__ import annotations

import gc
import re

import pytest

torch = pytest.importorskip("torch")

import lstmcore.torch as lt  # noqa: E402
from _torch_twins import check_all, parts, twins  # noqa: E402
from lstmcore.torch import _engine  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 4, 2, 3, 4
VERSION_ERROR = "one of the variables needed for gradient computation has been modified by an inplace operation"


def inputs(kind, generator_seed=1):
    generator = torch.Generator().manual_seed(generator_seed)
    cell = kind.endswith("Cell")
    x = torch.randn((BATCH, INPUT) if cell else (STEPS, BATCH, INPUT), generator=generator, dtype=torch.float64)
    shape = (BATCH, HIDDEN) if cell else (1, BATCH, HIDDEN)
    state = [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2 if "LSTM" in kind else 1)]
    return x, state


def outputs(module, x, state):
    """Every output of the module as a list: y and the final state parts, or a cell's state."""
    out = module(x, tuple(state) if len(state) == 2 else state[0])
    return parts(out) if type(module).__name__.endswith("Cell") else [out[0], *parts(out[1])]


def tapes_alive():
    """How many tapes are alive once garbage is collected (collected only if any is: a
    collection takes a while with torch loaded, and most tapes go with their last reference)."""
    if _engine._tapes:
        gc.collect()
    return len(_engine._tapes)


@pytest.fixture(autouse=True)
def no_tape_left_behind():
    # Each test starts and ends with no tape alive: one left over is a leak.
    assert tapes_alive() == 0
    yield
    assert tapes_alive() == 0


# What the tape reads, changed in place after forward (as an optimizer step, or a state
# buffer reused for the next batch, would). torch.nn's modules raise for what their own
# backward reads, which depends on what asks for a gradient; the core's backward reads
# all of these, always.
CHANGED = ["input", "h_0", "c_0", "weight_ih", "weight_hh", "bias_hh"]


@pytest.mark.parametrize(
    "changed, kind",
    [
        (changed, kind)
        for changed in CHANGED
        for kind in ("LSTM", "GRU", "LSTMCell", "RNNCell")
        if changed != "c_0" or "LSTM" in kind
    ],
)
def test_changing_what_the_tape_reads_in_place_makes_backward_raise(changed, kind):
    module = twins(kind, INPUT, HIDDEN)[1]
    x, state = inputs(kind)
    out = outputs(module, x, state)
    target = {"input": x, "h_0": state[0], "c_0": state[-1]}.get(changed)
    if target is None:
        target = getattr(module, changed + ("" if kind.endswith("Cell") else "_l0"))
    with torch.no_grad():
        target.add_(1.0)
    with pytest.raises(RuntimeError, match=re.escape(VERSION_ERROR)):
        sum(part.sum() for part in out).backward()


@pytest.mark.parametrize("changed", ["input", "h_0", "c_0"])
def test_torch_nn_raises_alike_for_the_input_and_initial_state(changed):
    # The same check on torch.nn's LSTM, the behaviour matched above.
    module = twins("LSTM", INPUT, HIDDEN)[0]
    x, state = inputs("LSTM")
    leaves = [tensor.requires_grad_() for tensor in (x, *state)]
    changed_copy = [tensor * 1.0 for tensor in leaves]
    out = outputs(module, changed_copy[0], changed_copy[1:])
    with torch.no_grad():
        changed_copy[["input", "h_0", "c_0"].index(changed)].add_(1.0)
    # torch.nn unbinds the state into views, whose own check words it differently.
    with pytest.raises(RuntimeError, match=re.escape(VERSION_ERROR) + "|has been modified inplace"):
        sum(part.sum() for part in out).backward()


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell"])
def test_changing_the_outputs_in_place_keeps_torch_nn_gradients(kind):
    # `y += residual` and friends: the tape keeps its own copy of what it reads of y.
    x, state = inputs(kind)
    results = []
    for module in twins(kind, INPUT, HIDDEN):
        out = outputs(module, x, state)
        for part in out:
            part.mul_(3.0).add_(1.0)
        loss = sum((part * part).sum() for part in out)
        results.append(torch.autograd.grad(loss, list(module.parameters())))
    check_all([name for name, _ in twins(kind, INPUT, HIDDEN)[0].named_parameters()], results[1], results[0])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "LSTMCell"])
def test_a_graph_backs_up_once_without_retain_graph_and_twice_with_it(kind):
    reference, ours = twins(kind, INPUT, HIDDEN)
    x, state = inputs(kind)
    names = [name for name, _ in reference.named_parameters()]
    expected = torch.autograd.grad(sum(p.sum() for p in outputs(reference, x, state)), list(reference.parameters()))

    loss = sum(part.sum() for part in outputs(ours, x, state))
    check_all(names, torch.autograd.grad(loss, list(ours.parameters())), expected)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        torch.autograd.grad(loss, list(ours.parameters()))
    del loss

    loss = sum(part.sum() for part in outputs(ours, x, state))
    first = torch.autograd.grad(loss, list(ours.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(ours.parameters()), retain_graph=True)
    for name, one, two in zip(names, first, second):
        assert torch.equal(one, two), name
    check_all(names, first, expected)
    loss.backward()  # a third time into .grad, which then holds exactly these gradients
    check_all(names, [value.grad for value in ours.parameters()], expected)


def test_a_tape_is_freed_with_its_outputs_when_backward_never_runs():
    module = lt.LSTM(INPUT, HIDDEN, dtype=torch.float64)
    x, _ = inputs("LSTM")
    y, (h, c) = module(x)
    assert tapes_alive() == 1
    del y
    assert tapes_alive() == 1, "h and c still hold the graph"
    del h, c
    assert tapes_alive() == 0


def test_a_tape_is_freed_by_backward_without_retain_graph_while_its_outputs_live():
    module = lt.GRU(INPUT, HIDDEN, dtype=torch.float64)
    x, _ = inputs("GRU")
    y, h = module(x)
    y.sum().backward(retain_graph=True)
    assert tapes_alive() == 1
    y.sum().backward()
    assert tapes_alive() == 0
    del y, h


def test_the_remaining_outputs_back_up_after_others_are_dropped():
    reference, ours = twins("LSTM", INPUT, HIDDEN)
    x, state = inputs("LSTM")
    results = []
    for module in (reference, ours):
        y, (h, c) = module(x, tuple(state))
        del y, h
        results.append(torch.autograd.grad(c.sum(), list(module.parameters())))
    check_all([name for name, _ in reference.named_parameters()], results[1], results[0])


def test_no_tape_is_kept_without_gradients():
    module = lt.LSTM(INPUT, HIDDEN, dtype=torch.float64)
    x, _ = inputs("LSTM")
    with torch.no_grad():
        y, _ = module(x)
    assert tapes_alive() == 0 and y.grad_fn is None
    module.requires_grad_(False)
    y, _ = module(x)
    assert tapes_alive() == 0 and y.grad_fn is None
    y, _ = module(x.requires_grad_())  # now the input asks for a gradient
    assert tapes_alive() == 1
    del y


def test_a_failed_backward_frees_its_tape():
    module = lt.GRU(INPUT, HIDDEN, dtype=torch.float64)
    x, _ = inputs("GRU")
    y, h = module(x)
    with torch.no_grad():
        module.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match=re.escape(VERSION_ERROR)):
        y.sum().backward()
    del y, h


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_compiled_forward_frees_its_tape_too():
    module = lt.LSTM(INPUT, HIDDEN, dtype=torch.float64)
    compiled = torch.compile(lambda x: module(x)[0].square().sum(), backend="aot_eager", fullgraph=True)
    x, _ = inputs("LSTM")
    loss = compiled(x)
    assert tapes_alive() == 1
    del loss
    assert tapes_alive() == 0
    compiled(x).backward()
    torch._dynamo.reset()
