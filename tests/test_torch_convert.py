"""``lstmcore.torch.convert``: every torch.nn recurrent module inside a model replaced in
place by lstmcore.torch's (types, weights, dtype, mode; a shared module stays shared; a
subclass of nn.LSTM left alone), the model's outputs and gradients unchanged, the model
returned, and a bare torch.nn module's replacement returned. Tolerances: float64, 1e-12
(tests/_torch_twins.py).
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import lstmcore.torch as lt  # noqa: E402
from _torch_twins import check, check_all, twins  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 4, 3, 3, 4


class CustomLSTM(nn.LSTM):
    """A user's subclass: its forward is its own, so convert must not replace it."""

    def forward(self, input, hx=None):
        y, state = super().forward(input, hx)
        return 2 * y, state


class Model(nn.Module):
    """An nn.LSTM, one nn.GRU used twice (under two names), nn.RNNCell in a ModuleList and a
    subclass of nn.LSTM."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(INPUT, HIDDEN, num_layers=2, batch_first=True, dropout=0.3)
        self.gru = nn.GRU(HIDDEN, HIDDEN, bidirectional=True, batch_first=True)
        self.gru_again = self.gru
        self.cells = nn.ModuleList([nn.RNNCell(2 * HIDDEN, HIDDEN, nonlinearity="relu"), nn.Linear(HIDDEN, HIDDEN)])
        self.custom = CustomLSTM(HIDDEN, HIDDEN, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, h = self.gru(y)
        y, _ = self.gru_again(y[..., :HIDDEN], h)
        state = self.cells[0](y[:, 0])
        for step in range(1, y.shape[1]):
            state = self.cells[0](y[:, step], state)
        out, _ = self.custom(self.cells[1](state)[:, None])
        return out


def model_and_input():
    torch.manual_seed(0)
    model = Model().double().eval()
    x = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x


def outputs_and_gradients(model, x):
    x = x.clone().requires_grad_()
    out = model(x)
    grads = torch.autograd.grad(out.square().sum(), [x, *model.parameters()])
    return out, grads


def test_convert_replaces_every_torch_nn_recurrent_module_in_place_and_keeps_the_outputs():
    model, x = model_and_input()
    expected, expected_grads = outputs_and_gradients(model, x)
    names = ["x"] + [name for name, _ in model.named_parameters()]
    custom = model.custom

    assert lt.convert(model) is model
    assert type(model.lstm) is lt.LSTM and type(model.gru) is lt.GRU and type(model.cells[0]) is lt.RNNCell
    assert model.gru_again is model.gru, "a module used twice must stay one module"
    assert model.custom is custom and type(model.custom) is CustomLSTM
    assert type(model.cells[1]) is nn.Linear
    assert model.lstm.dropout == 0.3 and model.lstm.batch_first and model.lstm.num_layers == 2
    assert model.gru.bidirectional and model.cells[0].nonlinearity == "relu"
    assert not model.lstm.training, "the eval mode is kept"
    assert {value.dtype for value in model.parameters()} == {torch.float64}

    got, got_grads = outputs_and_gradients(model, x)
    assert [name for name, _ in model.named_parameters()] == names[1:]
    check("output", got, expected)
    check_all(names, got_grads, expected_grads)


def test_convert_keeps_train_mode_and_float32():
    model = Model().train()
    lt.convert(model)
    assert model.lstm.training and model.gru.training and model.cells[0].training
    assert {value.dtype for value in model.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    "kind, options",
    [
        ("LSTM", {"proj_size": 2, "bidirectional": True, "bias": False}),
        ("GRU", {"num_layers": 2}),
        ("RNN", {"nonlinearity": "relu"}),
        ("LSTMCell", {}),
        ("GRUCell", {"bias": False}),
        ("RNNCell", {}),
    ],
)
def test_convert_of_a_torch_nn_module_returns_its_replacement(kind, options):
    reference, _ = twins(kind, INPUT, HIDDEN, **options)
    replacement = lt.convert(reference)
    assert type(replacement) is getattr(lt, kind)
    assert type(reference) is getattr(nn, kind), "the module given stays as it was"
    for name, value in reference.state_dict().items():
        assert torch.equal(replacement.state_dict()[name], value), name
    x = torch.randn((BATCH, INPUT) if kind.endswith("Cell") else (STEPS, BATCH, INPUT), dtype=torch.float64)
    with torch.no_grad():
        got, expected = replacement(x), reference(x)
    # y of a sequence module, h of a cell
    check("output", got[0] if isinstance(got, tuple) else got, expected[0] if isinstance(expected, tuple) else expected)


def test_convert_leaves_a_model_without_recurrent_modules_and_a_subclass_alone():
    model = nn.Sequential(nn.Linear(2, 2))
    assert lt.convert(model) is model and type(model[0]) is nn.Linear
    custom = CustomLSTM(INPUT, HIDDEN)
    assert lt.convert(custom) is custom


def test_convert_refuses_a_non_module_and_half_precision_naming_the_parameter():
    with pytest.raises(TypeError, match=re.escape("expected a torch.nn.Module, got int")):
        lt.convert(3)
    model = nn.Sequential(nn.LSTM(INPUT, HIDDEN), nn.GRU(HIDDEN, HIDDEN).half())
    with pytest.raises(lt.InputError, match=r"convert: 1\.weight_ih_l0 is torch.float16 on 'cpu'"):
        lt.convert(model)
    assert type(model[0]) is nn.LSTM, "nothing is replaced when one module is refused"
