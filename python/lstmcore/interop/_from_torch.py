"""``lstmcore.from_torch``: a PyTorch module as the lstmcore layer or model that computes
the same outputs, with copies of its weights (docs/interop.md has the table)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lstmcore.interop._torch_modules import require_torch, torch_modules
from lstmcore.nn import Dense, Dropout, Embedding, LastStep, MeanPool, Sequential
from lstmcore.nn._layers import check_dense_activation
from lstmcore.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

SUPPORTED = (
    "nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell, nn.Linear, nn.Embedding, nn.Dropout, "
    "and an nn.Sequential of them (cells excepted)"
)


def from_torch(module: Any) -> Any:
    """The lstmcore layer or model equivalent to a PyTorch ``module``, weights copied.

    - ``nn.LSTM`` (every option: ``proj_size``, ``bias=False``, ``bidirectional``,
      ``num_layers``, ``batch_first``, ``dropout``), ``nn.GRU``, ``nn.RNN`` (``tanh``,
      ``relu``) -> ``lstmcore.LSTM``, ``GRU``, ``RNN`` with the same options;
    - ``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNNCell`` -> ``lstmcore.LSTMCell``, ...;
    - ``nn.Linear`` -> ``Dense`` (``bias=False``: a zero bias), ``nn.Embedding`` ->
      ``Embedding`` (``padding_idx`` kept), ``nn.Dropout`` -> ``Dropout``;
    - an ``nn.Sequential`` of those (no cell, recurrent modules ``batch_first=True``) ->
      ``Sequential``, where a recurrent module stands for its output sequence, as in
      lstmcore's Sequential (PyTorch's own would hand the next module a tuple); the
      ``RecurrentSequential`` that ``to_torch`` makes, with its ``LastStep`` and ``MeanPool``.

    float32 and float64 modules give layers of that dtype. Anything else is a TypeError,
    an option lstmcore cannot compute (``nn.Embedding``'s ``max_norm``, ...) a ValueError;
    both name what is supported.
    """
    torch = require_torch()
    if isinstance(module, torch.nn.Sequential):
        return _sequential(torch, module)
    return _layer(torch, module)


def _sequential(torch: Any, module: Any) -> Sequential:
    classes = torch_modules()
    nn = torch.nn
    layers = []
    for name, child in module.named_children():
        where = f"module {name} of the {type(module).__name__}"
        if isinstance(child, nn.Sequential):
            raise TypeError(f"{where} is a nested {type(child).__name__}: lstmcore's Sequential is flat; unnest it")
        if isinstance(child, nn.RNNCellBase):
            raise TypeError(
                f"{where} is an nn.{type(child).__name__}, one step of one layer: lstmcore's Sequential runs whole "
                "sequences (nn.LSTM, nn.GRU, nn.RNN); convert the cell on its own"
            )
        if isinstance(child, nn.RNNBase) and not child.batch_first:
            raise ValueError(
                f"{where} is an nn.{type(child).__name__} with batch_first=False: lstmcore's Sequential runs (B, T, F) "
                "batches; build it with batch_first=True (the weights are the same), or convert it on its own"
            )
        layers.append(_layer(torch, child, where))
    if not layers:
        raise ValueError(f"expected an {type(module).__name__} with at least one module, got an empty one")
    metadata = getattr(module, "metadata", None) if isinstance(module, classes.RecurrentSequential) else None
    return Sequential(layers, metadata=metadata)


def _layer(torch: Any, module: Any, where: str = "") -> Any:
    nn = torch.nn
    classes = torch_modules()
    converters: dict[Any, Callable[[Any, Any], Any]] = {
        # to_torch's own modules first: its Dense subclasses nn.Linear
        classes.Dense: _activated_linear,
        nn.LSTM: _recurrent,
        nn.GRU: _recurrent,
        nn.RNN: _recurrent,
        nn.LSTMCell: _cell,
        nn.GRUCell: _cell,
        nn.RNNCell: _cell,
        nn.Linear: _linear,
        nn.Embedding: _embedding,
        nn.Dropout: lambda torch, module: Dropout(module.p),
        classes.LastStep: lambda torch, module: LastStep(bidirectional=module.bidirectional, reverse=module.reverse),
        classes.MeanPool: lambda torch, module: MeanPool(),
    }
    named = f"{where} ({type(module).__name__})" if where else type(module).__name__
    for kind, convert in converters.items():
        if isinstance(module, kind):
            # A subclass that computes something else is not the module the table maps.
            if type(module).forward is not kind.forward:
                raise TypeError(f"{named} overrides forward of nn.{kind.__name__}: its computation is unknown")
            return convert(torch, module)
    hint = ""
    if isinstance(module, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softmax, nn.LogSoftmax)):
        hint = " (lstmcore has no activation layers: an activation belongs to the Dense before it, Dense(activation=))"
    raise TypeError(f"cannot convert {named}{hint}; supported: {SUPPORTED}")


def _dtype(torch: Any, module: Any) -> np.dtype:
    """The one float dtype of the module's parameters."""
    if any(isinstance(parameter, torch.nn.parameter.UninitializedParameter) for parameter in module.parameters()):
        raise ValueError(f"the {type(module).__name__} has uninitialised (lazy) parameters: run it once first")
    found = {parameter.dtype for parameter in module.parameters()}
    known: dict[Any, np.dtype] = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
    if len(found) != 1 or not found <= set(known):
        given = ", ".join(sorted(str(dtype) for dtype in found))
        raise ValueError(f"expected the {type(module).__name__}'s parameters all float32 or all float64, got {given}")
    return known[found.pop()]


def _copy_weights(torch: Any, module: Any, params: dict[str, np.ndarray]) -> None:
    """The module's parameters into the lstmcore arrays of the same names and shapes."""
    given = dict(module.named_parameters())
    if set(given) != set(params):
        raise ValueError(
            f"expected the parameters {sorted(params)} of an nn.{type(module).__name__} with these options, "
            f"got {sorted(given)} (parametrizations and weight norm must be removed first)"
        )
    for name, array in params.items():
        value = given[name].detach().cpu().numpy()
        if value.shape != array.shape:
            raise ValueError(f"expected {name} of shape {array.shape}, got {value.shape}")
        array[...] = value


def _recurrent(torch: Any, module: Any) -> Any:
    nn = torch.nn
    options: dict[str, Any] = dict(
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        batch_first=module.batch_first,
        dropout=float(module.dropout),
        bias=module.bias,
        dtype=_dtype(torch, module),
    )
    if isinstance(module, nn.LSTM):
        layer: Any = LSTM(module.input_size, module.hidden_size, proj_size=module.proj_size, **options)
    elif isinstance(module, nn.GRU):
        layer = GRU(module.input_size, module.hidden_size, **options)
    else:
        layer = RNN(module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **options)
    _copy_weights(torch, module, layer.params)
    return layer


def _cell(torch: Any, module: Any) -> Any:
    nn = torch.nn
    options: dict[str, Any] = dict(bias=module.bias, dtype=_dtype(torch, module))
    if isinstance(module, nn.LSTMCell):
        cell: Any = LSTMCell(module.input_size, module.hidden_size, **options)
    elif isinstance(module, nn.GRUCell):
        cell = GRUCell(module.input_size, module.hidden_size, **options)
    else:
        cell = RNNCell(module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **options)
    _copy_weights(torch, module, cell.params)
    return cell


def _linear(torch: Any, module: Any) -> Dense:
    dense = Dense(module.in_features, module.out_features, dtype=_dtype(torch, module))
    if module.bias is None:
        # Dense always has a bias: zero computes nn.Linear(bias=False) (training then moves it).
        dense.params["bias"][...] = 0
        _copy_weights(torch, module, {"weight": dense.params["weight"]})
    else:
        _copy_weights(torch, module, dense.params)
    return dense


def _activated_linear(torch: Any, module: Any) -> Dense:
    """to_torch's Dense: an nn.Linear and lstmcore's activation after it."""
    dense = _linear(torch, module)
    dense.activation = check_dense_activation(module.activation)
    return dense


def _embedding(torch: Any, module: Any) -> Embedding:
    # max_norm rescales rows at lookup, scale_grad_by_freq scales the gradients: lstmcore
    # computes neither, so the layer would not be the module. sparse only changes the
    # gradient's storage, not its values.
    unmapped = {name: getattr(module, name) for name in ("max_norm", "scale_grad_by_freq") if getattr(module, name)}
    if unmapped:
        options = ", ".join(f"{name}={value!r}" for name, value in unmapped.items())
        raise ValueError(
            f"nn.Embedding with {options} has no lstmcore equivalent; supported: num_embeddings, embedding_dim, "
            "padding_idx (and sparse)"
        )
    embedding = Embedding(
        module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx, dtype=_dtype(torch, module)
    )
    _copy_weights(torch, module, embedding.params)
    return embedding
