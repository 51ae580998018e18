"""Models in and out of other frameworks: ``from_torch`` turns a PyTorch module into the
lstmcore layer or model that computes the same outputs, ``to_torch`` does the reverse
(docs/interop.md); ``interop.keras.from_keras`` reads Keras 3 files (docs/keras.md).

Each framework is an extra (``pip install 'lstmcore[torch]'``, ``'lstmcore[keras]'``);
``import lstmcore`` imports none of them, and these functions import theirs when called.
"""

from lstmcore.interop._from_torch import from_torch
from lstmcore.interop._to_torch import to_torch

__all__ = ["from_torch", "to_torch"]
