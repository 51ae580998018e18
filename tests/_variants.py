"""The one table of kernels, variants and dtypes the tests parametrize over.

A variant id is its features joined by "_" (``peephole_projected``,
``zoneout_recurrent_dropout``), so ``pytest -k layer_norm`` selects every case with layer
norm in every file and ``pytest -k float64`` every float64 case. ``lstm`` is the plain
LSTM, ``gru`` the GRU; every other feature is an LSTM option. The sizes below are the
defaults; a test whose shape needs another (a proj_size below its hidden size, a rate
it was tuned with) passes it to ``layer_options`` and keeps the id.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore

DTYPES = (np.float32, np.float64)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(dtype).name for dtype in DTYPES])

# feature word -> the LSTM constructor options it sets, at the default sizes.
FEATURES = {
    "lstm": {},
    "gru": {},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "layer_norm": {"layer_norm": True},
    "projected": {"proj_size": 3},
    "forget_bias": {"forget_bias": 1.0},
    "zoneout": {"zoneout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.2},
    "dropout": {"dropout": 0.4},
}
# Each kernel family and LSTM variant alone: the set most tests run.
KERNELS = ("lstm", "peephole", "coupled", "layer_norm", "projected", "zoneout", "gru")
LSTM_CELLS = ("lstm", "peephole", "coupled", "layer_norm", "projected")
# Words of two parts, matched before their first part could be read as a word of its own.
_TWO_PART_WORDS = {word for word in FEATURES if "_" in word}


def features(variant):
    """The feature words of a variant id, in order: "peephole_zoneout_recurrent_dropout"
    -> ["peephole", "zoneout", "recurrent_dropout"]."""
    parts, words = variant.split("_"), []
    while parts:
        pair = "_".join(parts[:2])
        word = pair if pair in _TWO_PART_WORDS else parts[0]
        if word not in FEATURES:
            raise ValueError(f"a variant id made of {sorted(FEATURES)} joined by '_', got {variant!r}")
        words.append(word)
        parts = parts[len(word.split("_")) :]
    if "gru" in words and len(words) > 1:
        raise ValueError(f"the GRU takes no LSTM features, got {variant!r}")
    return words


def layer_class(variant):
    """lstmcore.GRU for "gru", lstmcore.LSTM for every other variant."""
    return lstmcore.GRU if features(variant) == ["gru"] else lstmcore.LSTM


def layer_options(variant, **sizes):
    """The constructor options of a variant; ``sizes`` replace the defaults of the options
    the variant sets (``layer_options("projected", proj_size=16)``) and are ignored by the
    others, so one call serves a whole parametrisation."""
    options = {}
    for word in features(variant):
        options.update(FEATURES[word])
    unknown = set(sizes) - {key for word in FEATURES.values() for key in word}
    if unknown:
        raise ValueError(f"sizes of options {sorted(set().union(*FEATURES.values()))}, got {sorted(unknown)}")
    return {key: sizes.get(key, value) for key, value in options.items()}


def layer_variants(*variants, **sizes):
    """variant id -> (layer class, constructor options), for ``variants`` (KERNELS if none)."""
    return {variant: (layer_class(variant), layer_options(variant, **sizes)) for variant in variants or KERNELS}


def option_table(*variants, **sizes):
    """variant id -> constructor options, for LSTM variants whose tests give the class."""
    return {variant: layer_options(variant, **sizes) for variant in variants}


def checked_table(table):
    """``table`` (variant id -> constructor options at a test's own sizes), once every id
    is checked to name exactly the options it sets."""
    for variant, options in table.items():
        expected = set(layer_options(variant))
        if set(options) != expected:
            raise ValueError(f"{variant!r} sets the options {sorted(expected)}, got {sorted(options)}")
    return table


def variants(*ids, argname="variant"):
    """Parametrizes ``argname`` over variant ids (KERNELS if none), each checked here."""
    ids = ids or KERNELS
    for variant in ids:
        features(variant)
    return pytest.mark.parametrize(argname, list(ids))


def variant_options(*ids, argname="options", **sizes):
    """Parametrizes ``argname`` over the constructor options of ``ids``, each case named by its id."""
    return pytest.mark.parametrize(argname, [layer_options(variant, **sizes) for variant in ids], ids=list(ids))


# The two kernel families, for tests of what the LSTM and the GRU share.
kinds = variants("lstm", "gru", argname="kind")

# Every kernel family and LSTM variant alone, at the default sizes (zoneout's rate is its
# inference form here): variant id -> (layer class, constructor options).
LAYER_VARIANTS = layer_variants()
