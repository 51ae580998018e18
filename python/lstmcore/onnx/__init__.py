"""ONNX files in and out: ``export`` writes an lstmcore model or recurrent layer as an ONNX
graph that ONNX Runtime runs; ``load`` reads an ONNX graph of recurrent nodes and their
usual glue back, its recurrent nodes as lstmcore layers (docs/onnx.md).

Needs the ``onnx`` extra (``pip install lstmcore[onnx]``); ``import lstmcore`` does not
import onnx, and this module imports it only when one of its functions is called.
"""

from lstmcore.onnx._export import export
from lstmcore.onnx._load import OnnxImportError, OnnxModel, load

__all__ = ["export", "load", "OnnxModel", "OnnxImportError"]
