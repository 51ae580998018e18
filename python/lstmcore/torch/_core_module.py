"""What the sequence modules and the cells share: parameters, initialisation, the core call."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lstmcore.torch import _engine
from lstmcore.torch._checks import check_device, check_parameters, checked_dtype
from lstmcore.torch._ops import recurrent_forward

# Options whose masks are drawn in training (the dropouts, zoneout).
_RANDOM = ("dropout", "recurrent_dropout", "zoneout")


class CoreModule(nn.Module):
    """A module whose passes run on an lstmcore layer described by ``self._config``.

    ``_parameter_names`` maps the module's parameter names to the layer's, in the layer's
    order (a cell's ``weight_ih`` is the layer's ``weight_ih_l0``).
    """

    _config: str
    _parameter_names: dict[str, str]

    def _setup(self, kind: str, layer_options: dict[str, Any], device: Any, dtype: Any, suffix: str = "") -> None:
        check_device(device)
        dtype = checked_dtype(dtype)
        self._kind = kind
        self._config = _engine.describe(kind, **layer_options)
        try:
            layer = _engine.engine(self._config, "float32")  # the layer checks every option
        except (TypeError, ValueError) as error:
            raise type(error)(f"{type(self).__name__}: {error}") from None
        self._random = any(layer_options.get(name, 0) for name in _RANDOM)
        self._forget_bias = layer_options.get("forget_bias")
        self._parameter_names = {}
        for layer_name, shape in layer._param_shapes().items():
            name = layer_name.removesuffix(suffix) if suffix else layer_name
            self._parameter_names[name] = layer_name
            self.register_parameter(name, nn.Parameter(torch.empty(shape, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation (every parameter uniform in +-1/sqrt(hidden_size), in
        registration order, so a seed gives torch.nn's weights); layer-norm gains 1 and biases
        0; ``forget_bias`` in the forget rows of ``bias_ih`` (``bias_hh``'s at 0)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, value in self.named_parameters(recurse=False):
                value.uniform_(-bound, bound)
                if name.startswith("layer_norm"):
                    value.fill_(0.0 if name.startswith("layer_norm_cell_bias") else 1.0)
            if self._forget_bias is not None:
                hidden = self.hidden_size
                for name, value in self.named_parameters(recurse=False):
                    if name.startswith("bias_ih"):
                        value[hidden : 2 * hidden] = self._forget_bias
                    elif name.startswith("bias_hh"):
                        value[hidden : 2 * hidden] = 0.0

    def _core_pass(
        self, x: torch.Tensor, parts: list[torch.Tensor], lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One forward through the core: (y, final state parts)."""
        weights = [getattr(self, name) for name in self._parameter_names]
        needs_tape = torch.is_grad_enabled() and (
            x.requires_grad or any(w.requires_grad for w in weights) or any(p.requires_grad for p in parts)
        )
        training = self.training and self._random
        # PyTorch's generator seeds the masks, so torch.manual_seed repeats a training run.
        seed = torch.randint(0, 2**62, (), dtype=torch.int64) if training else torch.zeros((), dtype=torch.int64)
        y, final, _ = recurrent_forward(x, parts, weights, lengths, seed, self._config, training, needs_tape)
        return y, final

    def _dtype(self) -> torch.dtype:
        return check_parameters(self)
