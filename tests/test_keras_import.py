"""from_keras: Keras 3 .keras files as lstmcore models.

Models built by Keras itself (torch backend, tiny, every weight random so that no bias
or gate block hides at zero) are saved, converted, and their outputs compared with
Keras's own, float32, at atol 1e-5; with masks on padded batches. Options lstmcore cannot
run the same way are refused naming the layer and the option. Hostile files, made with
h5py alone, are refused quickly with a ModelFileError.
"""

import json
import os
import time
import zipfile

import numpy as np
import pytest

import lstmcore
from lstmcore import ModelFileError

h5py = pytest.importorskip("h5py")

ATOL = 1e-5


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def converted(model, tmp_path, **options):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return lstmcore.from_keras(path, **options)


def keras_outputs(keras, model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def assert_same_outputs(keras, model, x, tmp_path, **options):
    ours = converted(model, tmp_path, **options)
    expected, got = keras_outputs(keras, model, x), ours.predict(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    return ours


def sequences(batch=3, steps=5, features=3, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(np.float32)


# Each one a Sequential of recurrent layers on (B, T, 3) floats.
RECURRENT_MODELS = {
    "lstm sequences": lambda L: [L.LSTM(4, return_sequences=True)],
    "lstm last": lambda L: [L.LSTM(4, dropout=0.2, recurrent_dropout=0.1)],  # dropout: training only
    "lstm options": lambda L: [L.LSTM(4, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False)],
    "gru reset after": lambda L: [L.GRU(4, return_sequences=True), L.GRU(3)],
    "gru reset before": lambda L: [L.GRU(4, reset_after=False, return_sequences=True), L.GRU(2, reset_after=False)],
    "gru options": lambda L: [L.GRU(4, activation="softsign", recurrent_activation="hard_sigmoid", use_bias=False)],
    "simple rnn relu": lambda L: [L.SimpleRNN(4, activation="relu", return_sequences=True)],
    "simple rnn tanh": lambda L: [L.SimpleRNN(4)],
    "bidirectional lstm": lambda L: [L.Bidirectional(L.LSTM(3, return_sequences=True)), L.Bidirectional(L.LSTM(2))],
    "bidirectional gru": lambda L: [L.Bidirectional(L.GRU(3, reset_after=False))],
    "bidirectional rnn": lambda L: [L.Bidirectional(L.SimpleRNN(3, return_sequences=True))],
    "go backwards": lambda L: [L.LSTM(3, go_backwards=True)],
    "stacked with dense": lambda L: [L.LSTM(4, return_sequences=True), L.Dropout(0.3), L.Dense(2), L.GRU(3), L.Dense(2)],
}


@pytest.mark.parametrize("name", list(RECURRENT_MODELS))
def test_recurrent_models_give_keras_outputs(keras, tmp_path, name):
    layers = RECURRENT_MODELS[name](keras.layers)
    model = randomized(keras.Sequential([keras.Input((None, 3)), *layers], name=name.replace(" ", "_")))
    assert_same_outputs(keras, model, sequences(), tmp_path)


def test_dense_activations_give_keras_outputs(keras, tmp_path):
    L = keras.layers
    names = ["linear", "relu", "sigmoid", "tanh", "softsign", "hard_sigmoid", "softmax"]
    layers = [L.Dense(5, activation=name, use_bias=index % 2 == 0) for index, name in enumerate(names)]
    model = randomized(keras.Sequential([keras.Input((4,)), *layers]))
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32) * 3
    ours = assert_same_outputs(keras, model, x, tmp_path)
    assert [layer.activation for layer in ours.layers] == ["linear", "relu", "sigmoid", "tanh", "softsign"] + [
        ("hard_sigmoid", 1 / 6, 0.5),
        "softmax",
    ]


def test_float64_layers_stay_float64(keras, tmp_path):
    model = randomized(keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(3, dtype="float64")]))
    ours = converted(model, tmp_path)
    assert ours.layers[0].dtype == np.float64
    x = sequences().astype(np.float64)
    np.testing.assert_allclose(ours.predict(x), keras_outputs(keras, model, x), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------- masks and padded batches

IDS = np.array([[3, 1, 4, 1, 5, 0, 0], [2, 7, 0, 0, 0, 0, 0], [6, 5, 3, 5, 8, 9, 7], [9, 0, 0, 0, 0, 0, 0]])


def test_embedding_mask_zero_reads_lengths_off_the_ids(keras, tmp_path):
    L = keras.layers
    layers = [L.Embedding(10, 3, mask_zero=True), L.LSTM(4, return_sequences=True), L.Bidirectional(L.GRU(3)), L.Dense(2)]
    model = randomized(keras.Sequential([keras.Input((None,), dtype="int32"), *layers]))
    ours = assert_same_outputs(keras, model, IDS, tmp_path)
    assert ours.lengths_of(IDS).tolist() == [5, 2, 7, 1]
    ours.save(tmp_path / "converted.npz")  # an lstmcore model file like any other
    np.testing.assert_array_equal(lstmcore.load(tmp_path / "converted.npz").predict(IDS), ours.predict(IDS))


def test_padded_steps_repeat_the_last_output_as_keras_or_are_zero(keras, tmp_path):
    L = keras.layers
    layers = [L.Embedding(10, 3, mask_zero=True), L.SimpleRNN(4, return_sequences=True), L.LSTM(3, return_sequences=True)]
    model = randomized(keras.Sequential([keras.Input((None,), dtype="int32"), *layers], name="padded"))
    expected = keras_outputs(keras, model, IDS)
    assert np.array_equal(expected[1, 2:], np.repeat(expected[1, 1:2], 5, axis=0))  # Keras repeats the last output
    assert_same_outputs(keras, model, IDS, tmp_path)
    zeros = converted(model, tmp_path, padded_steps="zeros").predict(IDS)
    valid = IDS != 0
    np.testing.assert_allclose(zeros[valid], expected[valid], rtol=0, atol=ATOL)
    assert not zeros[~valid].any()


def test_bidirectional_outputs_at_padded_steps_are_zero_as_in_keras(keras, tmp_path):
    L = keras.layers
    layers = [L.Embedding(10, 2, mask_zero=True), L.Bidirectional(L.LSTM(3, return_sequences=True))]
    model = randomized(keras.Sequential([keras.Input((None,), dtype="int32"), *layers]))
    assert not keras_outputs(keras, model, IDS)[IDS == 0].any()
    assert_same_outputs(keras, model, IDS, tmp_path)


def test_masking_in_a_functional_chain(keras, tmp_path):
    L = keras.layers
    inputs = keras.Input((None, 3))
    hidden = L.Masking(-1.0)(inputs)
    hidden = L.GRU(4, return_sequences=True)(hidden)
    hidden = L.Dropout(0.5)(hidden)
    hidden = L.LSTM(3, go_backwards=True)(hidden)
    model = randomized(keras.Model(inputs, L.Dense(2, activation="softmax")(hidden)))
    x = sequences(batch=4, steps=6)
    x[0, 4:], x[2, 1:] = -1.0, -1.0
    ours = assert_same_outputs(keras, model, x, tmp_path)
    assert ours.lengths_of(x).tolist() == [4, 6, 1, 6]
    assert ours.metadata["keras"]["keras_version"] == keras.__version__


def test_padding_before_a_valid_step_is_refused_where_keras_would_skip_it(keras, tmp_path):
    L = keras.layers
    model = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(10, 2, mask_zero=True), L.LSTM(2)])
    ours = converted(model, tmp_path)
    with pytest.raises(ValueError, match=r"sequence 0 padded at step 0 before its last valid step 3.*padding='post'"):
        ours.predict(np.array([[0, 0, 4, 5]]))  # pad_sequences' default padding="pre"
    with pytest.raises(ValueError, match="sequence 1 all padding"):
        ours.predict(np.array([[1, 2], [0, 0]]))


# ----------------------------------------------------------------------- refusals


def _refused(keras, tmp_path, model, message):
    path = tmp_path / "refused.keras"
    model.save(path)
    with pytest.raises(ValueError, match=message) as caught:
        lstmcore.from_keras(path)
    assert not isinstance(caught.value, ModelFileError)  # valid Keras, not a damaged file


def test_unsupported_layers_and_options_are_refused_naming_layer_and_option(keras, tmp_path):
    L = keras.layers
    cases = [
        ([L.Conv1D(2, 2, name="conv")], r"Keras layer 'conv' \(Conv1D\): a layer from_keras does not convert"),
        ([L.Bidirectional(L.LSTM(2), merge_mode="sum", name="bi")], r"'bi' \(Bidirectional\): merge_mode='sum'"),
        ([L.SimpleRNN(2, activation="sigmoid", name="r")], r"'r' \(SimpleRNN\): activation='sigmoid'.*tanh or relu"),
        ([L.LSTM(2, name="l"), L.Dense(2, activation="gelu", name="d")], r"'d' \(Dense\): activation='gelu'"),
        ([L.LSTM(2, go_backwards=True, return_sequences=True, name="b")], r"'b' \(LSTM\): go_backwards=True"),
        ([L.Dropout(0.5, noise_shape=(None, 1, 3), name="n")], r"'n' \(Dropout\): noise_shape="),
        ([L.LSTM(2, return_sequences=True), L.Masking(name="m")], r"'m' \(Masking\) comes after another layer"),
        (
            [L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, activation="relu", go_backwards=True), name="two")],
            r"'two' \(Bidirectional\): backward_layer=.*differ from the forward layer's",
        ),
    ]
    for layers, message in cases:
        _refused(keras, tmp_path, keras.Sequential([keras.Input((None, 3)), *layers]), message)
    stateful = keras.Sequential([keras.Input(batch_shape=(2, 4, 3)), L.GRU(2, stateful=True, name="s")])
    _refused(keras, tmp_path, stateful, r"'s' \(GRU\): stateful=True is not supported")
    inputs = keras.Input((None, 3))
    output, _, _ = L.LSTM(2, return_state=True, name="st")(inputs)
    _refused(keras, tmp_path, keras.Model(inputs, output), r"'st' \(LSTM\): return_state=True is not supported")
    branch = L.Add()([L.Dense(3, name="left")(inputs), L.Dense(3)(inputs)])
    _refused(keras, tmp_path, keras.Model(inputs, branch), r"'add' \(Add\) takes 2 inputs")


# ----------------------------------------------------------------------- hostile files (h5py alone)


def keras_like_config(units=3, features=2):
    """What Keras writes for Sequential([Input((None, features)), LSTM(units), Dense(1)]), trimmed."""
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}
    layers = [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, None, features], "dtype": "float32", "name": "in"}},
        {"class_name": "LSTM", "config": {"name": "lstm", "dtype": policy, "units": units, "return_sequences": False}},
        {"class_name": "Dense", "config": {"name": "dense", "dtype": policy, "units": 1, "activation": "linear"}},
    ]
    return {"class_name": "Sequential", "config": {"name": "tiny", "layers": layers}}


def write_h5(path, datasets, change=None):
    with h5py.File(path, "w") as file:
        for name, value in datasets.items():
            file.create_dataset(name, data=value)
        if change is not None:
            change(file)


def lstm_datasets(units=3, features=2):
    rng = np.random.default_rng(0)
    return {
        "layers/lstm/cell/vars/0": rng.normal(size=(features, 4 * units)).astype(np.float32),
        "layers/lstm/cell/vars/1": rng.normal(size=(units, 4 * units)).astype(np.float32),
        "layers/lstm/cell/vars/2": rng.normal(size=(4 * units,)).astype(np.float32),
        "layers/dense/vars/0": rng.normal(size=(units, 1)).astype(np.float32),
        "layers/dense/vars/1": rng.normal(size=(1,)).astype(np.float32),
    }


def write_keras_like(path, config=None, datasets=None, change=None, members=None):
    weights = path.with_suffix(".h5")
    write_h5(weights, lstm_datasets() if datasets is None else datasets, change)
    parts = {"config.json": json.dumps(keras_like_config() if config is None else config), "model.weights.h5": None}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in (parts if members is None else members).items():
            archive.writestr(name, weights.read_bytes() if data is None else data)
    return path


def refused_file(path, message, **options):
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=message) as caught:
        lstmcore.from_keras(path, **options)
    assert time.perf_counter() - start < 2, "refusals are quick"
    assert str(path) in str(caught.value) and len(str(caught.value)) < 1000


def test_a_keras_like_file_made_by_hand_converts(tmp_path):
    model = lstmcore.from_keras(write_keras_like(tmp_path / "ok.keras"))
    weights = lstm_datasets()
    np.testing.assert_array_equal(model.params["0.weight_ih_l0"], weights["layers/lstm/cell/vars/0"].T)
    np.testing.assert_array_equal(model.params["0.bias_ih_l0"], weights["layers/lstm/cell/vars/2"])
    assert not model.params["0.bias_hh_l0"].any()
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "LastStep", "Dense"]
    assert model.predict(np.zeros((2, 4, 2), np.float32)).shape == (2, 1)
    with pytest.raises(ValueError, match="padded_steps"):
        lstmcore.from_keras(tmp_path / "ok.keras", padded_steps="last")


def test_files_that_are_not_keras_models_are_clear_errors(tmp_path):
    (tmp_path / "text.keras").write_text("not a zip")
    refused_file(tmp_path / "text.keras", "not a Keras model file")
    refused_file(write_keras_like(tmp_path / "bare.keras", members={"model.weights.h5": None}), "a zip without config.json")
    members = {"config.json": "{", "model.weights.h5": None}
    refused_file(write_keras_like(tmp_path / "json.keras", members=members), "config.json is not valid JSON")
    members = {"config.json": "[" * 100 + "]" * 100, "model.weights.h5": None}
    refused_file(write_keras_like(tmp_path / "deep.keras", members=members), "config.json nests 100 levels deep")
    members = {"config.json": json.dumps(keras_like_config()), "model.weights.h5": b"not hdf5"}
    refused_file(write_keras_like(tmp_path / "h5.keras", members=members), "model.weights.h5 is not an HDF5 file")
    config = keras_like_config()
    config["class_name"] = "Sequential"
    config["config"]["layers"][1]["config"]["units"] = "3"
    refused_file(write_keras_like(tmp_path / "units.keras", config=config), r"'lstm' \(LSTM\): expected units as an integer")


def test_a_config_that_lies_about_the_weights_shapes_is_refused(tmp_path):
    lying = write_keras_like(tmp_path / "lying.keras", config=keras_like_config(units=4))
    refused_file(lying, r"expected layers/lstm/cell/vars/0 \(Keras layer 'lstm' \(LSTM\)\) of shape \(2, 16\).*got \(2, 12\)")
    datasets = lstm_datasets()
    del datasets["layers/lstm/cell/vars/2"]
    refused_file(write_keras_like(tmp_path / "few.keras", datasets=datasets), "expected 3 variables of .* got 2")
    datasets = lstm_datasets()
    datasets["layers/lstm/cell/vars/2"] = np.zeros(12, np.int32)
    refused_file(write_keras_like(tmp_path / "ints.keras", datasets=datasets), "expected .*vars/2 .* as floats, got int32")


def test_huge_declared_sizes_are_refused_before_anything_is_allocated(tmp_path):
    huge = write_keras_like(tmp_path / "huge.keras", config=keras_like_config(units=200_000))
    refused_file(huge, r"the config's layers hold \d+ bytes of weights; a model.weights.h5 of \d+ bytes")
    # a dataset declared huge but never written (HDF5's fill value costs no bytes)
    config = keras_like_config(units=20_000)
    datasets = lstm_datasets()
    del datasets["layers/lstm/cell/vars/1"]

    def declare(file):
        file.create_dataset("layers/lstm/cell/vars/1", shape=(20_000, 80_000), dtype="f4")

    refused_file(
        write_keras_like(tmp_path / "fill.keras", config=config, datasets=datasets, change=declare), "bytes of weights"
    )


def test_links_out_of_the_weights_file_are_refused(tmp_path):
    outside = tmp_path / "outside.h5"
    write_h5(outside, {"secret": np.arange(12, dtype=np.float32)})
    datasets = lstm_datasets()
    del datasets["layers/lstm/cell/vars/2"]

    def external_link(file):
        file["layers/lstm/cell/vars/2"] = h5py.ExternalLink(str(outside), "secret")

    def soft_link(file):
        file.create_dataset("elsewhere", data=np.zeros(12, np.float32))
        file["layers/lstm/cell/vars/2"] = h5py.SoftLink("/elsewhere")

    def raw_file(file):
        (tmp_path / "raw.bin").write_bytes(np.arange(12, dtype=np.float32).tobytes())
        file.create_dataset("layers/lstm/cell/vars/2", shape=(12,), dtype="f4", external=[(str(tmp_path / "raw.bin"), 0, 48)])

    refused_file(write_keras_like(tmp_path / "ext.keras", datasets=datasets, change=external_link), "ExternalLink")
    refused_file(write_keras_like(tmp_path / "soft.keras", datasets=datasets, change=soft_link), "SoftLink")
    refused_file(write_keras_like(tmp_path / "raw.keras", datasets=datasets, change=raw_file), "outside the file")


def test_a_zip_member_claiming_more_than_the_file_can_hold_is_refused(tmp_path):
    path = write_keras_like(tmp_path / "bomb.keras", members={"config.json": " " * 3_000_000, "model.weights.h5": None})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", " " * 50_000_000)
        archive.writestr("model.weights.h5", b"")
    refused_file(path, "a zip bomb")
