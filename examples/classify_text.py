"""Classify sentences by author (Lewis Carroll or Shakespeare) with an LSTM over words.

Sentences have different lengths: they are padded with id 0 and ``lengths`` tells the
LSTM and LastStep where each one ends. ``lstmcore train classify --csv FILE`` does the
same from the command line for any CSV of texts and labels.
"""

import re

import numpy as np

import lstmcore
from lstmcore import datasets

texts, labels = datasets.load_sentences()  # 2,004 sentences, "carroll" / "shakespeare"
classes = sorted(set(labels))
y = np.array([classes.index(label) for label in labels])

words = [re.findall(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]", text.lower()) for text in texts]
rng = np.random.default_rng(0)
order = rng.permutation(len(texts))
train, held = order[:1600], order[1600:]

# vocabulary from the training sentences only: 0 = padding, 1 = unknown word
counts = {}
for i in train:
    for word in words[i]:
        counts[word] = counts.get(word, 0) + 1
vocabulary = ["<pad>", "<unk>"] + sorted(counts, key=lambda w: (-counts[w], w))
index = {word: i for i, word in enumerate(vocabulary)}

lengths = np.array([max(1, len(w)) for w in words])
ids = np.zeros((len(texts), lengths.max()), dtype=np.int64)  # (N, T), padded with 0
for row, sentence in enumerate(words):
    ids[row, : len(sentence)] = [index.get(word, 1) for word in sentence]

model = lstmcore.Sequential(
    [
        lstmcore.Embedding(len(vocabulary), 64, padding_idx=0, seed=0),  # (B, T) -> (B, T, 64)
        lstmcore.LSTM(64, 64, seed=1),  # -> (B, T, 64)
        lstmcore.LastStep(),  # -> (B, 64): the output at each sentence's last word
        lstmcore.Dense(64, len(classes), seed=2),  # -> (B, 2) logits
    ]
)
model.fit(
    ids[train],
    y[train],
    lengths=lengths[train],
    loss="cross_entropy",
    optimizer=lstmcore.optim.Adam(model.params, lr=0.005),
    epochs=8,
    batch_size=32,
    clip_norm=5.0,
    validation_data=(ids[held], y[held], lengths[held]),
    restore_best_weights=False,
    metrics=["accuracy"],
    verbose=False,
)

predicted = model.predict(ids[held], lengths=lengths[held]).argmax(axis=-1)
majority = np.bincount(y[train]).argmax()
print(f"validation accuracy {np.mean(predicted == y[held]):.1%}, majority class {np.mean(y[held] == majority):.1%}")
for row, i in enumerate(held[:5]):
    print(f"  {classes[predicted[row]]:12s} (true {labels[i]:12s}) {texts[i][:70]}")
