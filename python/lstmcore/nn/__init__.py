"""Models of layers: the feed-forward layers, ``Sequential``, its training loop, losses,
optimizers and model files."""

from lstmcore.nn import losses, optim
from lstmcore.nn._layers import Dense, Dropout, Embedding, LastStep, Masking, MeanPool, RepeatLast
from lstmcore.nn._model import Sequential
from lstmcore.nn._train import History
from lstmcore.nn.model_files._format import ModelFileError
from lstmcore.nn.model_files._load import load

__all__ = [
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
    "losses",
    "optim",
]
