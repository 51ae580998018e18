"""Training through lstmcore.torch follows torch.nn: a small model (Embedding, a recurrent
module, Linear; cross-entropy on the next token) trained ten steps with SGD (momentum) or
Adam from the same initial weights gives torch.nn's loss curve and final weights, and its
loss falls at every step.

Tolerances on the losses and weights, relative (and absolute for the weights): float64,
1e-10 (each step's gradients agree to about 1e-15, tests/test_torch_modules.py; ten small
updates amplify that by far less than 1e5); float32, 1e-5 (the gradients agree to about
1e-6 of their scale; an update is lr (at most 1) times a momentum sum of at most ten
gradients, and ten small steps barely amplify it). Adam runs only in float64: it divides
by the root of the squared gradients, so a float32 gradient component near zero, known
only to its scale's rounding, could move its weight by a whole step on one side only.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import lstmcore.torch as lt  # noqa: E402
from _compare import assert_close  # noqa: E402

VOCABULARY, EMBEDDING, HIDDEN, BATCH, STEPS = 7, 4, 6, 5, 8
TRAINING_STEPS = 10
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


class Tagger(nn.Module):
    """Embedding -> recurrent module -> Linear over every step's output."""

    def __init__(self, kind, options):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, EMBEDDING)
        self.recurrent = getattr(nn, kind)(EMBEDDING, HIDDEN, batch_first=True, **options)
        width = (options.get("proj_size") or HIDDEN) * (2 if options.get("bidirectional") else 1)
        self.head = nn.Linear(width, VOCABULARY)

    def forward(self, tokens):
        y, _ = self.recurrent(self.embedding(tokens))
        return self.head(y)


def train(model, optimizer_kind, tokens):
    """The losses of TRAINING_STEPS steps (each measured before its update)."""
    optimizer = {"sgd": lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9), "adam": lambda p: torch.optim.Adam(p, lr=0.1)}[
        optimizer_kind
    ](model.parameters())
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    losses = []
    for _ in range(TRAINING_STEPS):
        optimizer.zero_grad()
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


@pytest.mark.parametrize(
    "kind, options, optimizer, dtype",
    [
        ("LSTM", {"num_layers": 2}, "adam", torch.float64),
        ("LSTM", {"proj_size": 3, "bidirectional": True}, "adam", torch.float64),
        ("LSTM", {}, "sgd", torch.float32),
        ("GRU", {"bidirectional": True}, "adam", torch.float64),
        ("GRU", {}, "sgd", torch.float32),
        ("RNN", {"nonlinearity": "relu"}, "sgd", torch.float64),
        ("RNN", {}, "sgd", torch.float32),
    ],
    ids=["lstm-stacked-adam-float64", "lstm-projected-bidirectional-adam-float64", "lstm-sgd-float32",
         "gru-bidirectional-adam-float64", "gru-sgd-float32", "rnn-relu-sgd-float64", "rnn-sgd-float32"],
)  # fmt: skip
def test_training_follows_torch_nn_loss_curve(kind, options, optimizer, dtype):
    torch.manual_seed(0)
    reference = Tagger(kind, options).to(dtype)
    ours = lt.convert(copy.deepcopy(reference))
    assert type(ours.recurrent) is getattr(lt, kind)
    # Each row counts up from its own start, modulo the vocabulary: learnable in a few steps.
    tokens = (torch.arange(STEPS + 1) + torch.arange(BATCH)[:, None]) % VOCABULARY

    expected = train(reference, optimizer, tokens)
    got = train(ours, optimizer, tokens)
    tol = TOLERANCE[dtype]
    assert_close("losses", got.numpy(), expected.numpy(), tol, 0.0)
    for name, value in reference.state_dict().items():
        assert_close(name, ours.state_dict()[name].numpy(), value.numpy(), tol, tol)
    assert got[-1] < 0.9 * got[0] and (got[1:] < got[:-1]).all(), f"the loss did not fall: {got}"
