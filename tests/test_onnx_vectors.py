"""The ONNX backend test vectors of the LSTM, GRU and RNN operators (the ``model.onnx`` and
``test_data_set_0/*.pb`` files shipped in the onnx package), reproduced through lstmcore's
layers: the node's attributes become layer options, its W, R, B, P inputs become
parameters in lstmcore's gate order, and lstmcore's outputs must equal ONNX's.

Twice: through this test's own small translation from an ONNX node to a layer (the
layers' semantics, checked apart from the importer), and through ``lstmcore.onnx.load``
(the importer, on files it did not write). Both read the files with onnx's protobuf
loader, which executes nothing.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import lstmcore
from _compare import assert_close

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402  (after the importorskip above)

NODE_TESTS = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
OPERATORS = ("LSTM", "GRU", "RNN")
# ONNX stacks the gate blocks in its own order; lstmcore in PyTorch's. Per operator, the
# ONNX block index of each lstmcore block: LSTM i, o, f, c -> i, f, g(c), o; GRU z, r, h ->
# r, z, n; RNN one block.
BLOCK_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}
# ONNX's P rows p_i, p_o, p_f -> lstmcore's weight_peephole rows p_i, p_f, p_o.
PEEPHOLE_ORDER = (0, 2, 1)
LAYERS = {"LSTM": lstmcore.LSTM, "GRU": lstmcore.GRU, "RNN": lstmcore.RNN}


def _cases():
    if not os.path.isdir(NODE_TESTS):
        return []
    found = []
    for name in sorted(os.listdir(NODE_TESTS)):
        model = os.path.join(NODE_TESTS, name, "model.onnx")
        if os.path.exists(model) and onnx.load(model).graph.node[0].op_type in OPERATORS:
            found.append(name)
    return found


CASES = _cases()


def _tensors(folder, prefix, names):
    files = sorted((f for f in os.listdir(folder) if f.startswith(prefix)), key=lambda f: int(f[len(prefix) : -len(".pb")]))
    arrays = []
    for file in files:
        tensor = onnx.TensorProto()
        with open(os.path.join(folder, file), "rb") as handle:
            tensor.ParseFromString(handle.read())
        arrays.append(numpy_helper.to_array(tensor))
    return dict(zip(names, arrays))


def _blocks(array, operator, hidden):
    """Rows of W, R or a bias in ONNX's gate order, in lstmcore's."""
    return np.concatenate([array[k * hidden : (k + 1) * hidden] for k in BLOCK_ORDER[operator]])


def _layer_and_call(node, inputs):
    """The lstmcore layer the node describes, with its parameters, and the call's arguments."""
    operator = node.op_type
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    unsupported = set(attributes) - {"hidden_size", "layout", "direction", "linear_before_reset"}
    assert not unsupported, f"attributes this test does not translate: {sorted(unsupported)}"
    hidden = attributes["hidden_size"]
    direction = attributes.get("direction", b"forward").decode()
    batch_first = attributes.get("layout", 0) == 1
    weights, recurrent = inputs["W"], inputs["R"]
    options = {
        "bias": "B" in inputs,
        "bidirectional": direction == "bidirectional",
        "reverse": direction == "reverse",
        "batch_first": batch_first,
    }
    if operator == "GRU":
        options["reset_after"] = attributes.get("linear_before_reset", 0) == 1
    if operator == "LSTM" and "P" in inputs:
        options["peephole"] = True
    layer = LAYERS[operator](weights.shape[2], hidden, dtype=np.float32, **options)
    for d in range(weights.shape[0]):
        suffix = "_l0" + ("_reverse" if d == 1 else "")
        layer.params["weight_ih" + suffix][...] = _blocks(weights[d], operator, hidden)
        layer.params["weight_hh" + suffix][...] = _blocks(recurrent[d], operator, hidden)
        if "B" in inputs:
            rows = inputs["B"].shape[1] // 2
            layer.params["bias_ih" + suffix][...] = _blocks(inputs["B"][d, :rows], operator, hidden)
            layer.params["bias_hh" + suffix][...] = _blocks(inputs["B"][d, rows:], operator, hidden)
        if "P" in inputs:
            rows = inputs["P"][d].reshape(3, hidden)
            layer.params["weight_peephole" + suffix][...] = rows[list(PEEPHOLE_ORDER)]
    state = None
    if "initial_h" in inputs:
        # ONNX's states are (D, B, H), or (B, D, H) with layout 1; lstmcore's (D, B, H).
        parts = [inputs[name] for name in ("initial_h", "initial_c") if name in inputs]
        parts = [np.swapaxes(p, 0, 1) if batch_first else p for p in parts]
        state = tuple(parts) if operator == "LSTM" else parts[0]
    lengths = inputs.get("sequence_lens")
    return layer, state, lengths


@pytest.mark.parametrize("case", CASES)
def test_an_onnx_test_vector_is_reproduced(case):
    folder = os.path.join(NODE_TESTS, case)
    model = onnx.load(os.path.join(folder, "model.onnx"))
    node = model.graph.node[0]
    inputs = _tensors(os.path.join(folder, "test_data_set_0"), "input_", [n for n in node.input if n])
    expected = _tensors(os.path.join(folder, "test_data_set_0"), "output_", [o.name for o in model.graph.output])
    layer, state, lengths = _layer_and_call(node, inputs)
    y, final = layer(inputs["X"], state, lengths=lengths)
    h_n = final[0] if isinstance(final, tuple) else final
    outputs = {o: name for o, name in zip(("Y", "Y_h", "Y_c"), node.output) if name}
    directions = layer.num_directions
    if "Y" in outputs and outputs["Y"] in expected:
        # ONNX's Y: (T, D, B, H), or (B, T, D, H) with layout 1; lstmcore's y (.., D*H).
        onnx_y = expected[outputs["Y"]]
        if layer.batch_first:
            got = y.reshape(y.shape[0], y.shape[1], directions, -1)
        else:
            got = y.reshape(y.shape[0], y.shape[1], directions, -1).transpose(0, 2, 1, 3)
        assert_close("Y", got, onnx_y, 1e-5, 1e-6)
    if "Y_h" in outputs and outputs["Y_h"] in expected:
        onnx_h = expected[outputs["Y_h"]]
        got = np.swapaxes(h_n, 0, 1) if layer.batch_first else h_n
        assert_close("Y_h", got, onnx_h, 1e-5, 1e-6)


@pytest.mark.parametrize("case", CASES)
def test_an_onnx_test_vector_loads_and_runs_through_lstmcore_onnx_load(case):
    import lstmcore.onnx

    folder = os.path.join(NODE_TESTS, case)
    model = lstmcore.onnx.load(os.path.join(folder, "model.onnx"))
    data = os.path.join(folder, "test_data_set_0")
    inputs = _tensors(data, "input_", model.input_names)
    expected = _tensors(data, "output_", model.output_names)
    assert set(inputs) == set(model.input_names) and expected
    for name, got in zip(model.output_names, model.run(inputs)):
        if name in expected:
            assert_close(name, got, expected[name], 1e-5, 1e-6)


def test_the_onnx_package_ships_vectors_of_every_operator():
    # A newer onnx that moved its vectors would otherwise leave the test above with no case.
    operators = {onnx.load(os.path.join(NODE_TESTS, c, "model.onnx")).graph.node[0].op_type for c in CASES}
    assert operators == set(OPERATORS), CASES
