"""What the modules refuse, and how: errors that name what is supported and what was given."""

from __future__ import annotations

from typing import Any

import torch

FLOATS = (torch.float32, torch.float64)


class InputError(ValueError, RuntimeError):
    """Bad input to an lstmcore.torch module. A ValueError, as lstmcore's own errors are, and
    a RuntimeError, which is what code written for torch.nn's modules catches."""


def check_device(device: Any) -> None:
    if device is not None and torch.device(device).type != "cpu":
        raise InputError(f"lstmcore.torch modules run on the CPU; got device={str(torch.device(device))!r}")


def checked_dtype(dtype: Any) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in FLOATS:
        raise InputError(
            f"lstmcore.torch modules compute in torch.float32 or torch.float64; got dtype={dtype} "
            "(for float16 or bfloat16, keep the module in float32 and convert its input with .float())"
        )
    return dtype


def check_tensor(tensor: Any, name: str, dtype: torch.dtype) -> None:
    """A CPU tensor of the module's dtype, or an InputError naming what was given."""
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"expected {name} as a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise InputError(
            f"lstmcore.torch modules run on CPU tensors; got {name} on {tensor.device.type!r} "
            "(move it with .cpu(), or use torch.nn's module on that device)"
        )
    if tensor.dtype != dtype:
        hint = " (convert it with .float())" if tensor.dtype in (torch.float16, torch.bfloat16) else ""
        raise InputError(f"expected {name} of dtype {dtype} (the module's parameters), got {tensor.dtype}{hint}")
    if tensor.layout != torch.strided:
        raise InputError(f"expected {name} as a dense tensor, got layout {tensor.layout}")


def check_parameters(module: torch.nn.Module) -> torch.dtype:
    """The module's one parameter dtype; every parameter on the CPU in float32 or float64."""
    dtypes = set()
    for name, value in module.named_parameters(recurse=False):
        if value.device.type != "cpu":
            raise InputError(
                f"lstmcore.torch modules run on the CPU; parameter {name!r} is on {value.device.type!r} "
                "(use torch.nn's module on that device)"
            )
        dtypes.add(value.dtype)
    (dtype,) = dtypes if len(dtypes) == 1 else (None,)
    if dtype not in FLOATS:
        raise InputError(
            "lstmcore.torch modules compute in float32 or float64 with every parameter of one dtype; "
            f"got {sorted(str(d) for d in dtypes)} (convert the module with .float() or .double())"
        )
    return dtype


def shape_text(shape: Any) -> str:
    return "(" + ", ".join(str(int(size)) for size in shape) + ")"


def check_options(options: dict[str, Any], allowed: tuple[str, ...], owner: str) -> None:
    """Keyword options beyond PyTorch's, by name; any other name a TypeError listing them."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{owner} got unexpected keyword arguments {unknown}; lstmcore's options are {list(allowed)}")
