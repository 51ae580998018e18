"""The recurrent layers: LSTM (and its variants) and GRU over the C++ core, and their
single-step cells (``_cells``).

Their shared base (``_recurrent``: parameters, checks, stacking, directions, the tape),
sequence lengths (``_lengths``) and parameter fingerprints (``_fingerprint``) are private.
"""

from lstmcore.rnn._cells import GRUCell, LSTMCell
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM

__all__ = ["LSTM", "GRU", "LSTMCell", "GRUCell"]
