"""The layers' ``gate_activation``, ``activation``, ``cell_activation`` and ``clip``: ONNX's
activations, activation_alpha, activation_beta and clip, checked once, as the core takes
them and as a config (JSON) holds them.

An activation is a name, or ``("hard_sigmoid", alpha, beta)`` (a list in a config); the
name "hard_sigmoid" alone takes ONNX's alpha 0.2, beta 0.5 (Keras's is (1/6, 0.5)).
"""

from __future__ import annotations

import math
import numbers

from lstmcore.reference._activations import ACTIVATIONS, HARD_SIGMOID


def check_activation(value, name):
    """``value`` as a name, or ("hard_sigmoid", alpha, beta) with finite floats."""
    if isinstance(value, str):
        if value not in ACTIVATIONS:
            raise ValueError(f"expected {name} among {', '.join(ACTIVATIONS)}, got {value!r}")
        return ("hard_sigmoid", *HARD_SIGMOID) if value == "hard_sigmoid" else value
    if isinstance(value, (tuple, list)) and len(value) == 3 and value[0] == "hard_sigmoid":
        alpha, beta = value[1:]
        for number in (alpha, beta):
            if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number):
                raise ValueError(f"expected {name} as ('hard_sigmoid', alpha, beta) with finite numbers, got {value!r}")
        return ("hard_sigmoid", float(alpha), float(beta))
    raise ValueError(f"expected {name} as one of {', '.join(ACTIVATIONS)} or ('hard_sigmoid', alpha, beta), got {value!r}")


def check_clip(value):
    """None, or a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
        raise ValueError(f"expected clip as None or a finite number > 0, got {value!r}")
    return float(value)


def as_config(activation):
    """A checked activation as JSON holds it: a name, or a list."""
    return activation if isinstance(activation, str) else list(activation)


def core_spec(activations):
    """[gate, candidate, output] as the core takes them: (name, alpha, beta) each."""
    return [(a, *HARD_SIGMOID) if isinstance(a, str) else tuple(a) for a in activations]
