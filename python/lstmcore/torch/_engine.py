"""The lstmcore layers that do the work behind the PyTorch modules, and the tapes they keep.

A module describes itself by a configuration string (JSON of the layer's constructor
arguments). The layer built from it is only an engine: the module's tensors are handed to
it as NumPy views on every call, so nothing is copied and the layer's own ``params`` are
never read.

A forward pass that will be differentiated keeps its tape here. The custom op can only
return tensors, so it returns a one-element int64 tensor, the tape's key, whose memory is
owned by the tape's holder: the tape lives exactly as long as that tensor's storage (which
autograd keeps for backward) and is freed with it, whether or not backward ever runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import threading
import weakref
from typing import Any

import numpy as np

from lstmcore.rnn import GRU, LSTM, RNN
from lstmcore.rnn._recurrent import _GatedRecurrent

_KINDS: dict[str, type[_GatedRecurrent]] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}


def describe(kind: str, **options: Any) -> str:
    """The configuration string of a layer ``kind`` with these constructor options."""
    return json.dumps({"kind": kind, **options}, sort_keys=True)


@functools.lru_cache(maxsize=256)
def engine(config: str, dtype_name: str) -> _GatedRecurrent:
    """The layer that runs ``config`` in ``dtype_name``; shared, so never changed by a call."""
    options = json.loads(config)
    kind = _KINDS[options.pop("kind")]
    for name in ("gate_activation", "activation", "cell_activation", "nonlinearity"):
        if isinstance(options.get(name), list):  # JSON turned a (name, alpha, beta) tuple into a list
            options[name] = tuple(options[name])
    return kind(**options, dtype=np.dtype(dtype_name))


def seeded(layer: _GatedRecurrent, seed: int) -> _GatedRecurrent:
    """A shallow copy of ``layer`` drawing its dropout and zoneout masks from ``seed``, so
    calls from several threads never share a generator."""
    copied = copy.copy(layer)
    copied._dropout_rng = np.random.default_rng(seed)
    return copied


@functools.lru_cache(maxsize=256)
def layout(config: str) -> dict[str, Any]:
    """Sizes the fake (shape-only) implementations need: parameter shapes in order, the
    state sizes, the output width, the layout."""
    layer = engine(config, "float32")
    return {
        "param_shapes": list(layer._param_shapes().values()),
        "param_names": list(layer._param_shapes()),
        "state_sizes": list(layer._state_sizes()),
        "states": layer.num_layers * layer.num_directions,
        "width": layer.num_directions * layer.output_size,
        "batch_first": layer.batch_first,
    }


class _TapeHolder(bytearray):
    """Eight bytes (the key) that also carry the tape: the key tensor's memory."""

    layer: _GatedRecurrent
    tape: Any
    weights: dict[str, np.ndarray]


_tapes: weakref.WeakValueDictionary[int, _TapeHolder] = weakref.WeakValueDictionary()
_keys = itertools.count(1)
_keys_lock = threading.Lock()


def keep_tape(layer: _GatedRecurrent, tape: Any, weights: dict[str, np.ndarray]) -> np.ndarray:
    """A one-element int64 array, the tape's key, whose buffer keeps the tape alive."""
    holder = _TapeHolder(8)
    holder.layer, holder.tape, holder.weights = layer, tape, weights
    with _keys_lock:
        key = next(_keys)
    handle = np.frombuffer(holder, dtype=np.int64)
    handle[0] = key
    _tapes[key] = holder
    return handle


def find_tape(key: int) -> _TapeHolder:
    holder = _tapes.get(key)
    if holder is None:
        raise RuntimeError(
            "the lstmcore tape of this forward pass is gone (it lives as long as the autograd graph "
            "that holds it): run the forward pass again"
        )
    return holder
