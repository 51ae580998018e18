"""``from_keras``: a Keras 3 ``.keras`` file as an lstmcore ``Sequential``."""

from __future__ import annotations

import os

from lstmcore.interop.keras._chain import chain_of
from lstmcore.interop.keras._file import WEIGHTS, KerasFile
from lstmcore.interop.keras._layers import plan
from lstmcore.nn._model import Sequential
from lstmcore.nn.model_files._format import EXPANSION_SLACK, MAX_EXPANSION, clip, short

PADDED_STEPS = ("keras", "zeros")


def from_keras(path: str | os.PathLike[str], *, padded_steps: str = "keras") -> Sequential:
    """The Keras 3 model saved at ``path`` (``model.save("m.keras")``) as a ``Sequential``
    whose ``predict`` gives Keras's outputs (docs/keras.md: the layers and options it
    converts, and those it refuses).

    Read with json and h5py alone (``pip install lstmcore[keras]``); nothing in the file
    is imported, unpickled or executed, and every size it claims is checked before the
    weights are read. With an ``Embedding(mask_zero=True)`` or a ``Masking`` first layer
    the model reads each sequence's length off its input, as Keras reads its mask.
    ``padded_steps``: the outputs of a recurrent layer with ``return_sequences=True`` at
    the padding steps: ``"keras"``, as Keras gives them (its last valid output, repeated,
    outside ``Bidirectional``), or ``"zeros"``, as lstmcore and PyTorch give them.

    A file that is not a readable Keras model is a ``ModelFileError`` (a ValueError); a
    layer or option lstmcore cannot run the same way is a ValueError naming the Keras
    layer, its class and the option.
    """
    if padded_steps not in PADDED_STEPS:
        raise ValueError(f"expected padded_steps as one of {', '.join(map(repr, PADDED_STEPS))}, got {padded_steps!r}")
    try:
        import h5py  # noqa: F401  (used by KerasFile; missing, it is said here, before any work)
    except ImportError as error:
        raise ImportError("from_keras reads the weights with h5py: pip install 'lstmcore[keras]' (or h5py)") from error
    path = os.fspath(path)
    with KerasFile(path) as file:
        chain, name = chain_of(file.config, file.fail)
        planned = plan(chain, padded_steps, file.fail)
        # Every weight the config implies is allocated at its declared shape, so their
        # total is held to what the weights file's bytes can hold (compressed datasets
        # and a fill value would otherwise let a tiny file declare gigabytes).
        total = sum(part.weight_bytes() for part in planned)
        limit = MAX_EXPANSION * file.weights_bytes + EXPANSION_SLACK
        if total > limit:
            raise file.fail(
                f"the config's layers hold {total} bytes of weights; a {WEIGHTS} of {file.weights_bytes} bytes "
                f"is read for at most {limit}"
            )
        file.open_weights()
        layers = []
        for part in planned:
            layer = part.build()
            if part.keras is not None and part.reads:
                arrays = [file.read_vars(where, shapes, dtype, part.keras.describe()) for where, shapes, dtype in part.reads]
                assert part.place is not None
                part.place(layer, arrays)
                written = file.vars_name(("layers", part.keras.group, "vars"))
                if written is not None and written != part.keras.name:
                    raise file.fail(
                        f"{WEIGHTS} holds the weights of {short(written)} where the config puts "
                        f"{part.keras.describe()}: not the file Keras writes"
                    )
            layers.append(layer)
    version = file.metadata.get("keras_version") if isinstance(file.metadata, dict) else None
    source = {"model": clip(name, 200)}
    if isinstance(version, str):
        source["keras_version"] = clip(version, 40)
    return Sequential(layers, metadata={"keras": source})
