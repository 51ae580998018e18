"""``lstmcore.from_torch`` and ``lstmcore.to_torch``: every PyTorch module and option they
map computes the same outputs on both sides (and, converted to PyTorch, the same
gradients under autograd as lstmcore's backward); a round trip keeps every weight bit for
bit; what has no counterpart is refused by name. Every test's name holds "torch": the
sanitized CI step deselects them with -k "not torch".

Tolerances as in tests/test_lengths_torch.py, |got - expected| <= tol * scale +
tol * |expected|: float64, 1e-12 (the same arithmetic in another order); float32, 1e-5
(both sides compute in float32, a few roundings per step apart).
"""

from __future__ import annotations

import io
import pickle
import sys

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _variants import dtypes

torch = pytest.importorskip("torch")
nn = torch.nn

# PyTorch's note that its oneDNN kernels skip projected LSTMs: true, and no concern here.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

BATCH, STEPS, INPUT, HIDDEN = 3, 5, 3, 4
LENGTHS = [5, 2, 4]

# PyTorch's recurrent modules and options: (module class name, constructor options).
RECURRENT = {
    "lstm": ("LSTM", {}),
    "lstm-proj": ("LSTM", {"proj_size": 2}),
    "lstm-no-bias": ("LSTM", {"bias": False}),
    "lstm-stacked-bidirectional": ("LSTM", {"num_layers": 2, "bidirectional": True}),
    "lstm-proj-stacked-bidirectional-no-bias": (
        "LSTM",
        {"proj_size": 2, "num_layers": 2, "bidirectional": True, "bias": False},
    ),
    "lstm-time-major": ("LSTM", {"batch_first": False}),
    "lstm-dropout": ("LSTM", {"num_layers": 2, "dropout": 0.3}),
    "gru": ("GRU", {}),
    "gru-stacked-bidirectional-no-bias": ("GRU", {"num_layers": 2, "bidirectional": True, "bias": False}),
    "gru-time-major": ("GRU", {"batch_first": False}),
    "rnn": ("RNN", {}),
    "rnn-relu": ("RNN", {"nonlinearity": "relu"}),
    "rnn-relu-stacked-bidirectional-no-bias": (
        "RNN",
        {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True, "bias": False},
    ),
}
CELLS = {
    "lstm-cell": ("LSTMCell", {}),
    "lstm-cell-no-bias": ("LSTMCell", {"bias": False}),
    "gru-cell": ("GRUCell", {}),
    "gru-cell-no-bias": ("GRUCell", {"bias": False}),
    "rnn-cell": ("RNNCell", {}),
    "rnn-cell-relu-no-bias": ("RNNCell", {"nonlinearity": "relu", "bias": False}),
}
recurrent_cases = pytest.mark.parametrize("case", list(RECURRENT))
cell_cases = pytest.mark.parametrize("case", list(CELLS))


def torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def tolerance(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def check(name, got, expected, dtype):
    """got (lstmcore's, NumPy) against expected (a tensor or an array), in dtype's tolerance."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert np.asarray(got).dtype == dtype, f"{name} is {np.asarray(got).dtype}, expected {np.dtype(dtype)}"
    tol = tolerance(dtype)
    assert_close(name, got, expected, tol, scaled_atol(tol, expected))


def torch_recurrent(case, dtype, seed=0):
    name, options = RECURRENT[case]
    options = {"batch_first": True} | options
    torch.manual_seed(seed)
    return getattr(nn, name)(INPUT, HIDDEN, dtype=torch_dtype(dtype), **options)


def torch_cell(case, dtype, seed=0):
    name, options = CELLS[case]
    torch.manual_seed(seed)
    return getattr(nn, name)(INPUT, HIDDEN, dtype=torch_dtype(dtype), **options)


def as_parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def random_inputs(layer, dtype, seed=1):
    """x in the layer's layout, an initial state, dy and the final states' gradients."""
    rng = np.random.default_rng(seed)
    shape = (BATCH, STEPS) if layer.batch_first else (STEPS, BATCH)
    x = rng.normal(size=shape + (INPUT,)).astype(dtype)
    states = layer.num_layers * layer.num_directions
    sizes = [layer.output_size] + ([HIDDEN] if isinstance(layer, lstmcore.LSTM) else [])
    state = [rng.normal(size=(states, BATCH, size)).astype(dtype) for size in sizes]
    dy = rng.normal(size=shape + (layer.num_directions * layer.output_size,)).astype(dtype)
    dstate = [rng.normal(size=part.shape).astype(dtype) for part in state]
    return x, state, dy, dstate


def pack_state(parts, lstm):
    return tuple(parts) if lstm else parts[0]


def run_torch(module, x, state, lengths=None):
    """module(x, state) in torch, packed when lengths are given: y padded with zeros, final states."""
    lstm = isinstance(module, nn.LSTM)
    if lengths is None:
        y, final = module(x, pack_state(state, lstm))
    else:
        packed = nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
        )
        out, final = module(packed, pack_state(state, lstm))
        y = nn.utils.rnn.pad_packed_sequence(out, batch_first=module.batch_first, total_length=STEPS)[0]
    return y, as_parts(final)


def assert_state_dicts_identical(got, expected):
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype and torch.equal(got[name], expected[name]), name


# ---------------------------------------------------------------- recurrent layers


@dtypes
@recurrent_cases
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_from_torch_recurrent_layer_matches_torch(case, dtype, lengths):
    module = torch_recurrent(case, dtype).eval()
    layer = lstmcore.from_torch(module)
    assert type(layer).__name__ == RECURRENT[case][0] and layer.dtype == dtype
    x, state, _, _ = random_inputs(layer, dtype)
    y, final = layer(x, pack_state(state, isinstance(layer, lstmcore.LSTM)), lengths=lengths)
    with torch.no_grad():
        y_t, final_t = run_torch(module, torch.from_numpy(x), [torch.from_numpy(s) for s in state], lengths)
    check("y", y, y_t, dtype)
    for k, (part, part_t) in enumerate(zip(as_parts(final), final_t)):
        check(f"final state {k}", part, part_t, dtype)


@dtypes
@recurrent_cases
def test_to_torch_recurrent_layer_matches_lstmcore_outputs_and_gradients_torch(case, dtype):
    name, options = RECURRENT[case]
    layer = getattr(lstmcore, name)(INPUT, HIDDEN, dtype=dtype, seed=3, **({"batch_first": True} | options))
    module = lstmcore.to_torch(layer)
    assert isinstance(module, getattr(nn, name)) and not module.training
    x, state, dy, dstate = random_inputs(layer, dtype)
    lstm = isinstance(layer, lstmcore.LSTM)
    y, final, tape = layer.forward(x, pack_state(state, lstm), training=False)
    dx, dstate0 = layer.backward(tape, dy, pack_state(dstate, lstm))

    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(s, requires_grad=True) for s in state]
    y_t, final_t = run_torch(module, x_t, state_t)
    loss = (y_t * torch.from_numpy(dy)).sum() + sum((f * torch.from_numpy(d)).sum() for f, d in zip(final_t, dstate))
    loss.backward()
    check("y", y, y_t, dtype)
    for k, (part, part_t) in enumerate(zip(as_parts(final), final_t)):
        check(f"final state {k}", part, part_t, dtype)
    check("dx", dx, x_t.grad, dtype)
    for k, (part, part_t) in enumerate(zip(as_parts(dstate0), state_t)):
        check(f"initial state {k} gradient", part, part_t.grad, dtype)
    for param_name, parameter in module.named_parameters():
        check(f"grads[{param_name!r}]", layer.grads[param_name], parameter.grad, dtype)


@dtypes
@recurrent_cases
def test_torch_round_trips_keep_every_recurrent_weight_bit_for_bit(case, dtype):
    module = torch_recurrent(case, dtype)
    assert_state_dicts_identical(lstmcore.to_torch(lstmcore.from_torch(module)).state_dict(), module.state_dict())
    layer = lstmcore.from_torch(module)
    again = lstmcore.from_torch(lstmcore.to_torch(layer))
    assert again.get_config() == layer.get_config()
    for name, value in layer.params.items():
        assert again.params[name].dtype == value.dtype and np.array_equal(again.params[name], value), name


def test_to_torch_takes_forget_bias_which_only_sets_initial_torch_weights():
    layer = lstmcore.LSTM(INPUT, HIDDEN, forget_bias=1.0, seed=0)
    module = lstmcore.to_torch(layer)
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, INPUT)).astype(np.float32)
    with torch.no_grad():
        check("y", layer(x)[0], module(torch.from_numpy(x))[0], np.float32)


# ---------------------------------------------------------------- cells


@dtypes
@cell_cases
def test_from_torch_cell_matches_torch(case, dtype):
    module = torch_cell(case, dtype)
    cell = lstmcore.from_torch(module)
    assert type(cell).__name__ == CELLS[case][0] and cell.dtype == dtype
    rng = np.random.default_rng(2)
    x = rng.normal(size=(BATCH, INPUT)).astype(dtype)
    state = [rng.normal(size=(BATCH, HIDDEN)).astype(dtype) for _ in range(2 if case.startswith("lstm") else 1)]
    lstm = isinstance(cell, lstmcore.LSTMCell)
    with torch.no_grad():
        expected = as_parts(module(torch.from_numpy(x), pack_state([torch.from_numpy(s) for s in state], lstm)))
    for k, (part, part_t) in enumerate(zip(as_parts(cell(x, pack_state(state, lstm))), expected)):
        check(f"state {k}", part, part_t, dtype)


@dtypes
@cell_cases
def test_to_torch_cell_matches_lstmcore_outputs_and_gradients_torch(case, dtype):
    name, options = CELLS[case]
    cell = getattr(lstmcore, name)(INPUT, HIDDEN, dtype=dtype, seed=4, **options)
    module = lstmcore.to_torch(cell)
    assert isinstance(module, getattr(nn, name))
    lstm = isinstance(cell, lstmcore.LSTMCell)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(BATCH, INPUT)).astype(dtype)
    state = [rng.normal(size=(BATCH, HIDDEN)).astype(dtype) for _ in range(2 if lstm else 1)]
    dnew = [rng.normal(size=(BATCH, HIDDEN)).astype(dtype) for _ in state]
    new, tape = cell.forward(x, pack_state(state, lstm))
    dx, dstate0 = cell.backward(tape, pack_state(dnew, lstm))

    x_t = torch.tensor(x, requires_grad=True)
    state_t = [torch.tensor(s, requires_grad=True) for s in state]
    new_t = as_parts(module(x_t, pack_state(state_t, lstm)))
    sum((part * torch.from_numpy(d)).sum() for part, d in zip(new_t, dnew)).backward()
    for k, (part, part_t) in enumerate(zip(as_parts(new), new_t)):
        check(f"state {k}", part, part_t, dtype)
    check("dx", dx, x_t.grad, dtype)
    for k, (part, part_t) in enumerate(zip(as_parts(dstate0), state_t)):
        check(f"initial state {k} gradient", part, part_t.grad, dtype)
    for param_name, parameter in module.named_parameters():
        check(f"grads[{param_name!r}]", cell.grads[param_name], parameter.grad, dtype)


@dtypes
@cell_cases
def test_torch_round_trips_keep_every_cell_weight_bit_for_bit(case, dtype):
    module = torch_cell(case, dtype)
    assert_state_dicts_identical(lstmcore.to_torch(lstmcore.from_torch(module)).state_dict(), module.state_dict())


# ---------------------------------------------------------------- feed-forward layers


@dtypes
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_torch_linear_and_dense_match_both_ways(dtype, bias):
    torch.manual_seed(0)
    module = nn.Linear(INPUT, 5, bias=bias, dtype=torch_dtype(dtype))
    dense = lstmcore.from_torch(module)
    assert isinstance(dense, lstmcore.Dense) and dense.dtype == dtype
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, INPUT)).astype(dtype)
    with torch.no_grad():
        check("y", dense.forward(x)[0], module(torch.from_numpy(x)), dtype)
        back = lstmcore.to_torch(dense)
        check("y back", dense.forward(x)[0], back(torch.from_numpy(x)), dtype)
    if bias:
        assert_state_dicts_identical(back.state_dict(), module.state_dict())
    else:  # Dense always has a bias: zero, for nn.Linear(bias=False)
        assert not back.bias.any() and torch.equal(back.weight, module.weight)


@dtypes
@pytest.mark.parametrize("padding_idx", [None, 1, -2], ids=["no-padding", "padding", "negative-padding"])
def test_torch_embedding_matches_both_ways(dtype, padding_idx):
    torch.manual_seed(0)
    module = nn.Embedding(7, 3, padding_idx=padding_idx, dtype=torch_dtype(dtype))
    embedding = lstmcore.from_torch(module)
    assert embedding.padding_idx == module.padding_idx and embedding.dtype == dtype
    ids = np.random.default_rng(0).integers(0, 7, size=(BATCH, STEPS))
    with torch.no_grad():
        check("y", embedding.forward(ids)[0], module(torch.from_numpy(ids)), dtype)
    back = lstmcore.to_torch(embedding)
    assert back.padding_idx == module.padding_idx
    assert_state_dicts_identical(back.state_dict(), module.state_dict())


def test_torch_dropout_maps_its_rate_both_ways():
    dropout = lstmcore.from_torch(nn.Dropout(0.25))
    assert isinstance(dropout, lstmcore.Dropout) and dropout.p == 0.25
    back = lstmcore.to_torch(dropout)
    assert isinstance(back, nn.Dropout) and back.p == 0.25 and not back.training


# ---------------------------------------------------------------- Sequential

VOCABULARY = 9


def lstmcore_models(dtype):
    """Models covering every layer kind between them: ids in, and floats in."""
    return {
        "embedding-lstm-laststep-dense": lstmcore.Sequential(
            [
                lstmcore.Embedding(VOCABULARY, INPUT, padding_idx=0, dtype=dtype, seed=0),
                lstmcore.Dropout(0.2, seed=1),
                lstmcore.LSTM(INPUT, HIDDEN, 2, bidirectional=True, proj_size=2, dtype=dtype, seed=2),
                lstmcore.LastStep(),
                lstmcore.Dense(4, 3, dtype=dtype, seed=3),
            ],
            metadata={"vocabulary": list("abcdefghi")},
        ),
        "gru-dense-rnn-meanpool-dense": lstmcore.Sequential(
            [
                lstmcore.GRU(INPUT, HIDDEN, bidirectional=True, dtype=dtype, seed=4),
                lstmcore.Dense(2 * HIDDEN, HIDDEN, dtype=dtype, seed=5),
                lstmcore.RNN(HIDDEN, HIDDEN, nonlinearity="relu", bias=False, dtype=dtype, seed=6),
                lstmcore.MeanPool(),
                lstmcore.Dense(HIDDEN, 2, dtype=dtype, seed=7),
            ]
        ),
        "lstm-dense-per-step": lstmcore.Sequential(
            [lstmcore.LSTM(INPUT, HIDDEN, dtype=dtype, seed=8), lstmcore.Dense(HIDDEN, 2, dtype=dtype, seed=9)]
        ),
        "bigru-laststep-bidirectional-dense-activations": lstmcore.Sequential(
            [
                lstmcore.GRU(INPUT, HIDDEN, bidirectional=True, dtype=dtype, seed=10),
                lstmcore.LastStep(bidirectional=True),
                lstmcore.Dense(2 * HIDDEN, HIDDEN, activation=("hard_sigmoid", 1 / 6, 0.5), dtype=dtype, seed=11),
                lstmcore.Dense(HIDDEN, HIDDEN, activation="softsign", dtype=dtype, seed=12),
                lstmcore.Dense(HIDDEN, 3, activation="softmax", dtype=dtype, seed=13),
            ]
        ),
        "reverse-rnn-laststep-reverse-dense-tanh": lstmcore.Sequential(
            [
                lstmcore.LSTM(INPUT, HIDDEN, dtype=dtype, seed=14),
                lstmcore.Dense(HIDDEN, HIDDEN, activation="relu", dtype=dtype, seed=15),
                lstmcore.LastStep(reverse=True),
                lstmcore.Dense(HIDDEN, 2, activation="tanh", dtype=dtype, seed=16),
            ]
        ),
    }


def model_input(model, seed=0):
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    if isinstance(first, lstmcore.Embedding):
        return rng.integers(0, VOCABULARY, size=(BATCH, STEPS))
    return rng.normal(size=(BATCH, STEPS, INPUT)).astype(first.dtype)


MODELS = list(lstmcore_models(np.float32))


@dtypes
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_to_torch_sequential_matches_predict_and_gradients_torch(model_name, dtype, lengths):
    model = lstmcore_models(dtype)[model_name]
    module = lstmcore.to_torch(model)
    assert isinstance(module, nn.Sequential) and not module.training
    assert list(module.state_dict()) == list(model.params)
    x = model_input(model)
    lengths_t = None if lengths is None else torch.tensor(lengths)
    y = model.predict(x, lengths=lengths)

    floats = x.dtype.kind == "f"
    x_t = torch.tensor(x, requires_grad=floats)
    y_t = module(x_t, lengths_t)
    check("y", y, y_t, dtype)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    if lengths is not None and y.ndim == 3:  # per-step outputs: none past a length, as a masked loss
        dy[np.arange(STEPS) >= np.array(lengths)[:, None]] = 0
    prediction, tape = model.forward(x, lengths=lengths)
    check("forward's y", prediction, y_t, dtype)
    model.zero_grad()
    dx = model.backward(tape, dy)
    (y_t * torch.from_numpy(dy)).sum().backward()
    if floats:
        check("dx", dx, x_t.grad, dtype)
    for name, parameter in module.named_parameters():
        check(f"grads[{name!r}]", model.grads[name], parameter.grad, dtype)


@dtypes
def test_from_torch_sequential_matches_torch_modules_run_in_order(dtype):
    torch.manual_seed(0)
    options = dict(dtype=torch_dtype(dtype))
    sequential = nn.Sequential(
        nn.Embedding(VOCABULARY, INPUT, padding_idx=0, **options),
        nn.Dropout(0.1),
        nn.LSTM(INPUT, HIDDEN, batch_first=True, bidirectional=True, **options),
        nn.Linear(2 * HIDDEN, 3, **options),
        nn.GRU(3, HIDDEN, batch_first=True, num_layers=2, **options),
    ).eval()
    model = lstmcore.from_torch(sequential)
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "Dropout", "LSTM", "Dense", "GRU"]
    assert list(model.params) == list(sequential.state_dict())
    ids = model_input(model)
    with torch.no_grad():
        embedded = sequential[0](torch.from_numpy(ids))
        expected = sequential[4](sequential[3](sequential[2](embedded)[0]))[0]
        check("y", model.predict(ids), expected, dtype)
        converted = lstmcore.to_torch(model)(torch.from_numpy(ids), LENGTHS)
        check("y of to_torch", model.predict(ids, lengths=LENGTHS), converted, dtype)
    assert_state_dicts_identical(lstmcore.to_torch(model).state_dict(), sequential.state_dict())


@pytest.mark.parametrize("model_name", MODELS)
def test_torch_round_trips_keep_a_sequential_and_its_metadata(model_name):
    model = lstmcore_models(np.float64)[model_name]
    module = lstmcore.to_torch(model)
    again = lstmcore.from_torch(module)
    assert again.get_config()["metadata"] == model.metadata
    assert [type(layer) for layer in again.layers] == [type(layer) for layer in model.layers]
    for name, value in model.params.items():
        assert np.array_equal(again.params[name], value), name
    assert_state_dicts_identical(lstmcore.to_torch(again).state_dict(), module.state_dict())


def test_to_torch_sequential_survives_torch_save_and_pickle():
    model = lstmcore_models(np.float32)["embedding-lstm-laststep-dense"]
    module = lstmcore.to_torch(model)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    for loaded in (torch.load(buffer, weights_only=False), pickle.loads(pickle.dumps(module))):
        assert type(loaded) is type(module) and loaded.metadata == model.metadata
        x = model_input(model)
        with torch.no_grad():
            assert torch.equal(loaded(torch.from_numpy(x), LENGTHS), module(torch.from_numpy(x), LENGTHS))


# ---------------------------------------------------------------- refusals


class OwnForwardLSTM(nn.LSTM):
    def forward(self, x, hx=None):
        return super().forward(x.flip(1), hx)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: nn.ReLU(), TypeError, ["ReLU", "no activation layers", "nn.LSTM"]),
        (lambda: nn.Conv1d(2, 2, 3), TypeError, ["Conv1d", "supported", "nn.Embedding"]),
        (lambda: "not a module", TypeError, ["str", "supported"]),
        (lambda: lstmcore.LSTM(2, 3), TypeError, ["LSTM", "supported"]),
        (lambda: OwnForwardLSTM(2, 3), TypeError, ["OwnForwardLSTM", "overrides forward"]),
        (lambda: nn.LSTM(2, 3, dtype=torch.float16), ValueError, ["float32", "float16"]),
        (lambda: nn.LazyLinear(3), ValueError, ["uninitialised"]),
        (lambda: nn.Embedding(5, 2, max_norm=1.0), ValueError, ["max_norm=1.0", "padding_idx"]),
        (lambda: nn.Embedding(5, 2, scale_grad_by_freq=True), ValueError, ["scale_grad_by_freq=True"]),
        (lambda: nn.utils.parametrizations.weight_norm(nn.Linear(2, 3)), ValueError, ["parametrizations"]),
        (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU()), TypeError, ["module 1", "ReLU"]),
        (lambda: nn.Sequential(nn.LSTM(2, 3)), ValueError, ["module 0", "batch_first=False", "batch_first=True"]),
        (lambda: nn.Sequential(nn.LSTMCell(2, 3)), TypeError, ["module 0", "LSTMCell", "on its own"]),
        (lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 3))), TypeError, ["nested", "unnest"]),
        (lambda: nn.Sequential(), ValueError, ["at least one module"]),
    ],
    ids=lambda value: "" if callable(value) or isinstance(value, list) else value.__name__,
)
def test_from_torch_refuses_what_lstmcore_cannot_compute(make, error, words):
    with pytest.raises(error) as raised:
        lstmcore.from_torch(make())
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


@pytest.mark.parametrize(
    "layer, words",
    [
        (lambda: lstmcore.LSTM(2, 3, peephole=True), ["peephole=True", "proj_size"]),
        (lambda: lstmcore.LSTM(2, 3, coupled=True), ["coupled=True"]),
        (lambda: lstmcore.LSTM(2, 3, layer_norm=True), ["layer_norm=True"]),
        (lambda: lstmcore.LSTM(2, 3, zoneout=0.1), ["zoneout=0.1"]),
        (lambda: lstmcore.LSTM(2, 3, recurrent_dropout=0.1), ["recurrent_dropout=0.1"]),
        (lambda: lstmcore.LSTM(2, 3, gate_activation="hard_sigmoid"), ["gate_activation="]),
        (lambda: lstmcore.LSTM(2, 3, clip=3.0), ["clip=3.0"]),
        (lambda: lstmcore.LSTM(2, 3, reverse=True), ["reverse=True"]),
        (lambda: lstmcore.GRU(2, 3, reset_after=False), ["reset_after=False", "bidirectional"]),
        (lambda: lstmcore.GRU(2, 3, activation="relu"), ["activation='relu'"]),
        (lambda: lstmcore.RNN(2, 3, reverse=True), ["reverse=True", "nonlinearity"]),
        (lambda: lstmcore.Sequential([lstmcore.LSTM(2, 3, peephole=True)]), ["layer 0 of the Sequential", "peephole"]),
    ],
)
def test_to_torch_refuses_options_torch_has_no_module_for(layer, words):
    with pytest.raises(ValueError, match="no PyTorch equivalent") as raised:
        lstmcore.to_torch(layer())
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_to_torch_refuses_what_is_not_an_lstmcore_layer():
    with pytest.raises(TypeError, match="cannot convert dict to PyTorch; supported: LSTM"):
        lstmcore.to_torch({})


def test_torch_missing_is_an_import_error_that_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch then raises ImportError
    for convert in (lstmcore.from_torch, lstmcore.to_torch):
        with pytest.raises(ImportError, match=r"lstmcore\[torch\]"):
            convert(lstmcore.Dense(2, 3))
