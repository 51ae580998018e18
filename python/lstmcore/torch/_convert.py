"""``lstmcore.torch.convert``: every torch.nn recurrent module inside a model replaced, in
place, by the lstmcore.torch module with the same arguments and weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lstmcore.torch._cells import GRUCell, LSTMCell, RNNCell
from lstmcore.torch._checks import InputError
from lstmcore.torch._recurrent import GRU, LSTM, RNN

# Exact types: a user's subclass of nn.LSTM may change forward, so it is left alone.
_REPLACED: dict[type, type] = {
    nn.LSTM: LSTM,
    nn.GRU: GRU,
    nn.RNN: RNN,
    nn.LSTMCell: LSTMCell,
    nn.GRUCell: GRUCell,
    nn.RNNCell: RNNCell,
}


def convert(model: nn.Module) -> nn.Module:
    """Replace every ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``, ``nn.LSTMCell``, ``nn.GRUCell`` and
    ``nn.RNNCell`` inside ``model`` by lstmcore.torch's module with the same constructor
    arguments, weights (``load_state_dict``), dtype and train/eval mode; in place. Returns
    the model, or the replacement when ``model`` itself is one of them. A module sharing
    its instance between several places stays shared.

    Modules on another device than the CPU, or in float16/bfloat16, are an InputError
    naming them (nothing is replaced then).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    found = [(name, module) for name, module in model.named_modules(remove_duplicate=False) if type(module) in _REPLACED]
    for name, module in found:
        for parameter_name, value in module.named_parameters():
            if value.device.type != "cpu" or value.dtype not in (torch.float32, torch.float64):
                raise InputError(
                    f"convert: {name or 'the model'}.{parameter_name} is {value.dtype} on {value.device.type!r}; "
                    "lstmcore.torch runs float32 and float64 on the CPU (move it with .cpu().float() first)"
                )
    replacements: dict[int, nn.Module] = {}
    for name, module in found:
        replacement = replacements.get(id(module))
        if replacement is None:
            replacement = replacements[id(module)] = _replacement(module)
        if not name:
            return replacement
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
    return model


def _replacement(module: nn.Module) -> nn.Module:
    dtype = next(module.parameters()).dtype
    kind = _REPLACED[type(module)]
    if isinstance(module, nn.RNNBase):
        arguments: dict[str, Any] = dict(
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=float(module.dropout),
            bidirectional=module.bidirectional,
        )
        if isinstance(module, nn.LSTM):
            arguments["proj_size"] = module.proj_size
        if isinstance(module, nn.RNN):
            arguments["nonlinearity"] = module.nonlinearity
    else:
        arguments = dict(bias=module.bias)
        if isinstance(module, nn.RNNCell):
            arguments["nonlinearity"] = module.nonlinearity
    replacement = kind(module.input_size, module.hidden_size, dtype=dtype, **arguments)
    replacement.load_state_dict(module.state_dict())
    return replacement.train(module.training)
