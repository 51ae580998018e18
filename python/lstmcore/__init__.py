"""lstmcore: fast LSTM and GRU training and inference on CPUs, from NumPy."""

from lstmcore._core import get_num_threads, set_num_threads
from lstmcore._gru import GRU
from lstmcore._lstm import LSTM

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "set_num_threads", "get_num_threads", "__version__"]
