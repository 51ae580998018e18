"""Models in and out of other frameworks: ``from_torch`` turns a PyTorch module into the
lstmcore layer or model that computes the same outputs, ``to_torch`` does the reverse
(docs/interop.md).

PyTorch is the ``torch`` extra (``pip install 'lstmcore[torch]'``); ``import lstmcore``
does not import it, and these functions import it when they are called.
"""

from lstmcore.interop._from_torch import from_torch
from lstmcore.interop._to_torch import to_torch

__all__ = ["from_torch", "to_torch"]
