"""The onnx package, imported when a function of lstmcore.onnx needs it."""

from __future__ import annotations

from types import ModuleType


def require_onnx() -> ModuleType:
    """The onnx module, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("lstmcore.onnx needs the onnx package: pip install 'lstmcore[onnx]'") from error
    return onnx
