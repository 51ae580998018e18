"""A character-level LSTM language model of Alice's Adventures in Wonderland, and sampling.

Training predicts every next character of 64-character sequences. Sampling feeds one
character at a time and carries the LSTM's (h, c) state from step to step.
``lstmcore train charlm`` and ``lstmcore generate`` do the same from the command line.
"""

import numpy as np

import lstmcore
from lstmcore import datasets

text = datasets.load_text("alice")
vocabulary = sorted(set(text))
index = {char: i for i, char in enumerate(vocabulary)}
ids = np.array([index[char] for char in text], dtype=np.int64)

steps = 64
split = int(len(ids) * 0.9)  # the last 10% of the book is the validation text


def sequences(part):
    """(inputs, targets), each (N, steps): the targets are the inputs shifted by one."""
    count = (len(part) - 1) // steps
    return part[: count * steps].reshape(count, steps), part[1 : count * steps + 1].reshape(count, steps)


x_train, y_train = sequences(ids[:split])
x_val, y_val = sequences(ids[split:])

size = len(vocabulary)
embedding, lstm, dense = (
    lstmcore.Embedding(size, 64, seed=0),  # (B, T) ids -> (B, T, 64)
    lstmcore.LSTM(64, 128, seed=1),  # -> (B, T, 128)
    lstmcore.Dense(128, size, seed=2),  # -> (B, T, size): logits of the next character
)
model = lstmcore.Sequential([embedding, lstm, dense], metadata={"vocabulary": "".join(vocabulary)})
history = model.fit(
    x_train,
    y_train,
    loss="cross_entropy",
    optimizer=lstmcore.optim.Adam(model.params, lr=0.01),
    epochs=5,
    batch_size=16,
    clip_norm=5.0,
    validation_data=(x_val, y_val),
    verbose=True,
)
print(f"validation: {history.history['val_loss'][-1] / np.log(2):.2f} bits per character")


def sample(prime, length=300, temperature=0.8, seed=0):
    rng = np.random.default_rng(seed)
    state = None
    x = np.array([[index[char] for char in prime]])  # (1, len(prime))
    out = list(prime)
    for _ in range(length):
        h, state = lstm(embedding.forward(x)[0], state)  # carry (h, c) to the next step
        logits = dense.forward(h[:, -1])[0][0] / temperature
        p = np.exp(logits - logits.max())
        choice = rng.choice(size, p=p / p.sum())
        out.append(vocabulary[choice])
        x = np.array([[choice]])
    return "".join(out)


print(sample("Alice was "))
