"""The work of ``lstmcore demo memory``: a vanilla RNN, a GRU and an LSTM of one size trained
on the adding problem, and how far back the gradient of each one's prediction reaches."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import lstmcore
from lstmcore import datasets, microscope

# The three layer kinds compared, in the order of the seed's argument.
KINDS = {"RNN": lstmcore.RNN, "GRU": lstmcore.GRU, "LSTM": lstmcore.LSTM}
VALIDATION_SAMPLES = 1000
# The validation sequences whose hidden-state gradients are measured: enough for a stable
# mean.
GRADIENT_SAMPLES = 100


@dataclass
class MemoryResult:
    """One kind's run: the mean ||dL/dh_t|| over t (T,) before and after training, where L is
    the mean prediction; the validation MSE after each epoch and of the trained model."""

    kind: str
    initial_norms: np.ndarray
    trained_norms: np.ndarray
    val_loss: list[float] = field(default_factory=list)
    val_mse: float = float("nan")
    seconds: float = 0.0


def build_model(kind, hidden, seed):
    """Sequential([layer, LastStep(), Dense(H, 1)]): the last hidden state -> the sum."""
    return lstmcore.Sequential(
        [KINDS[kind](2, hidden, seed=seed), lstmcore.LastStep(), lstmcore.Dense(hidden, 1, seed=seed + 1)]
    )


def prediction_gradient_norms(model, x):
    """Mean over the batch of ||dL/dh_t|| (T,), L the mean of the model's predictions.

    The prediction's gradient rather than the loss's: the loss's is scaled by the remaining
    error, which training drives to near zero, hiding how far back h_t still matters.
    """
    recurrent, last_step, dense = model.layers
    hidden, _ = recurrent(x)
    last, last_tape = last_step.forward(hidden)
    prediction, dense_tape = dense.forward(last)
    d_prediction = np.full_like(prediction, 1.0 / len(prediction))
    dy = last_step.backward(last_tape, dense.backward(dense_tape, d_prediction))
    dense.zero_grad()  # the Dense's gradients are not what is measured here
    gradients = microscope.hidden_gradients(recurrent, x, dy)[0]  # (T, B, H) of its one layer
    return np.linalg.norm(gradients.astype(np.float64), axis=2).mean(axis=1)


def adding_data(steps, samples, seed):
    """Training and validation sets of the adding problem, drawn from different seeds."""
    train = datasets.adding_problem(samples, steps, seed=2 * seed)
    validation = datasets.adding_problem(VALIDATION_SAMPLES, steps, seed=2 * seed + 1)
    return train, validation


def train_kind(kind, train, validation, *, hidden, epochs, batch_size, lr, seed):
    """Train one kind with Adam (gradients clipped at norm 1) and measure it before and after."""
    model = build_model(kind, hidden, seed)
    probe = validation[0][:GRADIENT_SAMPLES]
    initial_norms = prediction_gradient_norms(model, probe)
    started = time.perf_counter()
    history = model.fit(
        *train,
        loss="mse",
        optimizer=lstmcore.optim.Adam(model.params, lr=lr),
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        clip_norm=1.0,
        seed=seed,
        verbose=False,
    )
    seconds = time.perf_counter() - started
    return MemoryResult(
        kind,
        initial_norms,
        prediction_gradient_norms(model, probe),
        history.history["val_loss"],
        model.evaluate(*validation, loss="mse"),
        seconds,
    )
