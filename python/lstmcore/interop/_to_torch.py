"""``lstmcore.to_torch``: an lstmcore layer or model as the PyTorch module that computes
the same outputs, with copies of its weights (docs/interop.md has the table)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np

from lstmcore._util.checks import param_array, shape_text
from lstmcore.interop._torch_modules import require_torch, torch_modules
from lstmcore.nn import Dense, Dropout, Embedding, LastStep, MeanPool, Sequential
from lstmcore.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

SUPPORTED = "LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell, Dense, Embedding, Dropout, LastStep, MeanPool, a Sequential of them"

# The configuration keys each PyTorch module has an argument for. Any other key off its
# constructor default is an option PyTorch cannot compute, refused by name; options added
# to the layers later are refused until they are mapped here. seed only picks the initial
# weights, which are copied; so does LSTM's forget_bias (an initial value of the forget
# rows of bias_ih), so the torch module computes what the layer computes.
_RECURRENT = {"input_size", "hidden_size", "num_layers", "bidirectional", "batch_first", "dtype", "seed", "dropout", "bias"}
_MAPPED: dict[type, set[str]] = {
    LSTM: _RECURRENT | {"proj_size", "forget_bias"},
    GRU: set(_RECURRENT),
    RNN: _RECURRENT | {"nonlinearity"},
    Dense: {"in_features", "out_features", "dtype", "seed", "activation"},
    Embedding: {"num_embeddings", "embedding_dim", "padding_idx", "dtype", "seed"},
    Dropout: {"p", "seed"},
    LastStep: {"bidirectional", "reverse"},
    MeanPool: set(),
}
_MISSING = object()


def to_torch(layer_or_model: Any) -> Any:
    """The PyTorch module equivalent to an lstmcore layer or ``Sequential``, weights copied,
    in eval mode (as lstmcore's inference runs: dropout off).

    - ``LSTM``, ``GRU``, ``RNN`` -> ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` with the same
      options (``proj_size``, ``bias``, ``bidirectional``, ``num_layers``, ``batch_first``,
      ``dropout``, ``nonlinearity``); the cells -> ``nn.LSTMCell``, ...; ``Dense`` ->
      ``nn.Linear``; ``Embedding`` -> ``nn.Embedding``; ``Dropout`` -> ``nn.Dropout``.
    - ``Sequential`` -> a ``RecurrentSequential`` (an ``nn.Sequential``) whose
      ``forward(x, lengths=None)`` gives what ``model.predict(x, lengths=lengths)`` gives,
      with the model's ``params`` keys as its ``state_dict`` keys; ``LastStep`` and
      ``MeanPool`` become modules of those names.

    Options PyTorch has no module for (peephole, coupled, layer_norm, zoneout,
    recurrent_dropout, activations other than sigmoid and tanh, clip, reverse, GRU's
    reset_after=False) are a ValueError naming them; any other object a TypeError.
    """
    torch = require_torch()
    module = _sequential(torch, layer_or_model) if isinstance(layer_or_model, Sequential) else _layer(torch, layer_or_model)
    return module.eval()


def _sequential(torch: Any, model: Sequential) -> Any:
    modules = [_layer(torch, layer, f"layer {index} of the Sequential") for index, layer in enumerate(model.layers)]
    converted = torch_modules().RecurrentSequential(*modules)
    converted.metadata = copy.deepcopy(model.metadata)
    return converted


def _layer(torch: Any, layer: Any, where: str = "") -> Any:
    named = f"{where} ({type(layer).__name__})" if where else type(layer).__name__
    if isinstance(layer, (LSTMCell, GRUCell, RNNCell)):
        # Sequential refuses cells when it is built; one put into model.layers afterwards
        # would become a torch cell, which RecurrentSequential cannot feed a sequence.
        if where:
            raise TypeError(f"{named} is a cell: a Sequential of lstmcore runs no cell")
        return _cell(torch, layer)
    kind = next((kind for kind in _MAPPED if isinstance(layer, kind)), None)
    if kind is None:
        raise TypeError(f"cannot convert {named} to PyTorch; supported: {SUPPORTED}")
    _refuse_unmapped(layer, kind, named)
    nn = torch.nn
    if isinstance(layer, (LSTM, GRU, RNN)):
        return _recurrent(torch, layer)
    if isinstance(layer, Dense):
        dtype = _torch_dtype(torch, layer.dtype)
        if layer.activation == "linear":
            return _copied(torch, nn.Linear(layer.in_features, layer.out_features, dtype=dtype), layer)
        dense = torch_modules().Dense(layer.in_features, layer.out_features, layer.activation, dtype)
        return _copied(torch, dense, layer)
    if isinstance(layer, Embedding):
        module = nn.Embedding(
            layer.num_embeddings, layer.embedding_dim, padding_idx=layer.padding_idx, dtype=_torch_dtype(torch, layer.dtype)
        )
        return _copied(torch, module, layer)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    classes = torch_modules()
    if isinstance(layer, LastStep):
        return classes.LastStep(bidirectional=layer.bidirectional, reverse=layer.reverse)
    return classes.MeanPool()


def _refuse_unmapped(layer: Any, kind: type, named: str) -> None:
    defaults = {name: parameter.default for name, parameter in inspect.signature(type(layer)).parameters.items()}
    unmapped = {
        name: value
        for name, value in layer.get_config().items()
        if name not in _MAPPED[kind] and value != defaults.get(name, _MISSING)
    }
    if unmapped:
        options = ", ".join(f"{name}={value!r}" for name, value in unmapped.items())
        mapped = ", ".join(sorted(_MAPPED[kind] - {"seed", "dtype"}))
        raise ValueError(f"{named} with {options} has no PyTorch equivalent; PyTorch's module takes {mapped}")


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def _copied(torch: Any, module: Any, source: Any) -> Any:
    """``module`` with the values of ``source.params`` (checked: same keys, same shapes)."""
    params = source.params
    given = dict(module.named_parameters())
    if set(params) != set(given):
        raise ValueError(f"expected {type(source).__name__} params with keys {sorted(given)}, got {sorted(params)}")
    with torch.no_grad():
        for name, parameter in given.items():
            value = param_array(params[name], f"params[{name!r}]", source.dtype)
            if value.shape != tuple(parameter.shape):
                raise ValueError(
                    f"expected params[{name!r}] of shape {shape_text(parameter.shape)}, got {shape_text(value.shape)}"
                )
            parameter.copy_(torch.from_numpy(value))
    return module


def _recurrent(torch: Any, layer: Any) -> Any:
    # The arguments are the configuration's own keys, PyTorch's names.
    config = layer.get_config()
    names = ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"]
    if isinstance(layer, LSTM):
        module_class, names = torch.nn.LSTM, names + ["proj_size"]
    elif isinstance(layer, GRU):
        module_class = torch.nn.GRU
    else:
        module_class, names = torch.nn.RNN, names + ["nonlinearity"]
    arguments = {name: config[name] for name in names}
    return _copied(torch, module_class(**arguments, dtype=_torch_dtype(torch, layer.dtype)), layer)


def _cell(torch: Any, cell: Any) -> Any:
    # Through the cell's one-layer layer, so an option a cell gains later is checked as the
    # layer's is.
    layer = cell.to_layer()
    _refuse_unmapped(layer, type(layer), type(cell).__name__)
    nn = torch.nn
    options: dict[str, Any] = dict(bias=cell.bias, dtype=_torch_dtype(torch, cell.dtype))
    module: Any
    if isinstance(cell, LSTMCell):
        module = nn.LSTMCell(cell.input_size, cell.hidden_size, **options)
    elif isinstance(cell, GRUCell):
        module = nn.GRUCell(cell.input_size, cell.hidden_size, **options)
    else:
        module = nn.RNNCell(cell.input_size, cell.hidden_size, nonlinearity=cell.nonlinearity, **options)
    return _copied(torch, module, cell)
