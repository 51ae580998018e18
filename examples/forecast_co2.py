"""Forecast monthly CO2 at Mauna Loa one month ahead with an LSTM, against the naive forecast.

The model sees 24-month windows and predicts the next month. Both are taken relative to
the window's last value (and scaled), so the model learns the seasonal changes and keeps
working at CO2 levels above any it saw in training. ``lstmcore train forecast`` does the
same from the command line.
"""

import numpy as np

import lstmcore
from lstmcore import datasets

months, co2 = datasets.load_co2()  # (526,) datetime64[M], (526,) ppmv
window = 24

starts = np.arange(len(co2) - window)
past = co2[starts[:, None] + np.arange(window)]  # (N, 24)
last = past[:, -1:]  # (N, 1)
x = past - last  # the window relative to its last value
y = co2[starts + window, None] - last  # (N, 1): next month's change

split = int(len(x) * 0.8)  # the latest 20% of windows, in time order, are the validation set
scale = x[:split].std()
x_scaled = (x / scale)[..., None].astype(np.float32)  # (N, 24, 1): (B, T, F)
y_scaled = (y / scale).astype(np.float32)

model = lstmcore.Sequential(
    [
        lstmcore.LSTM(1, 64, seed=0),  # (B, 24, 1) -> (B, 24, 64)
        lstmcore.LastStep(),  # -> (B, 64)
        lstmcore.Dense(64, 1, seed=1),  # -> (B, 1)
    ]
)
epochs = 100
optimizer = lstmcore.optim.Adam(model.params, lr=0.005)
history = model.fit(
    x_scaled[:split],
    y_scaled[:split],
    loss="mse",
    optimizer=optimizer,
    schedule=lstmcore.optim.CosineLR(optimizer, total_steps=epochs),
    epochs=epochs,
    batch_size=32,
    validation_data=(x_scaled[split:], y_scaled[split:]),
    restore_best_weights=False,  # we report on the validation set: do not pick weights on it
    verbose=False,
)

change = model.predict(x_scaled[split:]) * scale  # predicted change, ppmv
rmse = np.sqrt(np.mean((change - y[split:]) ** 2))
naive = np.sqrt(np.mean(y[split:] ** 2))  # the naive forecast: no change
print(f"training loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.4f}")
print(f"validation {months[window + split]} .. {months[-1]}: RMSE {rmse:.3f} ppmv, naive last value {naive:.3f} ppmv")

# The next month after the data, from the last 24 months:
recent = co2[-window:]
inputs = ((recent - recent[-1]) / scale)[None, :, None].astype(np.float32)
print(f"forecast for 2002-01: {recent[-1] + model.predict(inputs)[0, 0] * scale:.2f} ppmv")

model.metadata = {"task": "forecast", "window": window, "horizon": 1, "scale": float(scale), "column": "co2"}
model.save("co2_forecast.npz")  # lstmcore.load("co2_forecast.npz") brings it back, metadata included
