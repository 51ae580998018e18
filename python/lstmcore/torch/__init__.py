"""lstmcore inside PyTorch: ``torch.nn``'s recurrent modules, run by lstmcore's core.

``LSTM``, ``GRU``, ``RNN``, ``LSTMCell``, ``GRUCell`` and ``RNNCell`` take torch.nn's
arguments and have its parameters, ``forward`` and outputs (``PackedSequence`` included);
autograd runs the core's own backward; ``torch.compile`` sees each pass as one custom
operator. ``convert(model)`` swaps them into an existing model. docs/torch.md has the
details. Importing this module imports torch; ``import lstmcore`` does not.
"""

try:
    import torch  # the real PyTorch: imports are absolute, this package is lstmcore.torch
except ImportError:
    raise ImportError("lstmcore.torch needs PyTorch: pip install 'lstmcore[torch]'") from None

from lstmcore.torch._cells import GRUCell, LSTMCell, RNNCell
from lstmcore.torch._checks import InputError
from lstmcore.torch._convert import convert
from lstmcore.torch._recurrent import GRU, LSTM, RNN

del torch

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "convert", "InputError"]
