"""Why gates: a vanilla RNN, a GRU and an LSTM on the adding problem, and how far back in
time the gradient reaches in each.

The adding problem (Hochreiter and Schmidhuber, 1997): a sequence of 100 numbers in [0, 1]
with two of them marked, one in each half; the target is their sum. The first marked
number must be held for 50 to 99 steps. Predicting the constant 1 scores an MSE of 1/6.

The layer's ``backward(..., return_hidden_gradients=True)`` gives dL/dh_t at every step (as
does ``lstmcore.inspect.hidden_gradients``). Here L is the mean of the
model's predictions, so its gradient measures how much h_t still moves the prediction at
the last step, whatever the remaining error. ``lstmcore demo memory`` does the same from
the command line, with a plot (``--plot memory.png``).
"""

import numpy as np

import lstmcore
from lstmcore import datasets

steps, hidden = 100, 32
x_train, y_train = datasets.adding_problem(10_000, steps, seed=0)  # (N, 100, 2), (N, 1)
x_val, y_val = datasets.adding_problem(1000, steps, seed=1)
print(f"predicting 1: validation MSE {float(((y_val - 1) ** 2).mean()):.3f}")


def prediction_gradient_norms(model, x):
    """Mean over the batch of ||dL/dh_t|| at each step t, L the mean prediction."""
    recurrent, last_step, dense = model.layers
    y, _, tape = recurrent.forward(x, training=False)  # (B, T, H)
    last, last_tape = last_step.forward(y)  # (B, H)
    prediction, dense_tape = dense.forward(last)  # (B, 1)
    d_prediction = np.full_like(prediction, 1.0 / len(prediction))
    dy = last_step.backward(last_tape, dense.backward(dense_tape, d_prediction))  # (B, T, H), zero before T-1
    _, _, gradients = recurrent.backward(tape, dy, return_hidden_gradients=True)  # (1, T, B, H)
    dense.zero_grad()
    recurrent.zero_grad()  # the weight gradients that backward added are not wanted here
    gradients = gradients[0]  # (T, B, H) of the one layer
    return np.linalg.norm(gradients.astype(np.float64), axis=2).mean(axis=1)  # (T,)


shown = [0, steps // 4, steps // 2, 3 * steps // 4, steps - 1]
for kind in (lstmcore.RNN, lstmcore.GRU, lstmcore.LSTM):
    model = lstmcore.Sequential([kind(2, hidden, seed=0), lstmcore.LastStep(), lstmcore.Dense(hidden, 1, seed=1)])
    before = prediction_gradient_norms(model, x_val[:100])
    model.fit(
        x_train,
        y_train,
        loss="mse",
        optimizer=lstmcore.optim.Adam(model.params, lr=1e-2),
        epochs=20,
        batch_size=64,
        validation_data=(x_val, y_val),
        clip_norm=1.0,
        verbose=False,
    )
    after = prediction_gradient_norms(model, x_val[:100])
    print(f"{kind.__name__}: validation MSE {model.evaluate(x_val, y_val, loss='mse'):.4f}")
    print("  t      " + "".join(f"{t:>9}" for t in shown))
    print("  before " + "".join(f"{before[t]:9.1e}" for t in shown))
    print("  after  " + "".join(f"{after[t]:9.1e}" for t in shown))
