"""torch.autograd.gradcheck on every lstmcore.torch module kind and every lstmcore option
(reverse, layer norm, peephole, coupled, proj_size, zoneout, recurrent dropout and dropout
in train mode, activations and clip, the GRU's reset_after=False, the RNN's
nonlinearities, packed input), in float64 at small sizes: the core's backward, as autograd
calls it, against central differences of the module's own forward, with the input, the
initial state (h and c) and every parameter as gradcheck's inputs. (forget_bias only
sets initial weights: tests/test_torch_weights.py.)

Train-mode cases reseed torch's generator inside the checked function: the masks are drawn
from it, so every evaluation sees the same masks. Tolerances as tests/_compare.py's
finite differences (eps 1e-6; rtol 1e-6, atol 1e-7; its comment gives the reasoning).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.func import functional_call  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import lstmcore.torch as lt  # noqa: E402
from _compare import FD_ATOL, FD_RTOL  # noqa: E402
from _torch_twins import parts  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 3, 2, 2, 3
LENGTHS = [2, 3]  # unsorted, uneven: the packed case
# Kinks of relu, hard_sigmoid and clip lie far (> eps) from every point at these seeds.
ACTIVATIONS = {"gate_activation": ("hard_sigmoid", 0.3, 0.45), "activation": "softsign", "clip": 1.5}

# id -> (module kind, options, train mode). The ids use tests/_variants.py's words
# (layer_norm, peephole_coupled, projected, ...), so `-k projected` finds them.
RECURRENT = {
    "lstm": ("LSTM", {}, False),
    "lstm-reverse": ("LSTM", {"reverse": True}, False),
    "lstm-no_bias": ("LSTM", {"bias": False}, False),
    "layer_norm": ("LSTM", {"layer_norm": True}, False),
    "layer_norm-reverse": ("LSTM", {"layer_norm": True, "reverse": True}, False),
    "peephole": ("LSTM", {"peephole": True}, False),
    "coupled": ("LSTM", {"coupled": True}, False),
    "peephole_coupled": ("LSTM", {"peephole": True, "coupled": True}, False),
    "projected": ("LSTM", {"proj_size": 2}, False),
    "projected-bidirectional": ("LSTM", {"proj_size": 2, "bidirectional": True}, False),
    "zoneout-train": ("LSTM", {"zoneout": 0.3}, True),
    "zoneout-eval": ("LSTM", {"zoneout": 0.3}, False),
    "recurrent_dropout-train": ("LSTM", {"recurrent_dropout": 0.3}, True),
    "dropout-stacked-train": ("LSTM", {"dropout": 0.4, "num_layers": 2}, True),
    "lstm-activations-clip": ("LSTM", {**ACTIVATIONS, "cell_activation": "relu"}, False),
    "peephole_coupled-activations-clip-reverse": (
        "LSTM",
        {**ACTIVATIONS, "peephole": True, "coupled": True, "reverse": True},
        False,
    ),
    "gru": ("GRU", {}, False),
    "gru-reverse": ("GRU", {"reverse": True}, False),
    "gru-no_bias": ("GRU", {"bias": False}, False),
    "gru-reset_before": ("GRU", {"reset_after": False}, False),
    "gru-reset_before-activations-clip": ("GRU", {**ACTIVATIONS, "reset_after": False}, False),
    "gru-activations-clip": ("GRU", ACTIVATIONS, False),
    "gru-dropout-stacked-train": ("GRU", {"dropout": 0.4, "num_layers": 2}, True),
    "rnn-tanh": ("RNN", {}, False),
    "rnn-relu-bidirectional": ("RNN", {"nonlinearity": "relu", "bidirectional": True}, False),
    "rnn-sigmoid": ("RNN", {"nonlinearity": "sigmoid"}, False),
    "rnn-hard_sigmoid": ("RNN", {"nonlinearity": "hard_sigmoid"}, False),
    "rnn-hard_sigmoid_alpha_beta": ("RNN", {"nonlinearity": ("hard_sigmoid", 0.3, 0.45)}, False),
    "rnn-softsign": ("RNN", {"nonlinearity": "softsign"}, False),
    "rnn-linear-no_bias": ("RNN", {"nonlinearity": "linear", "bias": False}, False),
    "rnn-clip-reverse": ("RNN", {"clip": 1.0, "reverse": True}, False),
    "rnn-dropout-stacked-train": ("RNN", {"dropout": 0.4, "num_layers": 2}, True),
}
CELLS = {
    "lstm_cell": ("LSTMCell", {}, False),
    "lstm_cell-no_bias": ("LSTMCell", {"bias": False}, False),
    "lstm_cell-peephole": ("LSTMCell", {"peephole": True}, False),
    "lstm_cell-coupled": ("LSTMCell", {"coupled": True}, False),
    "lstm_cell-peephole_coupled": ("LSTMCell", {"peephole": True, "coupled": True}, False),
    "lstm_cell-layer_norm": ("LSTMCell", {"layer_norm": True}, False),
    "lstm_cell-zoneout-train": ("LSTMCell", {"zoneout": 0.3}, True),
    "lstm_cell-recurrent_dropout-train": ("LSTMCell", {"recurrent_dropout": 0.3}, True),
    "lstm_cell-activations-clip": ("LSTMCell", {**ACTIVATIONS, "cell_activation": "linear"}, False),
    "gru_cell": ("GRUCell", {}, False),
    "gru_cell-reset_before": ("GRUCell", {"reset_after": False}, False),
    "gru_cell-activations-clip": ("GRUCell", ACTIVATIONS, False),
    "rnn_cell-relu": ("RNNCell", {"nonlinearity": "relu"}, False),
    "rnn_cell-softsign-no_bias": ("RNNCell", {"nonlinearity": "softsign", "bias": False}, False),
    "rnn_cell-hard_sigmoid-clip": ("RNNCell", {"nonlinearity": "hard_sigmoid", "clip": 1.0}, False),
}


def build(kind, options, train):
    torch.manual_seed(0)
    module = getattr(lt, kind)(INPUT, HIDDEN, dtype=torch.float64, **options)
    return module.train(train)


def gradcheck(module, inputs, call):
    """gradcheck of ``call(forward, *inputs)``, ``forward`` the module run with gradcheck's
    copies of its parameters, over the inputs and every parameter; each evaluation starts
    torch's generator at one seed (the same masks)."""
    names = [name for name, _ in module.named_parameters()]
    parameters = [value.detach().clone() for value in module.parameters()]
    count = len(inputs)

    def function(*tensors):
        # The CPU generator alone (torch.manual_seed, which also reaches the accelerators'
        # generators, costs half of each evaluation here).
        torch.default_generator.manual_seed(7)
        weights = dict(zip(names, tensors[count:]))
        return call(lambda *args: functional_call(module, weights, args), *tensors[:count])

    leaves = [tensor.requires_grad_() for tensor in [*inputs, *parameters]]
    assert torch.autograd.gradcheck(function, leaves, eps=1e-6, atol=FD_ATOL, rtol=FD_RTOL)


def recurrent_state(module, generator):
    count = module.num_layers * (2 if module.bidirectional else 1)
    sizes = [getattr(module, "proj_size", 0) or HIDDEN] + ([HIDDEN] if isinstance(module, lt.LSTM) else [])
    return [torch.randn(count, BATCH, size, generator=generator, dtype=torch.float64) for size in sizes]


def as_hx(state):
    """State parts as a module's hx: (h, c) for an LSTM, h for the others."""
    return tuple(state) if len(state) == 2 else state[0]


def recurrent_call(forward, x, *state):
    y, final = forward(x, as_hx(state))
    return (y, *parts(final))


@pytest.mark.parametrize("case", list(RECURRENT))
def test_recurrent_module_gradients_match_finite_differences(case):
    module = build(*RECURRENT[case])
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS, BATCH, INPUT, generator=generator, dtype=torch.float64)
    gradcheck(module, [x, *recurrent_state(module, generator)], recurrent_call)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_packed_sequence_gradients_match_finite_differences(kind):
    module = build(kind, {"bidirectional": True}, False)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(STEPS, BATCH, INPUT, generator=generator, dtype=torch.float64)

    def call(forward, x, *state):
        packed, final = forward(pack_padded_sequence(x, LENGTHS, enforce_sorted=False), as_hx(state))
        return (packed.data, *parts(final))

    gradcheck(module, [x, *recurrent_state(module, generator)], call)


@pytest.mark.parametrize("case", list(CELLS))
def test_cell_gradients_match_finite_differences(case):
    module = build(*CELLS[case])
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, INPUT, generator=generator, dtype=torch.float64)
    state = [torch.randn(BATCH, HIDDEN, generator=generator, dtype=torch.float64) for _ in range(2 if "lstm" in case else 1)]

    gradcheck(module, [x, *state], lambda forward, x, *state: forward(x, as_hx(state)))
