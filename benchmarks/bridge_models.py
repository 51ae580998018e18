"""The two models of a bridge case, with the same weights, and the training step both run.

Model: tokens (B, T) -> Embedding (B, T, I) -> recurrent layer (B, T, H) -> Linear
(B, T, V) logits; loss: cross-entropy against a target token per step (padding steps of a
packed batch are ignored). A training step is zero_grad, forward, loss, backward and one
Adam step (lr 1e-3), as a user's loop runs it. Both sides are batch first.

This file is for benchmarking only; it imports torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmcore.torch
from benchmarks import torch_cells

IGNORED = -100  # cross_entropy's ignore_index: the target of a padding step
LEARNING_RATE = 1e-3
STEP = f"zero_grad, forward, cross-entropy, backward, Adam (lr {LEARNING_RATE:g}); fp32, batch first"


class TokenModel(nn.Module):
    """Embedding -> recurrent -> Linear; with lengths the recurrent layer takes a PackedSequence."""

    def __init__(self, embedding, recurrent, head):
        super().__init__()
        self.embedding = embedding
        self.recurrent = recurrent
        self.head = head

    def forward(self, tokens, lengths=None):
        x = self.embedding(tokens)
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.recurrent(x)
        if lengths is not None:
            y, _ = pad_packed_sequence(y, batch_first=True, total_length=tokens.shape[1])
        return self.head(y)


@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T) int64
    targets: torch.Tensor  # (B, T) int64, IGNORED past a sequence's length
    lengths: torch.Tensor | None  # (B,) int64 in [min_length, T], or None: every sequence is T long


def make_batch(case, seed=1234):
    generator = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.seq_len)
    tokens = torch.randint(0, case.vocabulary, shape, generator=generator)
    targets = torch.randint(0, case.vocabulary, shape, generator=generator)
    lengths = None
    if case.min_length is not None:
        lengths = torch.randint(case.min_length, case.seq_len + 1, (case.batch,), generator=generator)
        lengths[0] = case.seq_len  # the padded batch is T long, as pad_packed_sequence's total_length
        targets[torch.arange(case.seq_len)[None, :] >= lengths[:, None]] = IGNORED
    return Batch(tokens, targets, lengths)


def _torch_recurrent(case):
    if case.torch_cell is not None:
        cell = getattr(torch_cells, case.torch_cell)(case.input_size, case.hidden_size)
        return torch_cells.LoopRNN(cell)
    layer = {"lstm": nn.LSTM, "gru": nn.GRU}[case.kind]
    return layer(case.input_size, case.hidden_size, batch_first=True)


def _layer_name(name):
    """The loop cell's ``cell.weight_ih`` (any prefix kept) as the layer names it, ``weight_ih_l0``;
    torch.nn's layers already share the lstmcore.torch module's names."""
    prefix, cell, parameter = name.rpartition("cell.")
    return prefix + parameter + "_l0" if cell and (not prefix or prefix.endswith(".")) else name


def build_models(case, seed=0):
    """(torch model, lstmcore model), the second a copy of the first but for its recurrent layer."""
    torch.manual_seed(seed)
    embedding = nn.Embedding(case.vocabulary, case.input_size)
    head = nn.Linear(case.hidden_size, case.vocabulary)
    recurrent = _torch_recurrent(case)
    with torch.no_grad():
        # Gains and offsets away from their initial ones and zeros, so that the check
        # before timing sees a gain or offset that one side applies in the wrong place.
        for name, value in recurrent.named_parameters():
            if "layer_norm" in name:
                value.add_(torch.empty_like(value).uniform_(-0.5, 0.5))
    module = {"lstm": lstmcore.torch.LSTM, "gru": lstmcore.torch.GRU}[case.kind]
    core = module(case.input_size, case.hidden_size, batch_first=True, **case.lstmcore_options)
    core.load_state_dict({_layer_name(name): value for name, value in recurrent.state_dict().items()})
    return TokenModel(embedding, recurrent, head), TokenModel(copy.deepcopy(embedding), core, copy.deepcopy(head))


class NoRecurrence(nn.Module):
    """The recurrent layer taken out (I == H): what a step costs without one, the part both sides share."""

    def forward(self, x):
        return x, None


def rest_model(torch_model):
    """The torch model's Embedding and Linear around no recurrent layer (its own copies)."""
    return TokenModel(copy.deepcopy(torch_model.embedding), NoRecurrence(), copy.deepcopy(torch_model.head))


def loss_of(model, batch):
    logits = model(batch.tokens, batch.lengths)
    return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORED)


def training_step(model, batch):
    """A callable running one training step of ``model`` on ``batch`` (its own Adam)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = loss_of(model, batch)
        loss.backward()
        optimizer.step()
        return loss

    return step


def gradients(model, batch):
    """The loss and every parameter's gradient (named as the lstmcore model names them), NumPy."""
    model.zero_grad()
    loss = loss_of(model, batch)
    loss.backward()
    grads = {"loss": loss.detach().numpy().reshape(1)}
    grads.update({_layer_name(name): value.grad.numpy().copy() for name, value in model.named_parameters()})
    model.zero_grad()
    return grads


def compare(torch_grads, lstmcore_grads, rtol):
    """(the largest error, None) when every tensor agrees within rtol, else (that error, which
    tensor it is and by how much). A tensor's error is max |lstmcore - torch| over max |torch|."""
    if set(torch_grads) != set(lstmcore_grads):
        return None, f"different tensors: torch {sorted(torch_grads)}, lstmcore {sorted(lstmcore_grads)}"
    errors = {}
    for name, expected in torch_grads.items():
        got = lstmcore_grads[name]
        if got.shape != expected.shape:
            return None, f"{name}: lstmcore's shape {got.shape}, torch's {expected.shape}"
        error = float(np.abs(got.astype(np.float64) - expected).max()) / (float(np.abs(expected).max()) or 1.0)
        errors[name] = error if np.isfinite(error) else np.inf
    worst = max(errors, key=errors.__getitem__)
    if errors[worst] <= rtol:
        return errors[worst], None
    return errors[
        worst
    ], f"{worst}: max |lstmcore - torch| is {errors[worst]:.3g} of torch's largest magnitude (allowed {rtol:g})"
