"""lstmcore: fast LSTM and GRU training and inference on CPUs, from NumPy."""

import os as _os

from lstmcore import _core, losses, optim
from lstmcore._blas import one_blas_thread
from lstmcore._core import get_num_threads, set_num_threads
from lstmcore._gru import GRU
from lstmcore._layers import Dense, Dropout, Embedding, LastStep, MeanPool
from lstmcore._lstm import LSTM
from lstmcore._model import Sequential
from lstmcore._serialization import ModelFileError, load
from lstmcore._train import History

# The one place the version is written: the build reads it from here (pyproject.toml).
__version__ = "0.1.0"

# Repeated passes reuse freed memory instead of faulting in fresh pages (cpp/include/
# lstmcore/memory.hpp); LSTMCORE_RETAIN_MEMORY=0 leaves the C library's defaults.
if _os.environ.get("LSTMCORE_RETAIN_MEMORY", "1") != "0":
    _core.retain_freed_memory()

__all__ = [
    "LSTM",
    "GRU",
    "Dense",
    "Embedding",
    "Dropout",
    "LastStep",
    "MeanPool",
    "Sequential",
    "History",
    "load",
    "ModelFileError",
    "losses",
    "optim",
    "set_num_threads",
    "get_num_threads",
    "one_blas_thread",
    "__version__",
]
