"""The sides of the inference benchmark (inference.py), on one layer's weights and one input.

- lstmcore: the plain call ``layer(x)`` of ``lstmcore.LSTM`` / ``GRU`` (seed 0, batch first).
- prepared: ``lstmcore.prepare(layer)``, called as the layer is.
- int8, bfloat16: ``lstmcore.quantize(layer, precision)``, called as the layer is (int8
  weights with row scales and activations quantized per row at each step; bfloat16
  weights and activations with float32 sums).
- ort: ONNX Runtime on the graph ``lstmcore.onnx.export`` writes of the layer (y, h_n, c_n
  out), its own InferenceSession per thread count (``ort_options``).
- torch: ``torch.nn.LSTM`` / ``GRU`` holding the layer's parameters (same names and
  gate order), called under ``torch.inference_mode()``.
- torch_int8: that module through ``torch.ao.quantization.quantize_dynamic`` (qint8
  weights, activations quantized per call).

Each side is a callable doing one whole inference and a function giving its outputs as
NumPy arrays [y, h_n(, c_n)]; ``compare`` checks one side's against lstmcore's.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lstmcore

SIDES = ("lstmcore", "prepared", "int8", "bfloat16", "ort", "torch", "torch_int8")
# The reduced-precision sides, each against the float32 side of its own library.
REDUCED = {"int8": "lstmcore", "bfloat16": "lstmcore", "torch_int8": "torch"}
# The float32 sides whose outputs must match lstmcore's before a case is timed.
CHECKED = ("prepared", "ort", "torch")
CHECK_RTOL = 1e-4  # of each output's largest magnitude
OUTPUT_NAMES = ("y", "h_n", "c_n")


@dataclass
class Side:
    call: Callable[[], Any]  # one inference, as its users write it
    outputs: Callable[[Any], list[np.ndarray]]  # call's result -> [y, h_n(, c_n)]


@dataclass
class Libraries:
    """The optional packages, None when absent (or left out with --sides)."""

    torch: Any = None
    ort: Any = None
    onnx: Any = None


def ort_options(ort, threads, spinning=False):
    """ONNX Runtime's settings for ``threads``: that many intra-op threads (the caller's
    thread is one of them), one inter-op thread (the graph runs its nodes in order), and
    no spinning: an idle pool thread sleeps instead of spinning on a core, so that between
    ORT's samples it takes no time from the other sides'."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def make_input(case, seed=1234):
    return np.random.default_rng(seed).standard_normal((case.batch, case.seq_len, case.input_size)).astype(np.float32)


class CaseModels:
    """One case's layer, input and every other library's copy of the layer, built once;
    ``sides(threads)`` gives the callables (ONNX Runtime's session is per thread count)."""

    def __init__(self, case, libraries, ort_spinning=False):
        self.case, self.libraries, self.ort_spinning = case, libraries, ort_spinning
        cls = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}[case.kind]
        self.layer = cls(case.input_size, case.hidden_size, batch_first=True, seed=0)
        self.prepared = lstmcore.prepare(self.layer)
        self.reduced = {precision: lstmcore.quantize(self.layer, precision) for precision in ("int8", "bfloat16")}
        self.x = make_input(case)
        self.onnx_model = _onnx_bytes(self.layer) if libraries.ort is not None else None
        self.torch_module = self.torch_int8 = None
        if libraries.torch is not None:
            self.torch_module, self.torch_int8 = _torch_modules(libraries.torch, case, self.layer.params)

    def sides(self, threads):
        layer, prepared, x = self.layer, self.prepared, self.x
        sides = {
            "lstmcore": Side(lambda: layer(x), _layer_outputs),
            "prepared": Side(lambda: prepared(x), _layer_outputs),
        }
        for precision, quantized in self.reduced.items():
            sides[precision] = Side(lambda quantized=quantized: quantized(x), _layer_outputs)
        ort = self.libraries.ort
        if ort is not None:
            options = ort_options(ort, threads, self.ort_spinning)
            session = ort.InferenceSession(self.onnx_model, sess_options=options, providers=["CPUExecutionProvider"])
            feed = {"x": x}
            sides["ort"] = Side(lambda: session.run(None, feed), list)
        torch = self.libraries.torch
        if torch is not None:
            x_torch = torch.from_numpy(x)  # shares x's memory
            for name, module in (("torch", self.torch_module), ("torch_int8", self.torch_int8)):
                sides[name] = Side(_torch_call(torch, module, x_torch), _torch_outputs)
        return sides


def compare(expected, got, rtol=CHECK_RTOL):
    """(largest error, mismatch): each of ``got``'s arrays against ``expected``'s, the error
    relative to the expected array's largest magnitude; mismatch names the first output
    beyond ``rtol`` (None when all are within it)."""
    if len(got) != len(expected):
        return float("inf"), f"{len(got)} outputs, expected {len(expected)}"
    largest = 0.0
    for name, mine, theirs in zip(OUTPUT_NAMES, got, expected):
        mine, theirs = np.asarray(mine), np.asarray(theirs)
        if mine.shape != theirs.shape:
            return float("inf"), f"{name}: shape {mine.shape}, expected {theirs.shape}"
        error = float(np.max(np.abs(mine.astype(np.float64) - theirs))) / max(float(np.max(np.abs(theirs))), 1e-30)
        largest = max(largest, error)
        if not error <= rtol:  # a NaN is a mismatch too
            return largest, f"{name}: largest error {error:.3g} of its largest magnitude, allowed {rtol:g}"
    return largest, None


def reduced_error(y_reduced, y_float32):
    """Max and mean absolute error of a reduced-precision side's y against its float32 model's."""
    difference = np.abs(np.asarray(y_reduced, dtype=np.float64) - np.asarray(y_float32))
    return {"max_abs": float(difference.max()), "mean_abs": float(difference.mean())}


def _layer_outputs(result):
    y, state = result
    return [y, *(state if isinstance(state, tuple) else (state,))]


def _torch_call(torch, module, x_torch):
    def call():
        with torch.inference_mode():
            return module(x_torch)

    return call


def _torch_outputs(result):
    y, state = result
    return [t.numpy() for t in (y, *(state if isinstance(state, tuple) else (state,)))]


def _onnx_bytes(layer):
    """The layer as lstmcore.onnx.export writes it (inputs x; outputs y, h_n(, c_n))."""
    from lstmcore.onnx import export

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "layer.onnx"
        export(layer, os.fspath(path))
        return path.read_bytes()


def _torch_modules(torch, case, params):
    """torch.nn's layer with ``params``, and its dynamic-int8 quantization."""
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.kind]
    module = cls(case.input_size, case.hidden_size, batch_first=True)
    module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in params.items()})
    module.eval()
    # quantize_dynamic swaps a model's submodules, never the model itself: given the bare
    # nn.LSTM it returns it unchanged (float32). Hence the one-module Sequential around it.
    with warnings.catch_warnings():
        # torch.ao.quantization's notices of its move to torchao, and of quantized tensors' deprecation.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(module), {cls}, dtype=torch.qint8)[0]
    if isinstance(quantized, cls):
        raise RuntimeError(f"quantize_dynamic left the {cls.__name__} in float32")
    return module, quantized
