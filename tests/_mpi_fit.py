"""A training run that tests/test_distributed_mpi.py launches under ``mpiexec -n N``, and
runs in-process as the one-process reference.

    python _mpi_fit.py OUT [--mpi] [--epochs E] [--checkpoint DIR [--resume]]
                           [--sabotage RANK:STEP:HOW]

Trains the two models of ``MODELS`` (a regression with a validation split, and a per-step
classification with lengths, accuracy and gradient clipping) and writes each rank's
parameters and History to OUT/rank<r>.npz and OUT/rank<r>.json. --sabotage makes rank
RANK, at its STEP-th training step (0-based, counted over both models), raise in its loss
(HOW=raise), raise in the optimizer's step (HOW=optimizer) or kill itself (HOW=kill);
an error a rank raises is written to OUT/rank<r>.error and the script exits with 3.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys

import numpy as np

import lstmcore
from lstmcore.nn import losses

# The optimizer steps each model takes in 3 epochs, for the bound on the differences
# (tests/test_distributed_mpi.py): regress 40 training samples in batches of 16 (3 steps,
# the last of 8 rows); tag 30 samples in batches of 7 (5 steps, the last of 2 rows).
EPOCHS = 3
LR = 0.01


def regress_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6, 3)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) / 4)[:, None].astype(np.float32)


def tag_data():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 12, size=(40, 5))
    lengths = rng.integers(1, 6, size=40)
    targets = (ids + np.arange(5)) % 5  # the class of a token depends on its step
    return ids, targets, lengths


def regress_model():
    return lstmcore.Sequential([lstmcore.LSTM(3, 8, seed=0), lstmcore.LastStep(), lstmcore.Dense(8, 1, seed=1)])


def tag_model():
    return lstmcore.Sequential([lstmcore.Embedding(12, 4, seed=2), lstmcore.GRU(4, 8, seed=3), lstmcore.Dense(8, 5, seed=4)])


class Sabotage:
    """Counts the training steps of this process and misbehaves at the chosen one."""

    def __init__(self, text, rank):
        self.steps = 0
        self.rank, self.at, self.how = (None, None, None) if text is None else text.split(":")
        self.armed = self.rank is not None and int(self.rank) == rank

    def now(self, how):
        hit = self.armed and self.how == how and self.steps == int(self.at)
        if hit and how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        return hit


def sabotaged_loss(base, sabotage):
    class Loss(base):
        def _evaluate(self, pred, target, mask, gradient):
            if gradient:
                if sabotage.now("raise"):
                    raise ValueError("this rank's share of the batch is broken (sabotage)")
                sabotage.now("kill")
            return super()._evaluate(pred, target, mask, gradient)

    return Loss()


def sabotaged_adam(params, sabotage):
    class Adam(lstmcore.optim.Adam):
        def step(self, grads):
            if sabotage.now("optimizer"):
                raise RuntimeError("the optimizer failed on this rank alone (sabotage)")
            sabotage.steps += 1
            super().step(grads)

    return Adam(params, lr=LR)


def train(distributed=None, epochs=EPOCHS, checkpoint=None, resume=False, sabotage_text=None, rank=0):
    """{name: (model, history)} of both models."""
    sabotage = Sabotage(sabotage_text, rank)
    options = dict(distributed=distributed, epochs=epochs, verbose=False, resume=resume)
    results = {}

    x, y = regress_data()
    model = regress_model()
    history = model.fit(
        x,
        y,
        loss=sabotaged_loss(losses.MeanSquaredError, sabotage),
        optimizer=sabotaged_adam(model.params, sabotage),
        batch_size=16,
        validation_split=0.2,
        checkpoint=None if checkpoint is None else os.path.join(checkpoint, "regress"),
        **options,
    )
    results["regress"] = (model, history)

    ids, targets, lengths = tag_data()
    model = tag_model()
    history = model.fit(
        ids[:30],
        targets[:30],
        lengths=lengths[:30],
        loss=sabotaged_loss(losses.CrossEntropy, sabotage),
        optimizer=sabotaged_adam(model.params, sabotage),
        batch_size=7,
        validation_data=(ids[30:], targets[30:], lengths[30:]),
        metrics=["accuracy"],
        clip_norm=1.0,
        restore_best_weights=False,
        checkpoint=None if checkpoint is None else os.path.join(checkpoint, "tag"),
        **options,
    )
    results["tag"] = (model, history)
    return results


def dropout_resume(out, checkpoint, rank):
    """A model with dropout (a recurrent layer's and a Dropout layer's) trained for 3 epochs
    on this job's ranks, then again as 1 epoch checkpointed and 2 more resumed: writes the
    largest difference between the two to OUT/rank<r>.dropout.json, with this rank's
    dropout stream states."""
    from lstmcore.nn._checkpoint import generator_states

    def model():
        return lstmcore.Sequential(
            [lstmcore.LSTM(3, 8, seed=0, num_layers=2, dropout=0.3), lstmcore.LastStep(),
             lstmcore.Dropout(0.2, seed=9), lstmcore.Dense(8, 1, seed=1)]
        )  # fmt: skip

    x, y = regress_data()
    options = dict(loss="mse", batch_size=16, verbose=False, distributed="mpi")
    whole = model()
    whole.fit(x, y, epochs=3, **options)
    model().fit(x, y, epochs=1, checkpoint=checkpoint, **options)
    resumed = model()
    history = resumed.fit(x, y, epochs=3, checkpoint=checkpoint, resume=True, **options)
    worst = max(float(np.max(np.abs(resumed.params[key] - value))) for key, value in whole.params.items())
    states = {key: str(state["state"]) for key, state in generator_states(resumed).items()}
    report = {"worst": worst, "resumed": history.resumed_epochs, "states": states}
    (out / f"rank{rank}.dropout.json").write_text(json.dumps(report))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--mpi", action="store_true")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sabotage")
    parser.add_argument("--dropout", action="store_true", help="run dropout_resume instead")
    args = parser.parse_args()
    rank = 0
    if args.mpi:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
    if args.dropout:
        dropout_resume(args.out, args.checkpoint, rank)
        return
    if Sabotage(args.sabotage, rank).now("before"):
        # uncaught, outside fit, while the other ranks wait in fit's first collective
        raise RuntimeError("this rank failed before fit (sabotage)")
    try:
        results = train("mpi" if args.mpi else None, args.epochs, args.checkpoint, args.resume, args.sabotage, rank)
    except Exception as error:
        (args.out / f"rank{rank}.error").write_text(f"{type(error).__name__}: {error}")
        sys.exit(3)
    arrays, histories = {}, {}
    for name, (model, history) in results.items():
        arrays.update({f"{name}/{key}": value for key, value in model.params.items()})
        histories[name] = {"history": history.history, "best_epoch": history.best_epoch, "resumed": history.resumed_epochs}
    np.savez(args.out / f"rank{rank}.npz", **arrays)
    (args.out / f"rank{rank}.json").write_text(json.dumps(histories))


if __name__ == "__main__":
    main()
