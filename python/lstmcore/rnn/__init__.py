"""The recurrent layers: LSTM (and its variants), GRU and the vanilla RNN over the C++ core.

Their shared base (``_recurrent``: parameters, checks, stacking, directions, the tape),
sequence lengths (``_lengths``) and parameter fingerprints (``_fingerprint``) are private.
"""

from lstmcore.rnn._gru import GRU
from lstmcore.rnn._lstm import LSTM
from lstmcore.rnn._rnn import RNN

__all__ = ["LSTM", "GRU", "RNN"]
