"""Dense, Embedding, Dropout, LastStep, MeanPool, Masking, RepeatLast and Sequential:
backward against central finite differences in float64, and the layers' contracts
(configs, padding, masks, views, lengths read off the input)."""

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, numerical_gradient, sample_indices
from lstmcore import GRU, LSTM, Dense, Dropout, Embedding, LastStep, Masking, MeanPool, RepeatLast, Sequential

F64 = np.float64


def check_gradients(forward_backward, params, grads, x=None, seed=0, samples=12):
    """Compare backward's parameter (and input) gradients of sum(y * R) with finite differences.

    forward_backward(x, dy) -> (y, dx) runs forward, then backward with dy when dy is not None.
    """
    rng = np.random.default_rng(seed)
    y, _ = forward_backward(x, None)
    projection = rng.normal(size=y.shape)

    def loss():
        return float(np.sum(forward_backward(x, None)[0] * projection))

    for grad in grads.values():
        grad[...] = 0
    _, dx = forward_backward(x, projection)
    for name, param in params.items():
        indices = sample_indices(param.shape, samples, rng)
        estimate = numerical_gradient(loss, param, indices)
        mask = np.isnan(estimate)
        assert_close(f"d{name}", np.where(mask, np.nan, grads[name]), estimate, rtol=1e-6, atol=1e-8, equal_nan=True)
    if x is not None and x.dtype.kind == "f":
        estimate = numerical_gradient(loss, x, sample_indices(x.shape, samples, rng))
        assert_close("dx", np.where(np.isnan(estimate), np.nan, dx), estimate, rtol=1e-6, atol=1e-8, equal_nan=True)


def layer_pass(layer, **options):
    def run(x, dy):
        y, tape = layer.forward(x, **options)
        return y, (None if dy is None else layer.backward(tape, dy))

    return run


def model_pass(model, lengths=None):
    def run(x, dy):
        y, tape = model.forward(x, lengths=lengths)
        return y, (None if dy is None else model.backward(tape, dy))

    return run


# ----------------------------------------------------------------------- single layers


@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4)])
def test_dense_backward_matches_finite_differences(shape):
    layer = Dense(4, 3, dtype=F64, seed=0)
    x = np.random.default_rng(1).normal(size=shape)
    check_gradients(layer_pass(layer), layer.params, layer.grads, x)


def test_dense_matches_pytorch_layout_and_initial_range():
    layer = Dense(16, 5, seed=3)
    assert layer.params["weight"].shape == (5, 16) and layer.params["bias"].shape == (5,)
    assert layer.params["weight"].dtype == np.float32
    assert np.abs(layer.params["weight"]).max() <= 0.25 and np.abs(layer.params["bias"]).max() <= 0.25
    x = np.ones((2, 16), np.float32)
    y, _ = layer.forward(x)
    assert_close("y", y, x @ layer.params["weight"].T + layer.params["bias"], rtol=1e-6, atol=1e-6)


DENSE_ACTIVATIONS = ["sigmoid", "tanh", "relu", ("hard_sigmoid", 1 / 6, 0.5), "softsign", "softmax"]


@pytest.mark.parametrize("activation", DENSE_ACTIVATIONS, ids=str)
def test_dense_activation_backward_matches_finite_differences(activation):
    layer = Dense(4, 3, activation=activation, dtype=F64, seed=0)
    x = np.random.default_rng(1).normal(size=(3, 2, 4)) * 2
    check_gradients(layer_pass(layer), layer.params, layer.grads, x)


@pytest.mark.parametrize("activation", DENSE_ACTIVATIONS, ids=str)
def test_dense_activation_applies_to_the_linear_output(activation):
    from lstmcore.reference import _activations

    layer = Dense(4, 3, activation=activation, dtype=F64, seed=0)
    x = np.random.default_rng(2).normal(size=(5, 4)) * 3
    z = Dense(4, 3, dtype=F64, seed=0).forward(x)[0]
    expected = np.exp(z) / np.exp(z).sum(-1, keepdims=True) if activation == "softmax" else None
    if expected is None:
        expected = _activations.activation(activation, z)[0]
    assert_close("y", layer.forward(x)[0], expected, rtol=1e-12, atol=1e-12)


def test_dense_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="gelu"):
        Dense(2, 2, activation="gelu")


def test_dense_rejects_a_wrong_feature_size_naming_both():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(2, 3, 5\)"):
        Dense(4, 3).forward(np.zeros((2, 3, 5)))


def test_backward_accumulates_into_grads():
    layer = Dense(3, 2, dtype=F64, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 3))
    y, tape = layer.forward(x)
    layer.backward(tape, np.ones_like(y))
    once = {name: grad.copy() for name, grad in layer.grads.items()}
    layer.backward(tape, np.ones_like(y))
    for name, grad in layer.grads.items():
        assert_close(name, grad, 2 * once[name], rtol=1e-12, atol=1e-15)
    layer.zero_grad()
    assert all(not grad.any() for grad in layer.grads.values())


def test_embedding_backward_matches_finite_differences_and_skips_padding():
    layer = Embedding(7, 3, padding_idx=0, dtype=F64, seed=0)
    ids = np.array([[1, 2, 0, 2], [6, 0, 0, 5]])
    assert not layer.params["weight"][0].any()
    check_gradients(layer_pass(layer), {"weight": layer.params["weight"][1:]}, {"weight": layer.grads["weight"][1:]}, ids)
    y, tape = layer.forward(ids)
    layer.zero_grad()
    layer.backward(tape, np.ones_like(y))
    assert not layer.grads["weight"][0].any()
    assert np.array_equal(layer.grads["weight"][2], np.full(3, 2.0))  # id 2 is used twice
    assert not y[0, 2].any()


def test_embedding_rejects_bad_ids():
    layer = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"\[0, 5\).*7"):
        layer.forward(np.array([[1, 7]]))
    with pytest.raises(ValueError, match=r"-1"):
        layer.forward(np.array([-1]))
    with pytest.raises(TypeError, match="integer ids"):
        layer.forward(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 2, padding_idx=5)


def test_dropout_is_identity_at_inference_and_reproducible_in_training():
    x = np.random.default_rng(0).normal(size=(4, 6, 5))
    layer = Dropout(0.5, seed=3)
    y, tape = layer.forward(x)
    assert y is x or np.array_equal(y, x)
    assert np.array_equal(layer.backward(tape, x), x)

    first, tape = Dropout(0.5, seed=3).forward(x, training=True)
    again, _ = Dropout(0.5, seed=3).forward(x, training=True)
    assert np.array_equal(first, again)
    dropped = first == 0
    assert 0.3 < dropped.mean() < 0.7
    assert np.array_equal(first[~dropped], 2 * x[~dropped])
    dy = np.random.default_rng(1).normal(size=x.shape)
    dx = Dropout(0.5, seed=3).backward(tape, dy)
    assert np.array_equal(dx, np.where(dropped, 0, 2 * dy))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_p_outside_zero_one(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize("pool", [LastStep, MeanPool])
@pytest.mark.parametrize("lengths", [None, np.array([4, 1, 3])])
def test_pooling_backward_matches_finite_differences(pool, lengths):
    x = np.random.default_rng(2).normal(size=(3, 4, 2))
    check_gradients(layer_pass(pool(), lengths=lengths), {}, {}, x)


def test_pooling_reads_only_valid_steps():
    x = np.arange(2 * 4 * 1, dtype=F64).reshape(2, 4, 1)
    lengths = np.array([2, 4])
    last, _ = LastStep().forward(x, lengths=lengths)
    mean, _ = MeanPool().forward(x, lengths=lengths)
    assert last[:, 0].tolist() == [1.0, 7.0]
    assert mean[:, 0].tolist() == [0.5, 5.5]


@pytest.mark.parametrize("pool", [LastStep, MeanPool])
@pytest.mark.parametrize("bad", [[0, 2], [2, 5]])
def test_pooling_rejects_lengths_outside_one_to_t(pool, bad):
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        pool().forward(np.zeros((2, 4, 3)), lengths=np.array(bad))


@pytest.mark.parametrize(
    "layer",
    [
        Dense(3, 2, dtype=F64, seed=1),
        Dense(3, 2, activation=("hard_sigmoid", 0.25, 0.5), seed=1),
        Embedding(9, 4, padding_idx=2, seed=0),
        Embedding(9, 4, mask_zero=True, seed=0),
        Dropout(0.25, seed=7),
        LastStep(),
        LastStep(bidirectional=True),
        MeanPool(),
        Masking(-1.5),
        RepeatLast(),
    ],
    ids=lambda layer: repr(layer),
)
def test_get_config_rebuilds_the_layer(layer):
    import json

    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = type(layer)(**config)
    assert rebuilt.get_config() == layer.get_config()
    for name, value in layer.params.items():
        assert np.array_equal(rebuilt.params[name], value)  # seeded: the same initial weights


# ----------------------------------------------------------------------- lengths read off the input


@pytest.mark.parametrize("options", [{"bidirectional": True}, {"reverse": True}])
@pytest.mark.parametrize("lengths", [None, np.array([4, 1, 3])])
def test_last_step_of_a_reverse_direction_backward_matches_finite_differences(options, lengths):
    x = np.random.default_rng(2).normal(size=(3, 4, 6))
    check_gradients(layer_pass(LastStep(**options), lengths=lengths), {}, {}, x)


def test_last_step_of_each_direction_is_the_bidirectional_final_state():
    lstm = LSTM(2, 3, bidirectional=True, dtype=F64, seed=0)
    reverse = LSTM(2, 3, reverse=True, dtype=F64, seed=0)
    x = np.random.default_rng(3).normal(size=(3, 5, 2))
    lengths = np.array([5, 2, 3])
    y, (h_n, _) = lstm(x, lengths=lengths)
    last, _ = LastStep(bidirectional=True).forward(y, lengths=lengths)
    assert_close("h_n", last, np.concatenate([h_n[0], h_n[1]], axis=1), rtol=0, atol=0)
    y, (h_n, _) = reverse(x, lengths=lengths)
    assert_close("reverse h_n", LastStep(reverse=True).forward(y, lengths=lengths)[0], h_n[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="not both"):
        LastStep(bidirectional=True, reverse=True)
    with pytest.raises(ValueError, match="even number of features, got 3"):
        LastStep(bidirectional=True).forward(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("lengths", [None, np.array([4, 1, 3])])
def test_repeat_last_backward_matches_finite_differences(lengths):
    x = np.random.default_rng(2).normal(size=(3, 4, 2))
    check_gradients(layer_pass(RepeatLast(), lengths=lengths), {}, {}, x)


def test_repeat_last_fills_the_padding_with_the_last_valid_step():
    x = np.arange(2 * 4, dtype=F64).reshape(2, 4, 1)
    y, _ = RepeatLast().forward(x, lengths=[2, 4])
    assert y[:, :, 0].tolist() == [[0, 1, 1, 1], [4, 5, 6, 7]]
    assert np.array_equal(RepeatLast().forward(x)[0], x)


def test_masking_reads_lengths_off_trailing_steps_and_zeroes_them():
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    x[0, 2:] = 5.0
    x[1, 3, 0] = 5.0  # one feature alone is not padding
    layer = Masking(5.0)
    assert layer.lengths_of(x).tolist() == [2, 4, 4]
    y, _ = layer.forward(x)
    assert not y[0, 2:].any() and np.array_equal(y[1:], x[1:]) and np.array_equal(y[0, :2], x[0, :2])
    # explicit lengths: the finite differences move the padding off mask_value
    check_gradients(layer_pass(layer, lengths=[2, 4, 4]), {}, {}, x)


def test_embedding_mask_zero_reads_lengths_off_trailing_zero_ids():
    layer = Embedding(5, 2, mask_zero=True)
    assert layer.lengths_of(np.array([[1, 2, 0], [3, 0, 0], [4, 4, 4]])).tolist() == [2, 1, 3]
    assert Embedding(5, 2).lengths_of(np.array([[1, 0]])) is None
    with pytest.raises(ValueError, match=r"sequence 1 padded at step 1 before its last valid step 2.*padding='post'"):
        layer.lengths_of(np.array([[1, 2, 3], [1, 0, 2]]))
    with pytest.raises(ValueError, match="sequence 1 all padding"):
        layer.lengths_of(np.array([[1, 2], [0, 0]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        layer.lengths_of(np.array([1, 2]))


@pytest.mark.parametrize("first", ["embedding", "masking"])
def test_sequential_reads_lengths_off_the_input_when_none_are_given(first):
    rng = np.random.default_rng(4)
    if first == "embedding":
        x = np.array([[1, 2, 3, 0, 0], [4, 1, 1, 1, 2], [3, 0, 0, 0, 0]])
        layers = [Embedding(5, 3, mask_zero=True, dtype=F64, seed=0)]
    else:
        x = rng.normal(size=(3, 5, 3))
        x[0, 3:], x[2, 1:] = 0.0, 0.0
        layers = [Masking(0.0)]
    model = Sequential([*layers, GRU(3, 4, dtype=F64, seed=1), RepeatLast(), Dense(4, 2, dtype=F64, seed=2)])
    lengths = np.array([3, 5, 1])
    assert model.lengths_of(x).tolist() == lengths.tolist()
    y = model.predict(x)
    assert_close("predict", y, model(x, lengths), rtol=0, atol=0)
    assert_close("padding repeats the last step", y[0, 3:], np.repeat(y[0, 2:3], 2, axis=0), rtol=0, atol=0)
    target = rng.normal(size=y.shape)
    assert model.evaluate(x, target, loss="mse") == model.evaluate(x, target, loss="mse", lengths=lengths)
    assert model.predict(x[:0]).shape == (0, 5, 2)
    check_gradients(model_pass(model, lengths), model.params, model.grads, x, samples=6)


# ----------------------------------------------------------------------- Sequential


def test_sequential_lstm_dense_backward_matches_finite_differences():
    model = Sequential([LSTM(3, 4, num_layers=2, bidirectional=True, dtype=F64, seed=0), Dense(8, 2, dtype=F64, seed=1)])
    x = np.random.default_rng(3).normal(size=(2, 5, 3))
    check_gradients(model_pass(model), model.params, model.grads, x, samples=6)


@pytest.mark.parametrize("pool", [LastStep, MeanPool])
def test_sequential_embedding_gru_pool_with_lengths_matches_finite_differences(pool):
    model = Sequential(
        [
            Embedding(6, 3, padding_idx=0, dtype=F64, seed=0),
            GRU(3, 4, dtype=F64, seed=1),
            pool(),
            Dense(4, 2, dtype=F64, seed=2),
        ]
    )
    ids = np.array([[1, 2, 3, 0, 0], [5, 4, 3, 2, 1], [2, 0, 0, 0, 0]])
    lengths = np.array([3, 5, 1])
    params = {k: v for k, v in model.params.items() if k != "0.weight"}
    params["0.weight"] = model.params["0.weight"][1:]
    grads = dict(model.grads)
    grads["0.weight"] = model.grads["0.weight"][1:]
    check_gradients(model_pass(model, lengths), params, grads, ids, samples=6)


def test_sequential_bidirectional_lstm_last_step_with_lengths_matches_finite_differences():
    model = Sequential([LSTM(2, 3, bidirectional=True, dtype=F64, seed=0), LastStep(), Dense(6, 2, dtype=F64, seed=1)])
    x = np.random.default_rng(4).normal(size=(3, 4, 2))
    check_gradients(model_pass(model, np.array([2, 4, 1])), model.params, model.grads, x, samples=6)


def test_sequential_bidirectional_lengths_give_the_unpadded_result():
    model = Sequential([LSTM(2, 3, bidirectional=True, dtype=F64, seed=0), MeanPool(), Dense(6, 1, dtype=F64, seed=1)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 2))
    padded = x.copy()
    padded[0, 4:] = 99.0  # padding that must not matter
    y = model(padded, lengths=[4, 6])
    assert_close("short sequence", y[0], model(x[:1, :4])[0], rtol=1e-12, atol=1e-12)
    assert_close("full sequence", y[1], model(x[1:])[0], rtol=1e-12, atol=1e-12)


def test_sequential_params_are_the_layers_arrays_keyed_like_pytorch():
    lstm, dense = LSTM(3, 4, seed=0), Dense(4, 1, seed=1)
    model = Sequential([lstm, Dropout(0.1), dense])
    assert list(model.params) == ["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0", "2.weight", "2.bias"]
    assert model.params["0.weight_hh_l0"] is lstm.params["weight_hh_l0"]
    assert model.grads["2.bias"] is dense.grads["bias"]
    kept = dense.params["weight"]
    model.params["2.weight"] = np.full((1, 4), 0.5)
    assert dense.params["weight"] is kept and (kept == 0.5).all()
    with pytest.raises(ValueError, match=r"\(1, 4\).*\(4, 1\)"):
        model.params["2.weight"] = np.zeros((4, 1))
    with pytest.raises(KeyError):
        model.params["1.weight"]


def test_optimizer_on_model_params_updates_the_layers():
    dense = Dense(2, 1, seed=0)
    model = Sequential([dense])
    before = dense.params["weight"].copy()
    model.grads["0.weight"] = np.ones((1, 2))
    lstmcore.optim.SGD(model.params, lr=0.5).step(model.grads)
    assert_close("weight", dense.params["weight"], before - 0.5, rtol=0, atol=1e-7)


def test_sequential_rejects_a_time_major_recurrent_layer():
    with pytest.raises(ValueError, match="batch_first=True"):
        Sequential([GRU(3, 4, batch_first=False)])


def test_sequential_rejects_bad_metadata_and_objects_that_are_not_layers():
    with pytest.raises(TypeError, match="str keys"):
        Sequential([Dense(2, 2)], metadata={1: "a"})
    with pytest.raises(TypeError, match="ndarray"):
        Sequential([Dense(2, 2)], metadata={"mean": np.zeros(2)})
    with pytest.raises(TypeError, match="not an lstmcore layer"):
        Sequential([object()])


def test_predict_in_batches_equals_one_pass():
    model = Sequential([LSTM(2, 3, seed=0), LastStep(), Dense(3, 2, seed=1)])
    x = np.random.default_rng(0).normal(size=(7, 4, 2)).astype(np.float32)
    lengths = np.array([4, 1, 2, 3, 4, 4, 2])
    assert np.array_equal(model.predict(x, batch_size=3, lengths=lengths), model(x, lengths=lengths))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
def test_model_inference_equals_the_inference_forward_without_keeping_tapes(bidirectional):
    # model(x) runs each layer's infer (the LSTM keeps no tape); forward(training=False)
    # keeps tapes. Same expressions, so 1e-12 in float64 (see tests/test_inference.py).
    model = Sequential(
        [Embedding(9, 4, seed=0), LSTM(4, 5, bidirectional=bidirectional, dtype=F64, seed=1), Dropout(0.5),
         GRU(5 * (2 if bidirectional else 1), 3, dtype=F64, seed=2), LastStep(), Dense(3, 2, dtype=F64, seed=3)]
    )  # fmt: skip
    ids = np.random.default_rng(5).integers(0, 9, size=(4, 6))
    lengths = None if bidirectional else np.array([6, 2, 5, 1])
    expected, _ = model.forward(ids, training=False, lengths=lengths)
    assert_close("model(x)", model(ids, lengths=lengths), expected, rtol=1e-12, atol=1e-12)


def test_predict_on_no_sample_names_the_callers_shape_in_an_error():
    model = Sequential([lstmcore.LSTM(7, 8, seed=0), LastStep(), Dense(8, 2, seed=1)])
    with pytest.raises(ValueError, match=r"got \(0, 5, 5\)") as error:
        model.predict(np.zeros((0, 5, 5), np.float32))
    assert "(1, 5, 5)" not in str(error.value)
    assert model.predict(np.zeros((0, 5, 7), np.float32)).shape == (0, 2)
