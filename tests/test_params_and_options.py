"""Parameters of a dtype that cannot be weights, non-finite float options, and predict on
no samples: a clear error (or the right empty shape), never a silent conversion or NaN.

A parameter is a float array: the other float precision (or a strided layout) is
converted, every other dtype (str, complex, object, int, bool) is a TypeError naming the
key, the expected and the given dtype. Integers are refused as well: training updates a
parameter in place, which an integer array cannot hold.
"""

import math

import numpy as np
import pytest

import lstmcore
from _variants import LAYER_VARIANTS
from lstmcore import Dense, Dropout, Embedding, LastStep, Sequential

B, T, I, H = 2, 3, 4, 5

NOT_FLOAT = {
    "str": lambda shape: np.full(shape, "0.5"),
    "complex": lambda shape: np.full(shape, 0.5 + 1j),
    "object": lambda shape: np.full(shape, 0.5, dtype=object),
    "int": lambda shape: np.ones(shape, np.int64),
    "bool": lambda shape: np.ones(shape, bool),
}


def make(variant, **extra):
    cls, options = LAYER_VARIANTS[variant]
    return cls(I, H, **{**options, **extra}, seed=0)


@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
@pytest.mark.parametrize("kind", sorted(NOT_FLOAT))
def test_recurrent_params_of_a_non_float_dtype_are_a_type_error_naming_the_key(variant, kind):
    layer = make(variant)
    x = np.ones((B, T, I), np.float32)
    name = max(layer.params)
    replacement = NOT_FLOAT[kind](layer.params[name].shape)
    layer.params[name] = replacement
    message = rf"params\['{name}'\] as a float array \(float32\), got dtype {replacement.dtype}"
    for run in (lambda: layer(x), lambda: layer.forward(x), lambda: layer.step(x[:, 0])):
        with pytest.raises(TypeError, match=message):
            run()


@pytest.mark.parametrize("kind", sorted(NOT_FLOAT))
def test_dense_and_embedding_params_of_a_non_float_dtype_are_a_type_error(kind):
    dense, embedding = Dense(I, 2, seed=0), Embedding(6, I, seed=0)
    dense.params["bias"] = NOT_FLOAT[kind]((2,))
    with pytest.raises(TypeError, match=r"params\['bias'\] as a float array"):
        dense.forward(np.ones((B, I)))
    embedding.params["weight"] = NOT_FLOAT[kind]((6, I))
    with pytest.raises(TypeError, match=r"params\['weight'\] as a float array"):
        embedding.forward(np.array([[1, 2]]))


@pytest.mark.parametrize("kind", sorted(NOT_FLOAT))
def test_assigning_a_non_float_array_to_model_params_is_a_type_error(kind):
    model = Sequential([lstmcore.LSTM(I, H, seed=0), LastStep(), Dense(H, 2, seed=1)])
    before = model.params["2.weight"].copy()
    with pytest.raises(TypeError, match=r"params\['2.weight'\] as a float array, got dtype"):
        model.params["2.weight"] = NOT_FLOAT[kind]((2, H))
    np.testing.assert_array_equal(model.params["2.weight"], before)


def test_params_of_the_other_float_precision_are_converted_as_before():
    layer, dense = lstmcore.LSTM(I, H, seed=0), Dense(H, 2, seed=1)
    x = np.random.default_rng(0).normal(size=(B, T, I)).astype(np.float32)
    y, _ = layer(x)
    out = dense.forward(y)[0]
    for module in (layer, dense):
        for name in module.params:
            module.params[name] = module.params[name].astype(np.float64)
    y64, _ = layer(x)
    np.testing.assert_array_equal(y64, y)
    np.testing.assert_array_equal(dense.forward(y64)[0], out)
    assert out.dtype == np.float32


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_forget_bias_must_be_finite(value):
    with pytest.raises(ValueError, match=rf"expected forget_bias as a finite number, got {value}"):
        lstmcore.LSTM(I, H, forget_bias=value)
    lstmcore.LSTM(I, H, forget_bias=np.float32(1.5))  # a finite NumPy scalar is fine


def test_forget_bias_must_be_finite_in_the_layers_dtype():
    with pytest.raises(ValueError, match=r"expected forget_bias finite in float32, got 1e\+300"):
        lstmcore.LSTM(I, H, forget_bias=1e300)
    assert lstmcore.LSTM(I, H, forget_bias=1e300, dtype=np.float64).params["bias_ih_l0"][H] == 1e300


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1.0])
@pytest.mark.parametrize("option", ["dropout", "recurrent_dropout", "zoneout"])
def test_rates_must_be_in_zero_one(option, value):
    with pytest.raises(ValueError, match=rf"expected {option} in \[0, 1\), got {value}"):
        lstmcore.LSTM(I, H, 2, **{option: value})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_dropout_layer_and_gru_dropout_refuse_non_finite_rates(value):
    with pytest.raises(ValueError, match="dropout"):
        Dropout(value)
    with pytest.raises(ValueError, match="dropout"):
        lstmcore.GRU(I, H, 2, dropout=value)


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -1.0, "5"])
def test_fit_refuses_a_clip_norm_that_is_not_a_finite_positive_number_before_training(value):
    model = Sequential([lstmcore.LSTM(I, H, seed=0), LastStep(), Dense(H, 1, seed=1)])
    before = {name: array.copy() for name, array in model.params.items()}
    with pytest.raises((ValueError, TypeError), match="clip_norm"):
        model.fit(np.ones((4, T, I)), np.ones((4, 1)), loss="mse", epochs=1, clip_norm=value, verbose=False)
    for name, array in model.params.items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_ablation_values_must_be_finite_or_nan(value):
    layer = lstmcore.LSTM(I, H, seed=0)
    x = np.ones((B, T, I), np.float32)
    with pytest.raises(ValueError, match=rf"ablate\['forget'\] as finite values or NaN, got {value}"):
        layer(x, ablate={"forget": value})
    per_unit = np.full(H, np.nan)
    per_unit[0] = 1.0
    layer(x, ablate={"forget": per_unit})  # NaN: leave that unit alone


@pytest.mark.parametrize(
    "layers, x, expected",
    [
        (lambda: [lstmcore.LSTM(I, H, seed=0), LastStep(), Dense(H, 2, seed=1)], np.zeros((0, T, I)), (0, 2)),
        (lambda: [lstmcore.GRU(I, H, seed=0)], np.zeros((0, T, I), np.float32), (0, T, H)),
        (
            lambda: [Embedding(9, I, seed=0), lstmcore.LSTM(I, H, seed=1), Dense(H, 9, seed=2)],
            np.zeros((0, T), np.int64),
            (0, T, 9),
        ),
    ],
    ids=["per-sequence", "per-step", "ids"],
)
def test_predict_on_no_samples_gives_the_shape_of_no_outputs(layers, x, expected):
    model = Sequential(layers())
    empty = model.predict(x)
    assert empty.shape == expected and empty.dtype == np.float32
    assert model.predict(x, lengths=np.zeros(0, np.int64)).shape == expected
    assert model.predict(np.concatenate([x, np.zeros((1,) + x.shape[1:], x.dtype)])).shape[1:] == expected[1:]
