"""The layers of a Keras model's config as one chain, input first.

A ``Sequential`` config lists its layers in order. A functional one (``Functional``)
lists nodes, each naming the layers whose outputs it takes; it is accepted when it is
a single chain from one input to one output, every layer called once on the previous
one's output. Keras 3 adds the operations that compute a ``Masking`` layer's mask
(``NotEqual``, ``Any``) as nodes beside the chain; those are accepted when the chain
starts with a layer that makes a mask, which is where lstmcore reads lengths from.

Anything else is refused: a ``ModelFileError`` when the config is not what Keras
writes, a ``ValueError`` naming the layer when it is valid Keras that lstmcore cannot
run as a chain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lstmcore.nn.model_files._format import MAX_LAYERS, ModelFileError, clip, short

Fail = Callable[[str], ModelFileError]
# The operations Keras 3 records for a Masking layer's mask (keras_tensor != mask_value,
# then any over the features): no weights, no output of the model.
_MASK_OPERATIONS = ("NotEqual", "Any")
# kwargs a call of a chain layer may carry: Keras records the mask it passed and the
# training flag of the call, which inference ignores.
_CALL_KWARGS = ("training", "mask")


class KerasLayer:
    """One layer of the chain: its Keras class, name, config, the input shape Keras built
    it for (None when not recorded) and its group in the weights file."""

    def __init__(self, kind: str, name: str, config: dict[str, Any], input_shape: list | None, group: str) -> None:
        self.kind, self.name, self.config, self.input_shape, self.group = kind, name, config, input_shape, group

    def describe(self) -> str:
        return describe(self.kind, self.name)


def describe(kind: str, name: str) -> str:
    return f"Keras layer {short(name)} ({clip(kind, 60)})"


def snake_case(name: str) -> str:
    """Keras's name of an object's group in the weights file, from its class name
    (keras.src.utils.naming.to_snake_case): "SimpleRNN" -> "simple_rnn"."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _object(value: Any, what: str, fail: Fail) -> dict[str, Any]:
    if type(value) is not dict:
        raise fail(f"expected {what} as a JSON object, got {short(value)}")
    return value


def _string(value: Any, what: str, fail: Fail) -> str:
    if type(value) is not str:
        raise fail(f"expected {what} as a string, got {short(value)}")
    return value


def _entry(value: Any, index: int, fail: Fail) -> tuple[str, str, dict[str, Any]]:
    """(class name, layer name, config) of a config's layer entry."""
    entry = _object(value, f"layer {index} of the config", fail)
    kind = _string(entry.get("class_name"), f"the class_name of layer {index}", fail)
    config = _object(entry.get("config"), f"the config of layer {index} ({short(kind)})", fail)
    name = _string(entry.get("name", config.get("name")), f"the name of layer {index} ({short(kind)})", fail)
    return kind, name, config


def _built_shape(entry: dict[str, Any]) -> list | None:
    build = entry.get("build_config")
    shape = build.get("input_shape") if type(build) is dict else None
    return shape if type(shape) is list else None


def chain_of(document: Any, fail: Fail) -> tuple[list[KerasLayer], str]:
    """(the chain's layers, InputLayer first when the config has one; the model's name)."""
    model = _object(document, "config.json", fail)
    kind = _string(model.get("class_name"), "the model's class_name", fail)
    config = _object(model.get("config"), "the model's config", fail)
    given = config.get("name")
    name = given if isinstance(given, str) else "model"
    layers = config.get("layers")
    if type(layers) is not list:
        raise fail(f"expected the model's layers as a list, got {short(layers)}")
    if len(layers) > MAX_LAYERS:
        raise fail(f"a model of {len(layers)} layers; at most {MAX_LAYERS} are read")
    if kind == "Sequential":
        entries = [(*_entry(value, index, fail), value) for index, value in enumerate(layers)]
    elif kind == "Functional":
        entries = _functional_chain(config, layers, fail)
    else:
        raise ValueError(
            f"the Keras model {short(name)} is a {short(kind)}; from_keras reads Sequential models and "
            "functional models that are a single chain of layers (a subclassed model has no config of its layers)"
        )
    # Keras names each layer's group in the weights file after its class, numbered in
    # the order of model.layers: "lstm", "lstm_1", ... (saving_lib._save_container_state).
    used: dict[str, int] = {}
    chain = []
    for kind, layer_name, layer_config, entry in entries:
        group = snake_case(kind)
        if group in used:
            used[group] += 1
            group = f"{group}_{used[group]}"
        else:
            used[group] = 0
        chain.append(KerasLayer(kind, layer_name, layer_config, _built_shape(entry), group))
    return chain, name


def _history(tensor: Any, fail: Fail, where: str) -> str | None:
    """The name of the layer whose output ``tensor`` (a call argument) is; None when it
    is not a Keras tensor."""
    if type(tensor) is not dict or tensor.get("class_name") != "__keras_tensor__":
        return None
    config = _object(tensor.get("config"), f"a tensor of {where}", fail)
    history = config.get("keras_history")
    if type(history) is not list or len(history) != 3 or type(history[0]) is not str:
        raise fail(f"expected a tensor's keras_history in {where} as [layer, node, index], got {short(history)}")
    if history[1:] != [0, 0]:
        raise ValueError(f"{where} takes output {short(history[1:])} of layer {short(history[0])}: not a single chain")
    return history[0]


def _names(value: Any, what: str, fail: Fail) -> list[str]:
    """The layer names of input_layers / output_layers: [name, 0, 0] or a list of them."""
    if type(value) is list and len(value) == 3 and type(value[0]) is str:
        value = [value]
    if type(value) is not list or not all(type(item) is list and item and type(item[0]) is str for item in value):
        raise fail(f"expected {what} as [[layer, node, index], ...], got {short(value)}")
    return [item[0] for item in value]


def _functional_chain(config: dict[str, Any], layers: list, fail: Fail) -> list:
    by_name: dict[str, tuple] = {}
    for index, value in enumerate(layers):
        kind, name, layer_config = _entry(value, index, fail)
        if name in by_name:
            raise fail(f"two layers named {short(name)} in the config")
        by_name[name] = (kind, name, layer_config, value)
    inputs = _names(config.get("input_layers"), "input_layers", fail)
    outputs = _names(config.get("output_layers"), "output_layers", fail)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the Keras model has {len(inputs)} inputs and {len(outputs)} outputs; from_keras reads one of each")

    chain: list[tuple] = []
    masks: list[str] = []  # the layers whose output some call passes as its mask
    name = outputs[0]
    while True:
        if name not in by_name:
            raise fail(f"the config names layer {short(name)} but has no such layer")
        if any(entry[1] == name for entry in chain):
            raise fail(f"layer {short(name)} takes its own output (a cycle)")
        kind, _, _, value = entry = by_name[name]
        chain.append(entry)
        where = describe(kind, name)
        nodes = value.get("inbound_nodes", [])
        if kind == "InputLayer" and not nodes:
            break
        if type(nodes) is not list or len(nodes) != 1:
            count = len(nodes) if type(nodes) is list else short(nodes)
            raise ValueError(f"{where} is called {count} times; from_keras reads a single chain, each layer called once")
        node = _object(nodes[0], f"the call of {where}", fail)
        args, kwargs = node.get("args"), node.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict:
            raise fail(f"expected the call of {where} as args (a list) and kwargs (an object)")
        previous = _history(args[0], fail, where) if len(args) == 1 else None
        if previous is None:
            flat = [item for arg in args for item in (arg if type(arg) is list else [arg])]
            count = sum(type(item) is dict and item.get("class_name") == "__keras_tensor__" for item in flat)
            raise ValueError(f"{where} takes {count} inputs; from_keras reads a single chain of one-input layers")
        for key, argument in kwargs.items():
            if key not in _CALL_KWARGS:
                raise ValueError(
                    f"{where} is called with {short(key)}=...; from_keras reads calls with mask and training only"
                )
            if key == "mask" and argument is not None:
                mask = _history(argument, fail, where)
                if mask is None:
                    raise ValueError(f"{where} is called with a mask that is not a layer's output")
                masks.append(mask)
        name = previous
    chain.reverse()
    if chain[0][1] != inputs[0]:
        raise ValueError(f"the chain from the output starts at {short(chain[0][1])}, not at the input {short(inputs[0])}")
    _check_mask_operations(by_name, chain, masks, fail)
    return chain


def _check_mask_operations(by_name: dict[str, tuple], chain: list[tuple], masks: list[str], fail: Fail) -> None:
    """Every layer off the chain is an operation of the mask of the chain's first layer."""
    on_chain = {entry[1] for entry in chain}
    extra = [entry for name, entry in by_name.items() if name not in on_chain]
    for kind, name, _, _ in extra:
        if kind not in _MASK_OPERATIONS:
            raise ValueError(f"{describe(kind, name)} is not on the single chain from input to output")
    mask_source = len(chain) > 1 and (
        chain[1][0] == "Masking" or (chain[1][0] == "Embedding" and chain[1][2].get("mask_zero") is True)
    )
    if (extra or masks) and not mask_source:
        raise ValueError(
            "the Keras model passes masks that its first layer does not make; from_keras reads masks made by a first "
            "Embedding(mask_zero=True) or Masking layer"
        )
    first = chain[1][2]
    padding = first.get("mask_value", 0.0) if chain[1][0] == "Masking" else 0
    readable = {chain[0][1], *(entry[1] for entry in extra)}
    for kind, name, _, value in extra:
        nodes = value.get("inbound_nodes")
        for node in nodes if type(nodes) is list else []:
            args = node.get("args") if type(node) is dict else None
            if type(args) is not list:
                raise fail(f"expected the call of operation {short(name)} with args (a list)")
            sources = [_history(arg, fail, f"operation {short(name)}") for arg in args]
            if not all(source in readable for source in sources if source):
                raise ValueError(f"operation {short(name)} ({short(kind)}) of a mask reads a layer's output, not the input")
            constants = [arg for arg, source in zip(args, sources) if source is None]
            if kind == "NotEqual" and constants != [padding]:
                raise ValueError(
                    f"operation {short(name)} (NotEqual) compares with {short(constants)}, not with the padding "
                    f"{short(padding)} of the first layer"
                )
    unknown = [mask for mask in masks if mask not in {entry[1] for entry in extra} | {chain[1][1]}]
    if unknown:
        raise ValueError(f"a call takes a mask from {short(unknown[0])}, which is not the first layer's mask")
