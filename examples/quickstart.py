"""Train a small LSTM to sum a noisy sequence, with lstmcore's explicit forward/backward.

The task: read a sequence of 20 numbers and predict their running sum at every step.
The readout and the optimizer are written out in NumPy so the whole loop is visible.
"""

import numpy as np

import lstmcore

rng = np.random.default_rng(0)
steps, batch, hidden = 20, 32, 32

lstm = lstmcore.LSTM(input_size=1, hidden_size=hidden, seed=0)
readout = rng.normal(scale=0.1, size=(hidden, 1)).astype(np.float32)
learning_rate = 0.01
moments = {}


def adam(name, param, grad, step, beta1=0.9, beta2=0.999):
    m, v = moments.get(name, (np.zeros_like(param), np.zeros_like(param)))
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    moments[name] = (m, v)
    param -= learning_rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)


for step in range(1, 301):
    x = rng.uniform(-1, 1, size=(batch, steps, 1)).astype(np.float32)
    target = np.cumsum(x, axis=1) / 4

    y, _, tape = lstm.forward(x)  # y: (batch, steps, hidden)
    prediction = y @ readout
    error = prediction - target
    loss = float(np.mean(error**2))

    d_prediction = 2 * error / error.size
    d_readout = y.reshape(-1, hidden).T @ d_prediction.reshape(-1, 1)
    lstm.zero_grad()
    lstm.backward(tape, d_prediction @ readout.T)

    adam("readout", readout, d_readout, step)
    for name in lstm.params:
        adam(name, lstm.params[name], lstm.grads[name], step)
    if step == 1 or step % 50 == 0:
        print(f"step {step:4d}  loss {loss:.5f}")
