"""A model file's JSON header, checked before any layer is built.

The header: ``{"format": "lstmcore-model", "version": 1, "layers": [{"type": "LSTM",
"config": {...}}, ...], "metadata": {...}}``, and for a quantized model (``lstmcore.quantize``)
``"precision": "int8"`` or ``"bfloat16"``: its recurrent layers' weight matrices are then
stored as int8 with a float32 ``<name>.scale`` per row, or as bfloat16 bits (uint16). Layer types are looked up in
``LAYER_TYPES``; nothing is ever imported or unpickled by a name read from a file. Every
config value must have the JSON type its constructor argument takes (``true`` is not the
integer 1, ``"no"`` is not a boolean), and ``expected_weights`` gives the weights a config
implies, so that ``load`` compares them with the archive before any layer allocates them.
"""

from __future__ import annotations

import inspect
import json
import math

import numpy as np

from lstmcore.nn._layers import Dense, Dropout, Embedding, LastStep, Masking, MeanPool, RepeatLast
from lstmcore.nn.model_files._format import FORMAT, MAX_HEADER_DEPTH, MAX_HEADER_VALUES, MAX_LAYERS, VERSION, short, some
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._rnn import RNN

LAYER_TYPES = {
    cls.__name__: cls for cls in (LSTM, GRU, RNN, Dense, Embedding, Dropout, LastStep, MeanPool, Masking, RepeatLast)
}
_HEADER_KEYS = ("format", "version", "layers", "metadata", "precision")
RECURRENT_TYPES = ("LSTM", "GRU", "RNN")
# A quantized file's recurrent weight matrices: the dtype they are stored in.
REDUCED_DTYPES = {"int8": np.dtype(np.int8), "bfloat16": np.dtype(np.uint16)}
SCALE_SUFFIX = ".scale"


def json_type(value):
    """The JSON name of a parsed value's type, for messages."""
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(type(value)) or ("array" if isinstance(value, list) else "object")


# ----------------------------------------------------------------------- config values


class _Kind:
    def __init__(self, text, accepts):
        self.text, self.accepts = text, accepts


def _is_int(value, minimum):
    return type(value) is int and value >= minimum


_POSITIVE = _Kind("an integer >= 1", lambda v: _is_int(v, 1))
_BOOL = _Kind("a boolean", lambda v: type(v) is bool)
_NUMBER = _Kind("a number", lambda v: type(v) in (int, float))
_ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "hard_sigmoid", "linear", "softsign")
# Dense's activation may also be "softmax" (the recurrent layers' constructors refuse it).
_ACTIVATION = _Kind(
    f'one of {", ".join(map(json.dumps, _ACTIVATION_NAMES))} or ["hard_sigmoid", alpha, beta] ("softmax" for Dense)',
    lambda v: (
        (type(v) is str and v in (*_ACTIVATION_NAMES, "softmax"))
        or (
            type(v) is list
            and len(v) == 3
            and v[0] == "hard_sigmoid"
            and all(type(n) in (int, float) and math.isfinite(n) for n in v[1:])
        )
    ),
)
# The constructor argument each config key is passed to, by name: the same name means the
# same thing in every layer. A constructor argument missing here cannot be loaded (a test
# checks that there is none).
KINDS = {
    **dict.fromkeys(
        ("input_size", "hidden_size", "num_layers", "in_features", "out_features", "num_embeddings", "embedding_dim"),
        _POSITIVE,
    ),
    "proj_size": _Kind("an integer >= 0", lambda v: _is_int(v, 0)),
    "padding_idx": _Kind("null or an integer >= 0", lambda v: v is None or _is_int(v, 0)),
    **dict.fromkeys(
        ("bidirectional", "batch_first", "peephole", "coupled", "layer_norm", "bias", "reverse", "reset_after", "mask_zero"),
        _BOOL,
    ),
    **dict.fromkeys(("dropout", "recurrent_dropout", "zoneout", "p", "mask_value"), _NUMBER),
    "forget_bias": _Kind("null or a number", lambda v: v is None or type(v) in (int, float)),
    **dict.fromkeys(("nonlinearity", "gate_activation", "activation"), _ACTIVATION),
    "cell_activation": _Kind(f"null or {_ACTIVATION.text}", lambda v: v is None or _ACTIVATION.accepts(v)),
    "clip": _Kind("null or a number > 0", lambda v: v is None or (type(v) in (int, float) and v > 0)),
    "dtype": _Kind('"float32" or "float64"', lambda v: v in ("float32", "float64") and type(v) is str),
    "seed": _Kind(
        "null, an integer or a list of integers",
        lambda v: v is None or type(v) is int or (type(v) is list and all(type(item) is int for item in v)),
    ),
}


def constructor_arguments(cls):
    """(every keyword the constructor takes, those without a default)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # self
    return [p.name for p in parameters], {p.name for p in parameters if p.default is inspect.Parameter.empty}


_ARGUMENTS = {name: constructor_arguments(cls) for name, cls in LAYER_TYPES.items()}


def _check_config(index, kind, config, fail):
    def bad(problem):
        return fail(f"layer {index} ({kind}) has a bad config: {problem}")

    if type(config) is not dict:
        raise bad(f"expected an object, got {json_type(config)}")
    taken, required = _ARGUMENTS[kind]
    taken = [name for name in taken if name in KINDS]
    unknown = [key for key in config if key not in taken]
    if unknown:
        raise bad(f"unexpected keys {some(unknown)} (it takes {', '.join(taken) or 'none'})")
    absent = required - set(config)
    if absent:
        raise bad(f"missing keys {some(absent)}")
    for key, value in config.items():
        if not KINDS[key].accepts(value):
            raise bad(f"expected {key} as {KINDS[key].text}, got {short(value)} ({json_type(value)})")


# ----------------------------------------------------------------------- the header


class _Refused(ValueError):
    pass


def _unique_keys(pairs):
    # json keeps the last of two equal keys; a file holding two versions is refused
    unique = dict(pairs)
    if len(unique) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {short(key)} appears twice in one object")
            seen.add(key)
    return unique


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {short(text)} is not finite")
    return value


def _no_constant(text):
    raise _Refused(f"{text} is not JSON")


_SCAN_CHUNK = 2**18


def structure(raw):
    """(nesting depth, about how many values) of the JSON bytes ``raw``, counted without
    parsing them, so without the recursion and the Python objects a parser would make:
    the brackets and commas outside strings. Each comma starts one more value, each list
    or object is one and holds a first one. Vectorised per 256 KiB chunk, carrying the
    state between chunks (inside a string or not, backslashes just before), so its cost
    does not depend on what the bytes hold. UTF-8 never uses bytes below 0x80 inside a
    multi-byte character, so the bytes are scanned undecoded."""
    data = np.frombuffer(raw, np.uint8)
    inside, run, depth, deepest, values = False, 0, 0, 0, 1
    for start in range(0, len(data), _SCAN_CHUNK):
        chunk = data[start : start + _SCAN_CHUNK]
        positions = np.arange(len(chunk), dtype=np.int32)
        backslash = chunk == ord("\\")
        last_other = np.maximum.accumulate(np.where(backslash, np.int32(-1), positions))
        before = np.concatenate(([np.int32(-1)], last_other[:-1]))  # last non-backslash before each byte
        # backslashes right before each byte: an odd number escapes it
        escapes = positions - 1 - before + np.where(before == -1, run, 0)
        quotes = (chunk == ord('"')) & (escapes % 2 == 0)
        toggled = np.cumsum(quotes, dtype=np.int32)
        outside = (toggled % 2 == 1) == inside  # not within a string
        opens = outside & ((chunk == ord("[")) | (chunk == ord("{")))
        closes = outside & ((chunk == ord("]")) | (chunk == ord("}")))
        values += int(np.count_nonzero(outside & (chunk == ord(",")))) + 2 * int(np.count_nonzero(opens))
        steps = opens[opens | closes].astype(np.int32) * 2 - 1
        if len(steps):
            levels = depth + np.cumsum(steps)
            deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        inside ^= bool(toggled[-1] % 2) if len(toggled) else False
        run = run + len(chunk) if last_other[-1] == -1 else len(chunk) - 1 - int(last_other[-1])
    return deepest, values


def read_json(raw, fail, what="the header", max_values=MAX_HEADER_VALUES, finite=True):
    """The JSON value in ``raw`` (bytes), parsed only once ``structure`` has bounded what
    parsing it costs; strict: UTF-8, no repeated key, no NaN or infinity (unless
    ``finite`` is False: Python's NaN, Infinity and -Infinity, as ``json.dumps`` writes
    them). ``what`` names the text in messages; ``fail(problem)`` makes the error to raise."""
    depth, values = structure(raw)
    if values > max_values:
        raise fail(f"{what} holds about {values} values; at most {max_values} are read")
    if depth > MAX_HEADER_DEPTH:
        raise fail(f"{what} nests {depth} levels deep; at most {MAX_HEADER_DEPTH} are read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise fail(f"{what} is not UTF-8 text ({error.reason} at byte {error.start})") from error
    try:
        if not finite:
            return json.loads(text, object_pairs_hook=_unique_keys)
        return json.loads(text, object_pairs_hook=_unique_keys, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and _Refused are ValueErrors
        raise fail(f"{what} is not valid JSON ({short(str(error))})") from error


def parse(raw, fail):
    """The header in ``raw`` (bytes), checked; ``fail(problem)`` makes the error to raise."""
    header = read_json(raw, fail)
    if type(header) is not dict:
        raise fail(f"expected the header as a JSON object, got {json_type(header)}")
    given = header.get("format")
    if given != FORMAT or type(given) is not str:
        raise fail(f"expected format {FORMAT!r}, got {short(given)}")
    version = header.get("version")
    if type(version) is not int:
        raise fail(f"expected version {VERSION} (a JSON integer), got {short(version)} ({json_type(version)})")
    if version != VERSION:
        raise fail(f"model file version {short(version)} is not supported (this lstmcore reads version {VERSION})")
    unknown = [key for key in header if key not in _HEADER_KEYS]
    if unknown:
        raise fail(f"unexpected header keys {some(unknown)} (version {VERSION} has {', '.join(_HEADER_KEYS)})")
    metadata = header.setdefault("metadata", {})
    if type(metadata) is not dict:
        raise fail(f"expected metadata as a JSON object, got {json_type(metadata)}")
    layers = header.get("layers")
    if type(layers) is not list or not 1 <= len(layers) <= MAX_LAYERS:
        count = f"{len(layers)} entries" if type(layers) is list else json_type(layers)
        raise fail(f"expected layers as a list of 1 to {MAX_LAYERS} layers, got {count}")
    precision = header.get("precision")
    if "precision" in header and (type(precision) is not str or precision not in REDUCED_DTYPES):
        raise fail(f"expected precision {' or '.join(map(repr, REDUCED_DTYPES))}, got {short(precision)}")
    for index, entry in enumerate(layers):
        if type(entry) is not dict or sorted(entry) != ["config", "type"]:
            raise fail(f'layer {index}: expected {{"type": ..., "config": {{...}}}}, got {short(entry)}')
        kind = entry["type"]
        if type(kind) is not str or kind not in LAYER_TYPES:
            raise fail(f"layer {index} has unknown type {short(kind)}; known: {sorted(LAYER_TYPES)}")
        _check_config(index, kind, entry["config"], fail)
        if precision and kind in RECURRENT_TYPES and entry["config"].get("dtype", "float32") != "float32":
            raise fail(
                f"layer {index} ({kind}): the recurrent layers of a model quantized to {precision} are float32, "
                f"got {short(entry['config']['dtype'])}"
            )
    return header


# ----------------------------------------------------------------------- weights


def expected_weights(kind, config, precision=None):
    """(name, shape, dtype) of every weight a ``kind`` layer built from the checked
    ``config`` holds, lazily: a config claiming a million layers costs nothing until its
    names are compared with the archive's members. Mirrors the layers' own parameter
    layout (a test compares the two for every layer type and variant). With a
    ``precision``, a recurrent layer's weight matrices are in its dtype, int8 ones
    followed by their row scales."""
    dtype = np.dtype(config.get("dtype", "float32"))
    if kind == "Dense":
        yield "weight", (config["out_features"], config["in_features"]), dtype
        yield "bias", (config["out_features"],), dtype
    elif kind == "Embedding":
        yield "weight", (config["num_embeddings"], config["embedding_dim"]), dtype
    elif kind in RECURRENT_TYPES:
        for name, shape in _recurrent_weights(kind, config):
            if precision is None or not is_reduced(name):
                yield name, shape, dtype
                continue
            yield name, shape, REDUCED_DTYPES[precision]
            if precision == "int8":
                yield name + SCALE_SUFFIX, shape[:1], np.dtype(np.float32)


def is_reduced(name):
    """Whether a quantized model holds the recurrent weight ``name`` in reduced precision."""
    return name.startswith(("weight_ih_", "weight_hh_", "weight_hr_"))


def _recurrent_weights(kind, config):
    hidden = config["hidden_size"]
    projection = config.get("proj_size", 0) if kind == "LSTM" else 0
    output = projection or hidden
    directions = 2 if config.get("bidirectional", False) else 1
    blocks = {"GRU": 3, "RNN": 1}.get(kind, 3 if config.get("coupled", False) else 4)
    rows = blocks * hidden
    for layer in range(config.get("num_layers", 1)):
        layer_input = config["input_size"] if layer == 0 else directions * output
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            yield f"weight_ih{suffix}", (rows, layer_input)
            yield f"weight_hh{suffix}", (rows, output)
            if config.get("bias", True):
                yield f"bias_ih{suffix}", (rows,)
                yield f"bias_hh{suffix}", (rows,)
            if projection:
                yield f"weight_hr{suffix}", (projection, hidden)
            if kind == "LSTM" and config.get("layer_norm", False):
                yield f"layer_norm_ih_weight{suffix}", (4 * hidden,)
                yield f"layer_norm_hh_weight{suffix}", (4 * hidden,)
                yield f"layer_norm_cell_weight{suffix}", (hidden,)
                yield f"layer_norm_cell_bias{suffix}", (hidden,)
            if kind == "LSTM" and config.get("peephole", False):
                yield f"weight_peephole{suffix}", (2 if config.get("coupled", False) else 3, hidden)
