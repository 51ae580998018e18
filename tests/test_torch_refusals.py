"""What lstmcore.torch refuses, each with an error that names what is supported and what
was given: float16/bfloat16 modules and inputs, meta and non-CPU tensors, a device other
than the CPU, wrong input dimensions or sizes, a wrong hx, a dtype other than the
module's, unknown keyword options and combinations lstmcore refuses; and second-order
gradients, which the core's fused backward cannot give.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

import lstmcore.torch as lt  # noqa: E402
from lstmcore.torch import InputError  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 4, 2, 3, 5


def x(*shape, dtype=torch.float32, **kwargs):
    return torch.zeros(shape or (STEPS, BATCH, INPUT), dtype=dtype, **kwargs)


def state(*shape, dtype=torch.float32):
    return torch.zeros(shape or (1, BATCH, HIDDEN), dtype=dtype)


def packed(dtype):
    return torch.nn.utils.rnn.pack_padded_sequence(x(dtype=dtype), [STEPS, 2])


# id -> (what raises, the error type, the message it holds).
INPUT_ERRORS = {
    "float16-module": (
        lambda: lt.LSTM(INPUT, HIDDEN, dtype=torch.float16),
        "got dtype=torch.float16 (for float16 or bfloat16, keep the module in float32 and convert its input with .float())",
    ),
    "bfloat16-cell": (
        lambda: lt.GRUCell(INPUT, HIDDEN, dtype=torch.bfloat16),
        "lstmcore.torch modules compute in torch.float32 or torch.float64; got dtype=torch.bfloat16",
    ),
    "module-halved-after": (
        lambda: lt.LSTM(INPUT, HIDDEN).half()(x(dtype=torch.float16)),
        "compute in float32 or float64 with every parameter of one dtype; got ['torch.float16'] "
        "(convert the module with .float() or .double())",
    ),
    "bfloat16-input": (
        lambda: lt.GRU(INPUT, HIDDEN)(x(dtype=torch.bfloat16)),
        "expected input of dtype torch.float32 (the module's parameters), got torch.bfloat16 (convert it with .float())",
    ),
    "float16-packed-input": (
        lambda: lt.LSTM(INPUT, HIDDEN)(packed(torch.float16)),
        "expected input.data of dtype torch.float32 (the module's parameters), got torch.float16",
    ),
    "float64-input-float32-module": (
        lambda: lt.RNN(INPUT, HIDDEN)(x(dtype=torch.float64)),
        "expected input of dtype torch.float32 (the module's parameters), got torch.float64",
    ),
    "float32-state-float64-module": (
        lambda: lt.GRU(INPUT, HIDDEN, dtype=torch.float64)(x(dtype=torch.float64), state()),
        "expected h_0 of dtype torch.float64 (the module's parameters), got torch.float32",
    ),
    "mixed-parameter-dtypes": (lambda: _mixed()(x()), "every parameter of one dtype; got ['torch.float32', 'torch.float64']"),
    "meta-input": (
        lambda: lt.LSTM(INPUT, HIDDEN)(x(device="meta")),
        "lstmcore.torch modules run on CPU tensors; got input on 'meta' "
        "(move it with .cpu(), or use torch.nn's module on that device)",
    ),
    "meta-module": (
        lambda: lt.LSTM(INPUT, HIDDEN).to("meta")(x()),
        "parameter 'weight_ih_l0' is on 'meta' (use torch.nn's module on that device)",
    ),
    "cuda-device": (
        lambda: lt.LSTM(INPUT, HIDDEN, device="cuda"),
        "lstmcore.torch modules run on the CPU; got device='cuda'",
    ),
    "cuda-device-cell": (lambda: lt.RNNCell(INPUT, HIDDEN, device=torch.device("cuda", 1)), "got device='cuda:1'"),
    "meta-device": (lambda: lt.GRU(INPUT, HIDDEN, device="meta"), "got device='meta'"),
    "4d-input": (
        lambda: lt.LSTM(INPUT, HIDDEN)(x(1, STEPS, BATCH, INPUT)),
        "expected input of 3 dimensions ((L, N, H_in)) or 2 (unbatched: (L, H_in)), got 4: (1, 4, 2, 3)",
    ),
    "1d-input": (
        lambda: lt.GRU(INPUT, HIDDEN, batch_first=True)(x(INPUT)),
        "expected input of 3 dimensions ((N, L, H_in)) or 2 (unbatched: (L, H_in)), got 1: (3)",
    ),
    "input-size": (
        lambda: lt.LSTM(INPUT, HIDDEN)(x(STEPS, BATCH, INPUT + 1)),
        "expected input of (L, N, H_in) with H_in=3, got (4, 2, 4)",
    ),
    "empty-sequence": (
        lambda: lt.RNN(INPUT, HIDDEN)(x(0, BATCH, INPUT)),
        "expected a non-empty sequence and batch, got input of shape (0, 2, 3)",
    ),
    "packed-3d-data": (
        lambda: lt.LSTM(INPUT, HIDDEN)(torch.nn.utils.rnn.pack_padded_sequence(x(STEPS, BATCH, INPUT, 1), [STEPS, 2])),
        "expected PackedSequence data of 2 dimensions (sum of lengths, H_in), got 3: (6, 3, 1)",
    ),
    "not-a-tensor": (lambda: lt.LSTM(INPUT, HIDDEN)(x().numpy()), "expected input as a torch.Tensor, got ndarray"),
    "sparse-input": (
        lambda: lt.GRU(INPUT, HIDDEN)(x().to_sparse()),
        "expected input as a dense tensor, got layout torch.sparse_coo",
    ),
    "lstm-hx-a-tensor": (lambda: lt.LSTM(INPUT, HIDDEN)(x(), state()), "expected hx as a tuple (h_0, c_0), got Tensor"),
    "lstm-hx-one-part": (lambda: lt.LSTM(INPUT, HIDDEN)(x(), (state(),)), "expected hx as a tuple (h_0, c_0), got tuple"),
    "gru-hx-a-tuple": (lambda: lt.GRU(INPUT, HIDDEN)(x(), (state(),)), "expected hx as a tensor h_0, got tuple"),
    "h0-batch": (
        lambda: lt.LSTM(INPUT, HIDDEN)(x(), (state(1, BATCH + 1, HIDDEN), state())),
        "expected h_0 of shape (1, 2, 5), got (1, 3, 5)",
    ),
    "c0-size": (
        lambda: lt.LSTM(INPUT, HIDDEN, proj_size=2)(x(), (state(1, BATCH, 2), state(1, BATCH, 2))),
        "expected c_0 of shape (1, 2, 5), got (1, 2, 2)",
    ),
    "h0-layers": (
        lambda: lt.GRU(INPUT, HIDDEN, num_layers=2, bidirectional=True)(x(), state()),
        "expected h_0 of shape (4, 2, 5), got (1, 2, 5)",
    ),
    "unbatched-h0-batched": (
        lambda: lt.RNN(INPUT, HIDDEN)(x(STEPS, INPUT), state()),
        "expected h_0 of shape (1, 5), got (1, 2, 5)",
    ),
    "cell-input-size": (
        lambda: lt.LSTMCell(INPUT, HIDDEN)(x(BATCH, INPUT + 2)),
        "expected input of shape (N, 3) with N >= 1, got (2, 5)",
    ),
    "cell-3d-input": (
        lambda: lt.GRUCell(INPUT, HIDDEN)(x()),
        "expected input of 2 dimensions (N, 3) or 1 (unbatched: (3,)), got 3: (4, 2, 3)",
    ),
    "cell-hx-a-tensor": (
        lambda: lt.LSTMCell(INPUT, HIDDEN)(x(BATCH, INPUT), state(BATCH, HIDDEN)),
        "expected hx as a tuple (h, c), got Tensor",
    ),
    "cell-h-shape": (
        lambda: lt.RNNCell(INPUT, HIDDEN)(x(BATCH, INPUT), state(BATCH + 1, HIDDEN)),
        "expected h of shape (2, 5), got (3, 5)",
    ),
    "cell-c-dtype": (
        lambda: lt.LSTMCell(INPUT, HIDDEN)(
            x(BATCH, INPUT), (state(BATCH, HIDDEN), state(BATCH, HIDDEN, dtype=torch.float64))
        ),
        "expected c of dtype torch.float32 (the module's parameters), got torch.float64",
    ),
}

OPTION_ERRORS = {
    "unknown-lstm-option": (
        lambda: lt.LSTM(INPUT, HIDDEN, peepholes=True),
        TypeError,
        "LSTM got unexpected keyword arguments ['peepholes']; lstmcore's options are ['peephole', 'coupled', ",
    ),
    "lstm-option-on-gru": (
        lambda: lt.GRU(INPUT, HIDDEN, peephole=True),
        TypeError,
        "GRU got unexpected keyword arguments ['peephole']; "
        "lstmcore's options are ['reset_after', 'gate_activation', 'activation', 'clip', 'reverse']",
    ),
    "proj_size-on-gru": (
        lambda: lt.GRU(INPUT, HIDDEN, proj_size=2),
        TypeError,
        "GRU got unexpected keyword arguments ['proj_size']",
    ),
    "reverse-on-a-cell": (
        lambda: lt.LSTMCell(INPUT, HIDDEN, reverse=True),
        TypeError,
        "LSTMCell got unexpected keyword arguments ['reverse']",
    ),
    "layer_norm-with-peephole": (
        lambda: lt.LSTM(INPUT, HIDDEN, layer_norm=True, peephole=True),
        ValueError,
        "LSTM: layer_norm=True combines with lengths, stacking, bidirectional, dropout and ablation, but not with peephole",
    ),
    "layer_norm-cell-with-coupled": (
        lambda: lt.LSTMCell(INPUT, HIDDEN, layer_norm=True, coupled=True),
        ValueError,
        "LSTMCell: layer_norm=True combines with",
    ),
    "zoneout-with-proj_size": (
        lambda: lt.LSTM(INPUT, HIDDEN, proj_size=2, zoneout=0.1),
        ValueError,
        "LSTM: recurrent_dropout and zoneout are not supported with proj_size",
    ),
    "forget_bias-with-coupled": (
        lambda: lt.LSTM(INPUT, HIDDEN, coupled=True, forget_bias=1.0),
        ValueError,
        "LSTM: forget_bias needs a forget gate; coupled=True has none",
    ),
    "activation-with-layer_norm": (
        lambda: lt.LSTM(INPUT, HIDDEN, layer_norm=True, activation="relu"),
        ValueError,
        "not with proj_size or layer_norm",
    ),
    "reverse-bidirectional": (
        lambda: lt.GRU(INPUT, HIDDEN, reverse=True, bidirectional=True),
        ValueError,
        "GRU: reverse=True runs a one-direction layer from each sequence's end; a bidirectional layer already runs both ways",
    ),
    "unknown-nonlinearity": (
        lambda: lt.RNN(INPUT, HIDDEN, nonlinearity="gelu"),
        ValueError,
        "RNN: expected nonlinearity among sigmoid, tanh, relu, hard_sigmoid, linear, softsign, got 'gelu'",
    ),
    "cell-nonlinearity": (
        lambda: lt.RNNCell(INPUT, HIDDEN, nonlinearity="swish"),
        ValueError,
        "RNNCell: expected nonlinearity among",
    ),
    "dropout-1": (lambda: lt.LSTM(INPUT, HIDDEN, dropout=1.0), ValueError, "LSTM: expected dropout in [0, 1), got 1.0"),
    "proj_size-too-large": (
        lambda: lt.LSTM(INPUT, HIDDEN, proj_size=HIDDEN),
        ValueError,
        "LSTM: expected proj_size in [0, hidden_size) = [0, 5), got 5",
    ),
    "clip-zero": (
        lambda: lt.GRU(INPUT, HIDDEN, clip=0),
        ValueError,
        "GRU: expected clip as None or a finite number > 0, got 0",
    ),
}


def _mixed():
    module = lt.GRU(INPUT, HIDDEN)
    module.weight_hh_l0.data = module.weight_hh_l0.data.double()
    return module


@pytest.mark.parametrize("case", list(INPUT_ERRORS))
def test_bad_input_raises_an_input_error_that_says_what_was_expected_and_given(case):
    action, message = INPUT_ERRORS[case]
    with pytest.raises(InputError, match=re.escape(message)):
        action()


def test_input_error_is_a_value_error_and_the_runtime_error_torch_nn_raises():
    # Code written for torch.nn catches RuntimeError; lstmcore's own errors are ValueErrors.
    assert issubclass(InputError, ValueError) and issubclass(InputError, RuntimeError)
    with pytest.raises(RuntimeError):
        lt.LSTM(INPUT, HIDDEN)(x(STEPS, BATCH, INPUT + 1))
    with pytest.raises(RuntimeError):
        torch.nn.LSTM(INPUT, HIDDEN)(x(STEPS, BATCH, INPUT + 1))


@pytest.mark.parametrize("case", list(OPTION_ERRORS))
def test_options_lstmcore_refuses_raise_at_construction_naming_them(case):
    action, error, message = OPTION_ERRORS[case]
    with pytest.raises(error, match=re.escape(message)):
        action()


SECOND_ORDER = "lstmcore.torch modules give first-order gradients only"


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_second_order_gradients_raise_a_runtime_error_saying_so(kind):
    torch.manual_seed(0)
    module = getattr(lt, kind)(INPUT, HIDDEN, dtype=torch.float64)
    inputs = torch.randn((BATCH, INPUT) if kind.endswith("Cell") else (STEPS, BATCH, INPUT), dtype=torch.float64)
    inputs.requires_grad_()

    def loss():
        out = module(inputs)  # (y, state) of a sequence module, the state of a cell
        return (out[0] if isinstance(out, tuple) else out).square().sum()

    (gradient,) = torch.autograd.grad(loss(), inputs, create_graph=True)
    (plain,) = torch.autograd.grad(loss(), inputs)
    assert torch.equal(gradient.detach(), plain), "create_graph=True changed the first-order gradient"
    with pytest.raises(RuntimeError, match=re.escape(SECOND_ORDER)) as raised:
        gradient.square().sum().backward()
    assert "use torch.nn.LSTM/GRU/RNN for those" in str(raised.value)


def test_hessian_and_gradient_penalties_raise_the_same_error():
    torch.manual_seed(0)
    module = lt.GRU(INPUT, HIDDEN, dtype=torch.float64)
    inputs = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=re.escape(SECOND_ORDER)):
        torch.autograd.functional.hessian(lambda v: module(v)[0].sum(), inputs)
    inputs.requires_grad_()
    (gradient,) = torch.autograd.grad(module(inputs)[0].sum(), inputs, create_graph=True)
    with pytest.raises(RuntimeError, match=re.escape(SECOND_ORDER)):
        torch.autograd.grad(gradient.norm(), module.weight_ih_l0)
