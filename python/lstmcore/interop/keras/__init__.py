"""Keras 3 ``.keras`` files read into ``Sequential`` models with h5py and json alone
(docs/keras.md): ``from_keras(path)``."""

from lstmcore.interop.keras._convert import from_keras

__all__ = ["from_keras"]
