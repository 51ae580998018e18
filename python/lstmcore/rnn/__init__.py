"""The recurrent layers: LSTM (and its variants), GRU and the vanilla RNN over the C++
core, and the single-step cells of the LSTM and the GRU (``_cells``).

Their shared base (``_recurrent``: parameters, checks, stacking, directions, the tape),
sequence lengths (``_lengths``) and parameter fingerprints (``_fingerprint``) are private.
"""

from lstmcore.rnn._cells import GRUCell, LSTMCell, RNNCell
from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._rnn import RNN

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"]
