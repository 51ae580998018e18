"""Sequential: layers applied in order, with the layer contract lifted to the model.

``model.params`` and ``model.grads`` are live views keyed like PyTorch's ``nn.Sequential``
``state_dict`` (``"0.weight_ih_l0"``, ``"2.weight"``): reading a key gives the layer's own
array (the same object), so an optimizer updating it in place updates the layer.
Assigning ``model.params[k] = array`` COPIES into the layer's array (same shape
required), so every holder of the old array, an optimizer included, sees the new values.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, cast

import numpy as np

from lstmcore._typing import ArrayLike, Layer, Tape
from lstmcore._util.blas import one_blas_thread
from lstmcore._util.checks import shape_text
from lstmcore.nn._batches import batch_slices, predict_slices
from lstmcore.nn._layers import RecurrentAdapter
from lstmcore.nn._metadata import check_metadata
from lstmcore.nn._train import History, evaluate, fit
from lstmcore.nn.model_files._save import save
from lstmcore.rnn._lengths import checked_lengths
from lstmcore.rnn._prepared import BorrowedLayer
from lstmcore.rnn._recurrent import _GatedRecurrent


class _ArrayView(MutableMapping):
    """One mapping over the layers' ``params`` (or ``grads``) dicts, keyed "index.name"."""

    def __init__(self, steps, attribute):
        self._steps = steps
        self._attribute = attribute

    def _owner(self, key):
        index, dot, name = key.partition(".") if isinstance(key, str) else ("", "", "")
        if dot and index.isdigit() and int(index) < len(self._steps):
            arrays = getattr(self._steps[int(index)], self._attribute)
            if name in arrays:
                return arrays, name
        raise KeyError(key)

    def __getitem__(self, key):
        arrays, name = self._owner(key)
        return arrays[name]

    def __setitem__(self, key, value):
        arrays, name = self._owner(key)
        value = np.asarray(value)
        if value.dtype.kind != "f":  # NumPy would parse strings and drop imaginary parts silently
            raise TypeError(f"expected {self._attribute}[{key!r}] as a float array, got dtype {value.dtype}")
        if value.shape != arrays[name].shape:
            raise ValueError(
                f"expected {self._attribute}[{key!r}] of shape {shape_text(arrays[name].shape)}, "
                f"got {shape_text(value.shape)}"
            )
        arrays[name][...] = value

    def __delitem__(self, key):
        raise TypeError(f"the {self._attribute} of a model cannot be deleted, only assigned")

    def __iter__(self):
        for index, step in enumerate(self._steps):
            for name in getattr(step, self._attribute):
                yield f"{index}.{name}"

    def __len__(self):
        return sum(len(getattr(step, self._attribute)) for step in self._steps)

    def __repr__(self):
        shapes = ", ".join(f"{key!r}: {shape_text(np.shape(self[key]))}" for key in self)
        return f"{{{shapes}}}"


class Sequential:
    """Layers applied in order on batch-first data.

    ``layers``: Dense, Embedding, Dropout, LastStep, MeanPool, LSTM / GRU (batch_first=True)
    or any object with the layer contract of ``lstmcore.nn._layers``. ``metadata``: a
    JSON-serialisable dict saved and loaded with the model (a vocabulary, normalisation
    constants, a task name, ...).
    """

    def __init__(self, layers: Iterable[Any], *, metadata: dict[str, Any] | None = None) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("expected at least one layer, got none")
        self.layers = layers
        self._steps = [self._as_step(layer, index) for index, layer in enumerate(layers)]
        self.metadata = check_metadata({} if metadata is None else metadata)

    @staticmethod
    def _as_step(layer: Any, index: int) -> Layer:
        if isinstance(layer, _GatedRecurrent):
            return RecurrentAdapter(layer)
        for attribute in ("forward", "backward", "params", "grads", "zero_grad", "get_config"):
            if not hasattr(layer, attribute):
                raise TypeError(f"layer {index} ({type(layer).__name__}) has no {attribute!r}: not an lstmcore layer")
        return layer

    @property
    def params(self) -> MutableMapping[str, np.ndarray]:
        return _ArrayView(self._steps, "params")

    @property
    def grads(self) -> MutableMapping[str, np.ndarray]:
        return _ArrayView(self._steps, "grads")

    @property
    def output_is_sequence(self) -> bool:
        """False when a layer (LastStep, MeanPool) reduces (B, T, ...) to one output per sequence."""
        return not any(getattr(layer, "reduces_time", False) for layer in self.layers)

    def zero_grad(self) -> None:
        for step in self._steps:
            step.zero_grad()

    def get_config(self) -> dict[str, Any]:
        return {
            "layers": [{"type": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
            "metadata": check_metadata(self.metadata),
        }

    def __repr__(self):
        inner = "".join(f"\n  ({index}): {layer!r}" for index, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    # ----------------------------------------------------------------- passes

    def lengths_of(self, x: ArrayLike) -> np.ndarray | None:
        """The (B,) lengths the first layer reads off x, used when no ``lengths`` are given:
        an ``Embedding(mask_zero=True)`` ends each sequence at its last nonzero id, a
        ``Masking`` layer at its last step not all ``mask_value``. None for other layers."""
        read = getattr(self._steps[0], "lengths_of", None)
        return None if read is None else read(x)

    def forward(
        self, x: ArrayLike, *, training: bool = False, lengths: ArrayLike | None = None
    ) -> tuple[np.ndarray, list[Tape]]:
        """``y, tape``: x (B, T, F) floats or (B, T) ids; lengths (B,) valid steps per
        sequence (None: those ``lengths_of`` reads off x, if any)."""
        lengths = self._checked_lengths(x, lengths)
        tapes = []
        for step in self._steps:
            x, tape = step.forward(x, training=training, lengths=lengths)
            tapes.append(tape)
        return cast(np.ndarray, x), tapes  # the last layer's output (there is at least one)

    def _checked_lengths(self, x, lengths):
        if lengths is None:
            lengths = self.lengths_of(x)
        if lengths is None:
            return None
        shape = np.shape(x)
        if len(shape) < 2:
            raise ValueError(f"lengths need x with a time axis (B, T, ...), got x of shape {shape_text(shape)}")
        return checked_lengths(lengths, shape[0], shape[1])

    def backward(self, tape: list[Tape], dy: ArrayLike) -> np.ndarray | None:
        """Adds every layer's weight gradients into ``grads``; returns dx (None for ids)."""
        if not isinstance(tape, list) or len(tape) != len(self._steps):
            raise ValueError("expected the tape returned by this model's forward")
        # Every tape is checked before any layer adds to grads: a refusal of an inner
        # layer's tape after the later layers' backward would leave their gradients
        # added, and a retry would count them twice.
        for step, layer_tape in zip(self._steps, tape):
            check = getattr(step, "check_tape", None)
            if check is not None:
                check(layer_tape)
        for step, layer_tape in zip(reversed(self._steps), reversed(tape)):
            dy = step.backward(layer_tape, dy)
        return cast("np.ndarray | None", dy)  # the first layer's dx

    def __call__(self, x: ArrayLike, lengths: ArrayLike | None = None) -> np.ndarray:
        """Inference: the output for x, keeping nothing for backward (no tapes)."""
        lengths = self._checked_lengths(x, lengths)
        for step in self._steps:
            infer = getattr(step, "infer", None)
            x = infer(x, lengths=lengths) if infer else step.forward(x, training=False, lengths=lengths)[0]
        return cast(np.ndarray, x)  # the last layer's output (there is at least one)

    @one_blas_thread()
    def predict(self, x: ArrayLike, *, batch_size: int = 256, lengths: ArrayLike | None = None) -> np.ndarray:
        """Inference in batches of ``batch_size``; the outputs concatenated along the batch
        (NumPy's BLAS on one thread meanwhile: see _util/blas.py). With batch_size >= 3, a
        last batch of 1 or 2 rows joins the batch before it: then each row's output is
        the same bit for bit whatever the batch_size (>= 3) and however x is split into
        calls of 3 rows or more (one or two rows alone take another path of the core)."""
        x = np.asarray(x)
        lengths = None if lengths is None else np.asarray(lengths)
        if lengths is not None and len(lengths) != len(x):
            raise ValueError(f"expected lengths for the {len(x)} samples of x, got {len(lengths)}")
        if len(x) == 0:
            # No sample gives no output, but its shape per sample is that of one sample's
            # (zeros: valid floats and valid ids alike), so (0, outputs) and not (0,).
            batch_slices(0, batch_size)  # the check
            probe_shape = (1,) + x.shape[1:]
            # Full lengths: a first layer that reads lengths off x finds only padding in zeros.
            probe_lengths = [probe_shape[1]] if len(probe_shape) >= 2 and probe_shape[1] >= 1 else None
            try:
                one = self(np.zeros(probe_shape, x.dtype), probe_lengths)
            except ValueError as error:
                # The probe stands for the caller's x: the message names x's shape.
                message = str(error).replace(shape_text(probe_shape), shape_text(x.shape))
                raise ValueError(message) from None
            return np.empty((0,) + one.shape[1:], one.dtype)
        parts = predict_slices(len(x), batch_size)
        # Several calls share one preparation of the recurrent layers: their weights
        # checked and packed once, a narrow path into the core (docs/inference.md).
        run = self._for_many_calls() if len(parts) > 1 else self
        return np.concatenate([run(x[part], None if lengths is None else lengths[part]) for part in parts])

    def _for_many_calls(self) -> Sequential:
        """This model with its recurrent layers prepared in place (BorrowedLayer), for the
        calls of one predict; the results are the model's own, bit for bit."""
        runner = copy.copy(self)
        runner._steps = [_borrowed(step) for step in self._steps]
        return runner

    def evaluate(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        loss: str | Callable[..., Any],
        batch_size: int = 256,
        lengths: ArrayLike | None = None,
    ) -> float:
        """The mean loss over all of x (exact across batches; padding steps excluded)."""
        return evaluate(self, x, y, loss=loss, batch_size=batch_size, lengths=lengths)["loss"]

    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        loss: str | Callable[..., Any],
        optimizer: Any = None,
        epochs: int = 10,
        batch_size: int = 32,
        validation_data: tuple[ArrayLike, ...] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int | None = 0,
        patience: int | None = None,
        restore_best_weights: bool = True,
        clip_norm: float | None = None,
        schedule: Any = None,
        lengths: ArrayLike | None = None,
        verbose: bool = True,
        metrics: Sequence[str] | None = None,
        distributed: Any = None,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> History:
        """Train on (x, y) in seeded mini-batches; returns a ``History``. The options are
        described in ``lstmcore.nn._train.fit``; ``distributed="mpi"`` trains data-parallel
        over the ranks of an MPI job, ``checkpoint=DIR`` and ``resume=True`` continue an
        interrupted run (docs/distributed.md)."""
        return fit(
            self,
            x,
            y,
            loss=loss,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            shuffle=shuffle,
            seed=seed,
            patience=patience,
            restore_best_weights=restore_best_weights,
            clip_norm=clip_norm,
            schedule=schedule,
            lengths=lengths,
            verbose=verbose,
            metrics=metrics,
            distributed=distributed,
            checkpoint=checkpoint,
            resume=resume,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to exactly ``path``, atomically: one safetensors file when ``path``
        ends in ".safetensors" (the ``safetensors`` extra), else one .npz; see ``lstmcore.load``."""
        save(self, path)


def _borrowed(step: Any) -> Any:
    """A recurrent step of a model running one of lstmcore's own layers, with the layer
    prepared in place; any other step as it is (a subclass of the adapter too: it may call
    what a prepared layer does not have, such as forward)."""
    if type(step) is not RecurrentAdapter or type(step.layer) not in BorrowedLayer.KINDS:
        return step
    adapter = copy.copy(step)
    adapter.layer = BorrowedLayer(step.layer)  # type: ignore[assignment]  # called as the layer is
    return adapter
