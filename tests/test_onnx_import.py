"""``lstmcore.onnx.load``: ONNX graphs of recurrent nodes and their glue, read back.

Three sources of graphs lstmcore's authors did not shape by hand: the ONNX backend test
vectors (test_onnx_vectors.py), PyTorch's ONNX exporter, and lstmcore's own exporter (a
round trip: the loaded layers hold the exported weights bit for bit, and outputs match
both lstmcore and ONNX Runtime). Hostile or unsupported files are an OnnxImportError
naming what is wrong. Tolerance 1e-5, float32 throughout (test_onnx_export.py says why).
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmcore
from _compare import assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import lstmcore.onnx  # noqa: E402  (after the importorskip above)

TOL = 1e-5


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


ROUND_TRIPS = {
    "lstm-peephole-coupled-bidirectional": lambda: lstmcore.LSTM(
        4, 6, 2, peephole=True, coupled=True, bidirectional=True, seed=1
    ),
    "lstm-activations-clip-time-major": lambda: lstmcore.LSTM(
        4, 6, gate_activation=("hard_sigmoid", 0.25, 0.5), activation="softsign", clip=1.0, batch_first=False, seed=2
    ),
    "gru-reset-before-reverse-no-bias": lambda: lstmcore.GRU(4, 5, reset_after=False, reverse=True, bias=False, seed=3),
    "rnn-relu-stacked": lambda: lstmcore.RNN(4, 7, 2, nonlinearity="relu", seed=4),
}


@pytest.mark.parametrize("make", list(ROUND_TRIPS.values()), ids=list(ROUND_TRIPS))
def test_an_exported_layer_loads_with_its_weights_and_outputs(make, tmp_path):
    layer = make()
    path = tmp_path / "layer.onnx"
    lstmcore.onnx.export(layer, path, lengths=True, initial_state=True)
    loaded = lstmcore.onnx.load(path)
    assert len(loaded.layers) == layer.num_layers and loaded.lengths_input == "lengths"
    for index, part in enumerate(loaded.layers):
        assert type(part) is type(layer) and part.num_directions == layer.num_directions
        for name, value in part.params.items():
            original = layer.params[name.replace("_l0", f"_l{index}")]
            assert np.array_equal(value, original), name
    rng = np.random.default_rng(0)
    batch, steps = 3, 6
    shape = (batch, steps) if layer.batch_first else (steps, batch)
    x = rng.normal(size=shape + (layer.input_size,)).astype(np.float32)
    count = layer.num_layers * layer.num_directions
    sizes = [layer.output_size, layer.hidden_size] if isinstance(layer, lstmcore.LSTM) else [layer.hidden_size]
    feeds = {"x": x, "lengths": np.array([6, 2, 4])}
    feeds.update({name: rng.normal(size=(count, batch, s)).astype(np.float32) for name, s in zip(["h0", "c0"], sizes)})
    got = loaded.run(feeds)
    expected = session(path).run(None, feeds)
    for name, g, e in zip(("y", "h_n", "c_n"), got, expected):
        assert_close(name, g, e, TOL, TOL)


def test_an_exported_model_predicts_as_the_model_did(tmp_path):
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(12, 4, seed=0),
            lstmcore.GRU(4, 6, bidirectional=True, seed=1),
            lstmcore.LSTM(12, 5, seed=2),
            lstmcore.LastStep(),
            lstmcore.Dense(5, 4, activation="softsign", seed=3),
            lstmcore.Dense(4, 3, seed=4),
        ]
    )
    lstmcore.onnx.export(model, tmp_path / "model.onnx", lengths=True, softmax=True)
    loaded = lstmcore.onnx.load(tmp_path / "model.onnx")
    ids = np.random.default_rng(1).integers(0, 12, size=(4, 7))
    lengths = np.array([7, 1, 3, 5])
    logits = model.predict(ids, lengths=lengths)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert_close("y", loaded.predict(ids, lengths=lengths), probabilities, TOL, TOL)
    with pytest.raises(ValueError, match="expected lengths"):
        loaded.predict(ids)


TORCH_NETS = {
    "lstm-2-layers-bidirectional": ("LSTM", dict(num_layers=2, bidirectional=True)),
    "gru": ("GRU", {}),
    "rnn-relu-no-bias": ("RNN", dict(nonlinearity="relu", bias=False)),
}


def torch_exported_net(torch, kind, options, path):
    """A PyTorch classifier (a recurrent module, its last step, Linear, relu, softmax) in eval
    mode, and its graph written to ``path`` by the TorchScript exporter, which builds the
    zero initial states around each recurrent node with Shape/Gather/ConstantOfShape glue."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(4, 6, batch_first=True, **options)
            self.head = torch.nn.Linear(6 * (2 if options.get("bidirectional") else 1), 3)

        def forward(self, x):
            y, _ = self.rnn(x)
            return torch.softmax(torch.relu(self.head(y[:, -1])), dim=-1)

    net = Net().eval()
    torch.onnx.export(
        net, (torch.randn(3, 7, 4),), str(path), dynamo=False, input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "b", 1: "t"}},
    )  # fmt: skip
    return net


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation and tracer warnings
@pytest.mark.parametrize("kind, options", list(TORCH_NETS.values()), ids=list(TORCH_NETS))
def test_a_graph_written_by_torch_onnx_export_loads_and_matches_torch(kind, options, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch_exported_net(torch, kind, options, tmp_path / "torch.onnx")
    loaded = lstmcore.onnx.load(tmp_path / "torch.onnx")
    assert loaded.layers, "the recurrent nodes became lstmcore layers"
    for batch, steps in ((3, 7), (2, 4)):
        x = torch.randn(batch, steps, 4)
        with torch.no_grad():
            expected = net(x).numpy()
        assert_close("y", loaded.predict(x.numpy()), expected, TOL, TOL)


def _graph(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _lstm_parts(hidden=3, inputs=2):
    rng = np.random.default_rng(2)
    return [
        numpy_helper.from_array(rng.normal(size=(1, 4 * hidden, inputs)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(1, 4 * hidden, hidden)).astype(np.float32), "R"),
    ]


def _save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _hostile(tmp_path, case):
    if case == "not onnx":
        return tmp_path.joinpath("bad.onnx").write_bytes(b"\x00\xffnot a protobuf") and tmp_path / "bad.onnx"
    lstm = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=3)
    if case == "unknown operator":
        node = helper.make_node("Loop", ["x"], ["y"])
        return _save(_graph([node], [_float("x", [2])], [_float("y", None)]), tmp_path)
    if case == "other domain":
        node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
        return _save(_graph([node], [_float("x", [2])], [_float("y", None)]), tmp_path)
    if case == "dangling input":
        node = helper.make_node("Relu", ["nowhere"], ["y"])
        return _save(_graph([node], [_float("x", [2])], [_float("y", None)]), tmp_path)
    if case == "wrong weight shape":
        bad = numpy_helper.from_array(np.zeros((1, 7, 2), np.float32), "W")
        return _save(_graph([lstm], [_float("x", [4, 1, 2])], [_float("y", None)], [bad, _lstm_parts()[1]]), tmp_path)
    if case == "unknown attribute":
        node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=3, frobnicate=1)
        return _save(_graph([node], [_float("x", [4, 1, 2])], [_float("y", None)], _lstm_parts()), tmp_path)
    if case == "unsupported activation":
        node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=3, activations=["Elu", "Tanh", "Tanh"])
        return _save(_graph([node], [_float("x", [4, 1, 2])], [_float("y", None)], _lstm_parts()), tmp_path)
    if case == "external data":
        tensor = numpy_helper.from_array(np.zeros((1, 12, 2), np.float32), "W")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "/etc/passwd"
        return _save(_graph([lstm], [_float("x", [4, 1, 2])], [_float("y", None)], [tensor, _lstm_parts()[1]]), tmp_path)
    if case == "data shorter than its shape":
        tensor = numpy_helper.from_array(np.zeros((1, 12, 2), np.float32), "W")
        tensor.raw_data = tensor.raw_data[:10]
        return _save(_graph([lstm], [_float("x", [4, 1, 2])], [_float("y", None)], [tensor, _lstm_parts()[1]]), tmp_path)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, message",
    [
        ("not onnx", "is not an ONNX model"),
        ("unknown operator", "operator Loop is not supported"),
        ("other domain", "domain 'com.example'"),
        ("dangling input", r"reads \['nowhere'\]"),
        ("wrong weight shape", "expected W"),
        ("unknown attribute", "frobnicate"),
        ("unsupported activation", "activation 'Elu'"),
        ("external data", "external file"),
        ("data shorter than its shape", "does not match its declared type and shape"),
    ],
)
def test_hostile_or_unsupported_files_are_refused_naming_what_is_wrong(case, message, tmp_path):
    path = _hostile(tmp_path, case)
    with pytest.raises(lstmcore.onnx.OnnxImportError, match=message):
        lstmcore.onnx.load(path)


def test_a_missing_file_is_the_os_error():
    with pytest.raises(FileNotFoundError):
        lstmcore.onnx.load("/nonexistent/model.onnx")


def test_an_empty_file_is_not_an_onnx_model(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(lstmcore.onnx.OnnxImportError, match="names no IR version or opset"):
        lstmcore.onnx.load(tmp_path / "empty.onnx")


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's deprecation and tracer warnings
@pytest.mark.parametrize("kind, options", list(TORCH_NETS.values()), ids=list(TORCH_NETS))
def test_a_torch_exported_graph_becomes_a_sequential_with_torch_s_outputs(kind, options, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    net = torch_exported_net(torch, kind, options, tmp_path / "torch.onnx")
    model = lstmcore.onnx.load(tmp_path / "torch.onnx").to_sequential()
    assert isinstance(model, lstmcore.Sequential)
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        expected = net(x).numpy()
    assert_close("y", model.predict(x.numpy()), expected, TOL, TOL)
    model.save(tmp_path / "m.npz")  # a model lstmcore can keep and train
    assert_close("y", lstmcore.load(tmp_path / "m.npz").predict(x.numpy()), expected, TOL, TOL)


def test_lstmcore_s_exports_become_the_same_sequential(tmp_path):
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(12, 4, seed=0),
            lstmcore.GRU(4, 6, bidirectional=True, seed=1),
            lstmcore.LSTM(12, 5, reverse=True, seed=2),
            lstmcore.LastStep(reverse=True),
            lstmcore.Dense(5, 4, activation="softsign", seed=3),
            lstmcore.Dense(4, 3),
        ]
    )
    lstmcore.onnx.export(model, tmp_path / "m.onnx")
    back = lstmcore.onnx.load(tmp_path / "m.onnx").to_sequential()
    ids = np.random.default_rng(3).integers(0, 12, size=(3, 6))
    assert np.array_equal(back.predict(ids), model.predict(ids))
    for name, value in model.params.items():
        assert np.array_equal(back.params[name], value), name


def test_a_graph_that_is_not_one_chain_of_layers_is_refused_naming_the_node(tmp_path):
    model = lstmcore.Sequential([lstmcore.LSTM(4, 6, seed=1), lstmcore.MeanPool(), lstmcore.Dense(6, 2)])
    lstmcore.onnx.export(model, tmp_path / "m.onnx", lengths=True)  # the masked mean's glue
    with pytest.raises(lstmcore.onnx.OnnxImportError, match=r"node \d+ \("):
        lstmcore.onnx.load(tmp_path / "m.onnx").to_sequential()
