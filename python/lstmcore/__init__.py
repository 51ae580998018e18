"""lstmcore: fast LSTM, GRU and RNN training and inference on CPUs, from NumPy."""

import os as _os
import sys as _sys

# lstmcore.onnx and lstmcore.interop import onnx and torch only when one of their functions runs.
from lstmcore import _core, interop, microscope, onnx
from lstmcore._core import get_num_threads, set_num_threads
from lstmcore._util.blas import one_blas_thread
from lstmcore.inference import load, prepare, quantize
from lstmcore.interop import from_torch, to_torch
from lstmcore.interop.keras import from_keras  # h5py is imported when it runs, never here
from lstmcore.nn import (
    Dense,
    Dropout,
    Embedding,
    History,
    LastStep,
    Masking,
    MeanPool,
    ModelFileError,
    RepeatLast,
    Sequential,
    losses,
    optim,
)
from lstmcore.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

# After nn, whose model files and training loop it uses; mpi4py and dask are imported
# only when its functions run.
from lstmcore import distributed  # isort: skip

# The names these modules had before the package was cut by concern: ``lstmcore.inspect``
# (now ``microscope``, which does not shadow the standard library's ``inspect``),
# ``lstmcore.losses`` and ``lstmcore.optim`` (now in ``nn``). Registered as the same module
# objects, so ``import lstmcore.inspect`` and ``from lstmcore.losses import ...`` still work.
inspect = microscope
_sys.modules.update({f"{__name__}.inspect": microscope, f"{__name__}.losses": losses, f"{__name__}.optim": optim})

# The one place the version is written: the build reads it from here (pyproject.toml).
__version__ = "0.1.0"

# Repeated passes reuse freed memory instead of faulting in fresh pages (cpp/include/
# lstmcore/memory.hpp); LSTMCORE_RETAIN_MEMORY=0 leaves the C library's defaults.
if _os.environ.get("LSTMCORE_RETAIN_MEMORY", "1") != "0":
    _core.retain_freed_memory()

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "Dense",
    "Embedding",
    "Dropout",
    "LastStep",
    "MeanPool",
    "Masking",
    "RepeatLast",
    "Sequential",
    "History",
    "load",
    "ModelFileError",
    "from_keras",
    "losses",
    "optim",
    "set_num_threads",
    "get_num_threads",
    "one_blas_thread",
    "prepare",
    "quantize",
    "onnx",
    "interop",
    "from_torch",
    "to_torch",
    "distributed",
    "__version__",
]
