"""The torch side of the conversions: PyTorch itself, imported on first use, and the
nn.Modules ``to_torch`` builds for what PyTorch has no module of.

- ``RecurrentSequential``: an ``nn.Sequential`` run as lstmcore's ``Sequential`` runs:
  an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` hands on its output sequence (not its
  ``(output, state)`` tuple), and ``forward(x, lengths=None)`` runs the recurrent modules
  on packed sequences when ``lengths`` are given, as ``model.predict(x, lengths=...)``.
- ``LastStep`` and ``MeanPool``: lstmcore's layers of those names, ``forward(x, lengths=None)``.

The classes subclass torch's, so they are made on first use, not when this module is
imported. The module's ``__getattr__`` gives them by name: that is where pickle
(``torch.save`` of a whole module) looks them up again.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

CLASS_NAMES = ("RecurrentSequential", "LastStep", "MeanPool", "Dense")


def require_torch() -> Any:
    """The torch module (Any: mypy does not read torch, see pyproject.toml), or an
    ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError("lstmcore.from_torch and lstmcore.to_torch need PyTorch: pip install 'lstmcore[torch]'") from error
    return torch


@functools.cache
def torch_modules() -> SimpleNamespace:
    """The classes, made once (isinstance needs the same class objects every time)."""
    require_torch()  # its ImportError says how to install torch
    import torch  # a module, not a variable, for mypy: classes below derive from its types

    nn = torch.nn

    def lengths_tensor(lengths: Any, x: Any) -> Any:
        """(B,) int64 on x's device; pack_padded_sequence wants them on the CPU (.cpu())."""
        lengths = torch.as_tensor(lengths, dtype=torch.int64, device=x.device)
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"expected lengths of shape ({x.shape[0]},), one per sequence, got {tuple(lengths.shape)}")
        return lengths

    class LastStep(torch.nn.Module):
        """(B, T, F) -> (B, F): each sequence's output at its last valid step, lengths[b] - 1
        (lstmcore.LastStep); ``reverse``: step 0; ``bidirectional``: the last valid step
        for the first half of the features, step 0 for the second."""

        def __init__(self, bidirectional: bool = False, reverse: bool = False) -> None:
            super().__init__()
            self.bidirectional, self.reverse = bidirectional, reverse

        def forward(self, x: Any, lengths: Any = None) -> Any:
            if self.reverse:
                return x[:, 0]
            if lengths is None:
                last = x[:, -1]
            else:
                last = x[torch.arange(x.shape[0], device=x.device), lengths_tensor(lengths, x) - 1]
            if not self.bidirectional:
                return last
            half = x.shape[2] // 2
            return torch.cat([last[:, :half], x[:, 0, half:]], dim=1)

    class Dense(torch.nn.Linear):
        """nn.Linear followed by lstmcore's Dense activation (lstmcore.Dense); the same
        parameters, so the state_dict keys stay weight and bias."""

        def __init__(self, in_features: int, out_features: int, activation: Any, dtype: Any) -> None:
            super().__init__(in_features, out_features, dtype=dtype)
            self.activation = activation

        def forward(self, x: Any) -> Any:
            y = super().forward(x)
            name = self.activation if isinstance(self.activation, str) else self.activation[0]
            if name == "linear":
                return y
            if name == "softmax":
                return torch.softmax(y, dim=-1)
            if name == "hard_sigmoid":
                alpha, beta = (0.2, 0.5) if isinstance(self.activation, str) else self.activation[1:]
                return torch.clamp(alpha * y + beta, 0.0, 1.0)
            functions = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
            return functions.get(name, nn.functional.softsign)(y)

    class MeanPool(torch.nn.Module):
        """(B, T, F) -> (B, F): the mean over each sequence's valid steps (lstmcore.MeanPool)."""

        def forward(self, x: Any, lengths: Any = None) -> Any:
            if lengths is None:
                return x.mean(dim=1)
            lengths = lengths_tensor(lengths, x)
            valid = torch.arange(x.shape[1], device=x.device) < lengths[:, None]  # (B, T)
            return (x * valid[:, :, None].to(x.dtype)).sum(dim=1) / lengths[:, None].to(x.dtype)

    def sequence_output(module: Any, x: Any, lengths: Any) -> Any:
        if lengths is None:
            return module(x)[0]
        # Packed, as lstmcore's lengths= computes: the reverse direction starts at each
        # sequence's own end, and the output is zero past it.
        lengths = lengths_tensor(lengths, x).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=module.batch_first, enforce_sorted=False)
        steps = x.shape[1] if module.batch_first else x.shape[0]
        return nn.utils.rnn.pad_packed_sequence(module(packed)[0], batch_first=module.batch_first, total_length=steps)[0]

    class RecurrentSequential(torch.nn.Sequential):
        """Modules run in order, as lstmcore's ``Sequential``: a recurrent module hands on
        its output sequence; ``lengths`` (B,) go to the recurrent modules (packed
        sequences), ``LastStep`` and ``MeanPool``. ``to_torch`` sets ``metadata``, the
        lstmcore model's (a plain attribute: not in the state_dict)."""

        def forward(self, x: Any, lengths: Any = None) -> Any:
            for module in self:
                if isinstance(module, nn.RNNBase):
                    x = sequence_output(module, x, lengths)
                elif isinstance(module, (LastStep, MeanPool)):
                    x = module(x, lengths)
                else:
                    x = module(x)
            return x

    classes = SimpleNamespace(RecurrentSequential=RecurrentSequential, LastStep=LastStep, MeanPool=MeanPool, Dense=Dense)
    for name in CLASS_NAMES:
        made = getattr(classes, name)
        made.__module__, made.__qualname__ = __name__, name
    return classes


def __getattr__(name: str) -> Any:
    if name in CLASS_NAMES:
        return getattr(torch_modules(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
