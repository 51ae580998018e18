"""lstmcore.torch's parameters and modes: state dicts that load both ways with torch.nn's
(same keys, same order, bit for bit), the same initial weights as torch.nn under the same
torch.manual_seed, the initial values of lstmcore's own parameters (forget_bias, layer
norm), the default dtype, and train()/eval() switching the random options (dropout,
recurrent dropout, zoneout) the way torch.nn switches dropout.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lstmcore.torch as lt  # noqa: E402
from _torch_twins import parts, torch_dtypes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

STEPS, BATCH, INPUT, HIDDEN = 4, 3, 3, 5

# torch.nn's module kinds with every parameter-shaping option they have.
KINDS = {
    "lstm": ("LSTM", {}),
    "lstm-projected-stacked-bidirectional": ("LSTM", {"proj_size": 2, "num_layers": 2, "bidirectional": True}),
    "lstm-no_bias": ("LSTM", {"bias": False}),
    "gru-stacked-bidirectional": ("GRU", {"num_layers": 2, "bidirectional": True}),
    "gru-no_bias": ("GRU", {"bias": False}),
    "rnn-relu-stacked-bidirectional": ("RNN", {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    "rnn-no_bias": ("RNN", {"bias": False}),
    "lstm_cell": ("LSTMCell", {}),
    "lstm_cell-no_bias": ("LSTMCell", {"bias": False}),
    "gru_cell": ("GRUCell", {}),
    "rnn_cell-relu": ("RNNCell", {"nonlinearity": "relu"}),
}
kinds = pytest.mark.parametrize("case", list(KINDS))


def build(library, case, dtype=torch.float32, seed=None):
    kind, options = KINDS[case]
    if seed is not None:
        torch.manual_seed(seed)
    return getattr(library, kind)(INPUT, HIDDEN, dtype=dtype, **options)


def assert_identical(got, expected):
    """Two state dicts: the same keys in the same order, each tensor bit for bit."""
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and torch.equal(got[name], value), name


@torch_dtypes
@kinds
def test_state_dicts_load_both_ways_bit_for_bit(case, dtype):
    reference = build(torch.nn, case, dtype, seed=1)
    ours = build(lt, case, dtype, seed=2)
    ours.load_state_dict(reference.state_dict())
    assert_identical(ours.state_dict(), reference.state_dict())

    ours = build(lt, case, dtype, seed=3)
    reference.load_state_dict(ours.state_dict())
    assert_identical(reference.state_dict(), ours.state_dict())


@torch_dtypes
@kinds
def test_a_seed_gives_torch_nn_initial_weights(case, dtype):
    reference = build(torch.nn, case, dtype, seed=4)
    ours = build(lt, case, dtype, seed=4)
    assert_identical(ours.state_dict(), reference.state_dict())
    torch.manual_seed(5)
    reference.reset_parameters()
    torch.manual_seed(5)
    ours.reset_parameters()
    assert_identical(ours.state_dict(), reference.state_dict())


@kinds
def test_the_dtype_defaults_to_torch_default_dtype(case):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        module = build(lt, case, dtype=None)
    finally:
        torch.set_default_dtype(previous)
    assert {value.dtype for value in module.parameters()} == {torch.float64}
    assert {value.dtype for value in build(lt, case, dtype=None).parameters()} == {previous}


@pytest.mark.parametrize("kind", ["LSTM", "LSTMCell"])
def test_forget_bias_fills_the_forget_rows_of_bias_ih_and_zeroes_those_of_bias_hh(kind):
    module = getattr(lt, kind)(INPUT, HIDDEN, forget_bias=1.5)
    suffix = "_l0" if kind == "LSTM" else ""
    forget = slice(HIDDEN, 2 * HIDDEN)  # rows i, f, g, o: f second, as torch.nn stacks them
    for _ in range(2):  # as built, and again after reset_parameters
        bias_ih, bias_hh = getattr(module, "bias_ih" + suffix), getattr(module, "bias_hh" + suffix)
        assert torch.all(bias_ih[forget] == 1.5) and torch.all(bias_hh[forget] == 0.0)
        others = torch.cat([bias_ih[:HIDDEN], bias_ih[2 * HIDDEN :]])
        assert 0 < others.abs().max() <= HIDDEN**-0.5, "the other rows keep torch.nn's initialisation"
        module.reset_parameters()


def test_layer_norm_starts_with_unit_gains_and_zero_cell_bias():
    module = lt.LSTM(INPUT, HIDDEN, num_layers=2, layer_norm=True)
    names = [name for name, _ in module.named_parameters() if name.startswith("layer_norm")]
    assert len(names) == 8  # ih and hh gains (4H), cell gain and bias (H), per layer
    for name in names:
        value = getattr(module, name)
        assert torch.all(value == (0.0 if name.startswith("layer_norm_cell_bias") else 1.0)), name


# Modules whose train mode draws masks from torch's generator; eval mode draws none.
RANDOM = {
    "lstm-dropout": ("LSTM", {"num_layers": 2, "dropout": 0.5}),
    "lstm-recurrent_dropout": ("LSTM", {"recurrent_dropout": 0.5}),
    "lstm-zoneout": ("LSTM", {"zoneout": 0.5}),
    "gru-dropout": ("GRU", {"num_layers": 2, "dropout": 0.5}),
    "rnn-dropout": ("RNN", {"num_layers": 2, "dropout": 0.5}),
    "lstm_cell-zoneout": ("LSTMCell", {"zoneout": 0.5}),
    "lstm_cell-recurrent_dropout": ("LSTMCell", {"recurrent_dropout": 0.5}),
}


def random_module_outputs(case):
    """A fresh float64 module with these options, and a call of it on fixed inputs (all
    outputs flattened into one tensor). The cells get a nonzero state, which recurrent
    dropout acts on."""
    kind, options = RANDOM[case]
    torch.manual_seed(0)
    module = getattr(lt, kind)(INPUT, HIDDEN, dtype=torch.float64, **options)
    generator = torch.Generator().manual_seed(1)
    cell = kind.endswith("Cell")
    x = torch.randn((BATCH, INPUT) if cell else (STEPS, BATCH, INPUT), generator=generator, dtype=torch.float64)
    state = torch.randn(BATCH, HIDDEN, generator=generator, dtype=torch.float64)
    hx = (state, state) if cell else None

    def call():
        out = module(x, hx) if cell else module(x)
        return torch.cat([part.flatten() for part in parts(out if cell else (out[0], *parts(out[1])))])

    return module, call


@pytest.mark.parametrize("case", list(RANDOM))
def test_train_mode_draws_new_masks_from_torch_generator_and_eval_mode_none(case):
    module, call = random_module_outputs(case)
    assert module.training
    first, second = call(), call()
    assert not torch.equal(first, second), "train mode drew the same masks twice"
    torch.manual_seed(11)
    again = call()
    torch.manual_seed(11)
    assert torch.equal(call(), again), "torch.manual_seed did not repeat the masks"

    module.eval()
    state = torch.get_rng_state()
    evaluated = call()
    assert torch.equal(call(), evaluated)
    assert torch.equal(torch.get_rng_state(), state), "eval mode drew from torch's generator"
    assert not torch.equal(evaluated, first)
    module.train()
    torch.manual_seed(11)
    assert torch.equal(call(), again), "back in train mode, the same seed gives the same masks"


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_train_mode_without_random_options_leaves_torch_generator_alone_as_torch_nn_does(kind):
    x = torch.randn(STEPS, BATCH, INPUT)
    for library in (torch.nn, lt):
        module = getattr(library, kind)(INPUT, HIDDEN, num_layers=2).train()
        state = torch.get_rng_state()
        module(x)
        assert torch.equal(torch.get_rng_state(), state), library.__name__
