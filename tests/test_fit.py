"""Sequential.fit: learning, determinism, early stopping, Ctrl-C, validation, output, masks."""

import numpy as np
import pytest

from lstmcore import GRU, LSTM, Dense, Dropout, Embedding, LastStep, Sequential, optim


def sum_task(count=96, steps=6, seed=0):
    """x (N, T, 1) uniform in [-1, 1]; y (N, 1): a quarter of the sequence's sum."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(count, steps, 1)).astype(np.float32)
    return x, x.sum(axis=1) / 4


def sum_model(dropout=0.0):
    return Sequential([LSTM(1, 8, seed=0), LastStep(), Dropout(dropout, seed=5), Dense(8, 1, seed=1)])


def comparable(history):
    """The history without the wall-clock entries."""
    return {k: v for k, v in history.history.items() if k not in ("epoch_time", "samples_per_s")}


def test_fit_lowers_the_loss_on_a_tiny_problem():
    x, y = sum_task()
    model = sum_model()
    before = model.evaluate(x, y, loss="mse")
    history = model.fit(x, y, loss="mse", optimizer=optim.Adam(model.params, lr=0.02), epochs=8, batch_size=16, verbose=False)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, y, loss="mse") < 0.3 * before
    assert history.epochs == 8 and not history.stopped_early and not history.interrupted
    assert all(rate > 0 for rate in history.history["samples_per_s"])


def test_two_fits_with_the_same_seeds_give_identical_histories():
    x, y = sum_task()

    def run():
        model = sum_model(dropout=0.3)
        history = model.fit(x, y, loss="mse", epochs=3, batch_size=16, validation_split=0.25, seed=7, verbose=False)
        return comparable(history), model.params["3.weight"].copy()

    (first, weight), (second, weight_again) = run(), run()
    assert first == second
    assert np.array_equal(weight, weight_again)


def test_early_stopping_restores_the_best_weights():
    x, y = sum_task()
    # Validation targets opposite to the training ones: val_loss worsens as training learns.
    model = sum_model()
    history = model.fit(
        x,
        y,
        loss="mse",
        optimizer=optim.Adam(model.params, lr=0.02),
        epochs=30,
        batch_size=16,
        validation_data=(x, -y),
        patience=2,
        verbose=False,
    )
    val = history.history["val_loss"]
    assert history.stopped_early and history.epochs == history.best_epoch + 3
    assert val[history.best_epoch] == min(val)
    assert model.evaluate(x, -y, loss="mse") == pytest.approx(min(val), rel=1e-6)


def test_keyboard_interrupt_in_a_batch_returns_the_history_with_the_best_weights(monkeypatch):
    x, y = sum_task()
    model = sum_model()
    opt = optim.Adam(model.params, lr=0.02)
    real_step, calls = opt.step, []

    def step(grads):
        calls.append(1)
        if len(calls) == 15:  # in the third epoch (6 batches per epoch)
            raise KeyboardInterrupt
        real_step(grads)

    monkeypatch.setattr(opt, "step", step)
    history = model.fit(x, y, loss="mse", optimizer=opt, epochs=10, batch_size=16, validation_data=(x, -y), verbose=False)
    assert history.interrupted and not history.stopped_early
    assert history.epochs == 2 and len(history.history["val_loss"]) == 2
    assert model.evaluate(x, -y, loss="mse") == pytest.approx(min(history.history["val_loss"]), rel=1e-6)


def test_validation_split_holds_out_a_seeded_fraction():
    x, y = sum_task(count=40)
    history = sum_model().fit(x, y, loss="mse", epochs=2, validation_split=0.25, verbose=False)
    assert len(history.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="not both"):
        sum_model().fit(x, y, loss="mse", validation_split=0.2, validation_data=(x, y), verbose=False)
    with pytest.raises(ValueError, match="holds out 0"):
        sum_model().fit(x, y, loss="mse", validation_split=0.001, verbose=False)
    with pytest.raises(ValueError, match="validation_split"):
        sum_model().fit(x, y, loss="mse", validation_split=1.0, verbose=False)


def test_verbose_false_prints_nothing_and_verbose_reports_on_stderr(capfd):
    x, y = sum_task(count=32)
    sum_model().fit(x, y, loss="mse", epochs=2, validation_split=0.25, verbose=False)
    assert capfd.readouterr() == ("", "")
    sum_model().fit(x, y, loss="mse", epochs=2, validation_split=0.25, verbose=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "epoch 2/2" in err and "val_loss" in err and "samples/s" in err


def test_mismatched_sample_counts_are_value_errors():
    x, y = sum_task(count=10)
    with pytest.raises(ValueError, match=r"10 samples.*9"):
        sum_model().fit(x, y[:9], loss="mse", verbose=False)
    with pytest.raises(ValueError, match="lengths for the 10 samples"):
        sum_model().fit(x, y, loss="mse", lengths=np.full(9, 6), verbose=False)
    with pytest.raises(ValueError, match="patience"):
        sum_model().fit(x, y, loss="mse", patience=2, verbose=False)


def test_per_step_tokens_with_lengths_score_only_valid_steps():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 5, size=(24, 7))
    lengths = rng.integers(2, 8, size=24)
    targets = np.roll(ids, -1, axis=1)
    model = Sequential([Embedding(5, 4, padding_idx=0, seed=0), GRU(4, 8, seed=1), Dense(8, 5, seed=2)])
    scored = model.evaluate(ids, targets, loss="cross_entropy", lengths=lengths)
    noisy = targets.copy()
    noisy[np.arange(7) >= lengths[:, None]] = 0  # different classes in the padding
    assert model.evaluate(ids, noisy, loss="cross_entropy", lengths=lengths) == pytest.approx(scored, rel=1e-12)
    history = model.fit(
        ids,
        targets,
        loss="cross_entropy",
        lengths=lengths,
        epochs=2,
        batch_size=8,
        validation_data=(ids, targets, lengths),
        metrics=["accuracy"],
        verbose=False,
    )
    assert {"accuracy", "val_accuracy"} <= set(history.history)
    assert all(0 <= a <= 1 for a in history.history["accuracy"])


def test_schedule_steps_once_per_epoch_and_can_wrap_the_default_optimizer():
    x, y = sum_task(count=32)
    model = sum_model()
    history = model.fit(
        x, y, loss="mse", epochs=4, verbose=False, schedule=lambda opt: optim.StepLR(opt, step_size=2, gamma=0.5)
    )
    assert history.history["lr"] == [1e-3, 1e-3, 5e-4, 5e-4]
    other = optim.SGD(model.params, lr=0.1)
    with pytest.raises(ValueError, match="another optimizer"):
        model.fit(x, y, loss="mse", optimizer=optim.SGD(model.params, lr=0.1), schedule=optim.StepLR(other, 1), verbose=False)


def test_clip_norm_bounds_every_step():
    x, y = sum_task(count=32)
    model = sum_model()
    opt = optim.SGD(model.params, lr=1.0)
    seen = []
    real_step = opt.step

    def step(grads):
        seen.append(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
        real_step(grads)

    opt.step = step
    model.fit(x, y * 100, loss="mse", optimizer=opt, epochs=1, clip_norm=0.5, verbose=False)
    assert max(seen) <= 0.5 + 1e-5
