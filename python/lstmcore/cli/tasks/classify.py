"""The ``classify`` task: a text classifier trained on the texts and labels of a CSV file
(default: the shipped sentences, labelled by author).

CSV texts and labels become padded token ids, lengths and class indices; ``lstmcore
predict`` names the class of new texts.
"""

from __future__ import annotations

import re

import numpy as np

import lstmcore
from lstmcore import datasets
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._cells import layer_text, recurrent_layer
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_paths, read_csv_columns
from lstmcore.cli._limits import BOUNDS, check_model_size, lstm_parameters
from lstmcore.cli._training import check_model_output, chronological_split, count_params, save_trained

NAME = "classify"
SHIPPED_SENTENCES = "the shipped sentences labelled carroll / shakespeare"


def add_parsers(train_tasks, commands):
    """``lstmcore train classify``; a classify model is run by ``lstmcore predict``."""
    defaults = arguments.defaults(train_classify)
    parser = train_tasks.add_parser(
        "classify",
        help="classify texts from a CSV (default: shipped sentences by author)",
        description="Train Embedding -> LSTM -> LastStep -> Dense on texts and labels from a CSV file; a random "
        "fraction is held out and its accuracy printed next to the majority-class baseline.",
    )
    parser.add_argument("--csv", metavar="FILE", help="CSV file with a header row (default: the shipped sentences)")
    parser.add_argument("--text-column", default=defaults["text_column"], help="default %(default)s")
    parser.add_argument("--label-column", default=defaults["label_column"], help="default %(default)s")
    parser.add_argument("--tokens", choices=("word", "char"), default=defaults["tokens"], help="default %(default)s")
    parser.add_argument(
        "--vocabulary-size",
        type=arguments.whole_number("vocabulary_size"),
        default=defaults["vocabulary_size"],
        help="most frequent tokens kept (default %(default)s)",
    )
    parser.add_argument(
        "--max-steps",
        type=arguments.whole_number("max_steps"),
        default=defaults["max_steps"],
        help="tokens kept per text (default %(default)s)",
    )
    parser.add_argument(
        "--embedding",
        type=arguments.whole_number("embedding"),
        default=defaults["embedding"],
        help="embedding size (default %(default)s)",
    )
    arguments.training_options(parser, defaults, out="classify.npz")
    parser.set_defaults(run=arguments.train_runner(train_classify))


# ----------------------------------------------------------------------------- data

PAD, UNKNOWN = "<pad>", "<unk>"
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]")


def tokenize(text, unit):
    """``unit`` "word": lower-case words and single punctuation marks; "char": characters."""
    if unit == "char":
        return list(text)
    return _WORD.findall(text.lower())


def token_vocabulary(token_lists, max_size):
    """``[PAD, UNKNOWN]`` then the most frequent tokens (ties alphabetical), at most
    ``max_size`` entries in all."""
    counts = {}
    for tokens in token_lists:
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    return [PAD, UNKNOWN] + ranked[: max(0, max_size - 2)]


def encode_padded(token_lists, vocabulary, max_steps):
    """ids (N, T) int64 padded with 0 (PAD), lengths (N,) in [1, T]; T = the longest
    sequence, at most ``max_steps`` (longer ones keep their first ``max_steps`` tokens).
    An empty sequence becomes one UNKNOWN token."""
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = index[UNKNOWN]
    encoded = [[index.get(t, unknown) for t in tokens[:max_steps]] or [unknown] for tokens in token_lists]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    ids = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
    for row, sequence in enumerate(encoded):
        ids[row, : len(sequence)] = sequence
    return ids, lengths


def encode_texts(texts, meta):
    """Texts as a classify model (its ``metadata``) reads them: ``encode_padded`` of their
    tokens with the model's vocabulary and step limit."""
    token_lists = [tokenize(text, meta["tokens"]) for text in texts]
    return encode_padded(token_lists, meta["vocabulary"], int(meta["max_steps"]))


def label_indices(labels, classes=None):
    """Class indices (N,) int64 and the sorted class names (given or found)."""
    labels = [label.strip() for label in labels]
    if classes is None:
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise TaskError(f"expected at least 2 distinct labels, got {classes}")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise TaskError(f"labels not known to the model: {unknown[:5]}")
    return np.array([index[label] for label in labels], dtype=np.int64), list(classes)


# ----------------------------------------------------------------------------- training


def train_classify(
    *,
    csv=None,
    text_column="text",
    label_column="label",
    tokens="word",
    vocabulary_size=5000,
    max_steps=60,
    embedding=64,
    cell="lstm",
    hidden=64,
    layers=1,
    epochs=10,
    batch_size=32,
    lr=0.005,
    validation=0.2,
    seed=0,
    out=None,
    verbose=True,
    echo=print,
    fit_options=None,
):
    """Embedding -> LSTM -> LastStep -> Dense classifier of texts (word or character tokens).

    A seeded random ``validation`` fraction of the rows is held out (rows of a CSV are
    often sorted by label); the vocabulary comes from the training rows only. Validation
    accuracy is reported next to the majority-class baseline (always answer the most
    frequent training label).
    """
    check_output_paths(out)
    check_model_output(out)
    if csv is None:
        texts, labels = datasets.load_sentences()
        source, text_column, label_column = SHIPPED_SENTENCES, "text", "label"
    else:
        texts, labels = read_csv_columns(csv, [text_column, label_column])
        source = f"{csv}, columns {text_column!r} / {label_column!r}"
    if len(texts) < 4:
        raise TaskError(f"{len(texts)} rows are too few to train and validate on")
    targets, classes = label_indices(labels)
    order = np.random.default_rng(seed).permutation(len(texts))
    split = chronological_split(len(texts), validation)
    train, held = order[:split], order[split:]
    token_lists = [tokenize(text, tokens) for text in texts]
    vocabulary = token_vocabulary([token_lists[i] for i in train], vocabulary_size)
    check_model_size(
        parameters=len(vocabulary) * embedding + lstm_parameters(embedding, hidden, layers) + (hidden + 1) * len(classes),
        batch_size=batch_size,
        steps=max_steps,
        hidden=hidden,
        layers=layers,
    )
    ids, lengths = encode_padded(token_lists, vocabulary, max_steps)
    echo(
        f"classify: {len(texts)} texts from {source}; {len(classes)} classes {classes}; "
        f"{tokens} tokens, vocabulary {len(vocabulary)}; {len(train)} training and {len(held)} validation rows"
    )
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(len(vocabulary), embedding, padding_idx=0, seed=seed),
            recurrent_layer(cell, embedding, hidden, layers, seed + 1),
            lstmcore.LastStep(),
            lstmcore.Dense(hidden, len(classes), seed=seed + 2),
        ]
    )
    optimizer = lstmcore.optim.Adam(model.params, lr=lr)
    history = model.fit(
        ids[train],
        targets[train],
        lengths=lengths[train],
        loss="cross_entropy",
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(ids[held], targets[held], lengths[held]),
        restore_best_weights=False,
        clip_norm=5.0,
        seed=seed,
        verbose=verbose,
        **(fit_options or {}),
        metrics=["accuracy"],
    )
    predicted = model.predict(ids[held], lengths=lengths[held]).argmax(axis=-1)
    majority = int(np.bincount(targets[train], minlength=len(classes)).argmax())
    result = {
        "val_accuracy": float(np.mean(predicted == targets[held])),
        "majority_accuracy": float(np.mean(targets[held] == majority)),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    echo(
        f"model: Embedding({len(vocabulary)}, {embedding}) -> {layer_text(cell, embedding, hidden, layers)} "
        f"-> LastStep -> Dense({hidden}, {len(classes)}), {count_params(model):,} parameters, {history.epochs} epochs"
    )
    verdict = "beats" if result["val_accuracy"] > result["majority_accuracy"] else "does NOT beat"
    echo(
        f"validation accuracy {result['val_accuracy']:.1%} (majority class {classes[majority]!r}: "
        f"{result['majority_accuracy']:.1%}): the model {verdict} the baseline"
    )
    model.metadata = {
        "task": "classify",
        "source": str(source),
        "tokens": tokens,
        "vocabulary": vocabulary,
        "max_steps": max_steps,
        "classes": classes,
        "val_accuracy": result["val_accuracy"],
        "majority_accuracy": result["majority_accuracy"],
    }
    save_trained(model, out, echo)
    result["model"] = model
    return result


# ----------------------------------------------------------------------------- a trained model


def check_metadata(model, entries):
    if entries.meta.get("tokens") not in ("word", "char"):
        raise entries.refuse("tokens", "'word' or 'char'")
    vocabulary = entries.names("vocabulary", 2)
    if vocabulary[0] != PAD or UNKNOWN not in vocabulary:
        raise entries.refuse("vocabulary", f"a list starting with {PAD!r} and holding {UNKNOWN!r}")
    entries.whole_number("max_steps", *BOUNDS["max_steps"])
    classes = entries.names("classes", 2)
    ids = np.array([[len(vocabulary) - 1]], np.int64)
    entries.probe(model, ids, (1, len(classes)), f"the ids of its {len(vocabulary)} tokens", lengths=np.ones(1, np.int64))


def classify_texts(model, texts):
    """Class names and probabilities (N, C) for a list of texts, from a classify model."""
    meta = model.metadata
    ids, lengths = encode_texts(texts, meta)
    logits = model.predict(ids, lengths=lengths).astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    return [meta["classes"][i] for i in probabilities.argmax(axis=-1)], probabilities


def predict(model, args):
    """``lstmcore predict``: the class, its probability and the text of each ``--text`` or
    CSV row."""
    if args.text:
        texts = list(args.text)
    elif args.csv is not None:
        (texts,) = read_csv_columns(args.csv, [args.column or "text"])
        if not texts:
            raise TaskError(f"{args.csv}: no rows to classify")
    else:
        raise TaskError("a classify model needs texts: --text TEXT (repeatable) or --csv FILE --column NAME")
    names, probabilities = classify_texts(model, texts)
    for text, name, row in zip(texts, names, probabilities):
        print(f"{name}\t{row.max():.3f}\t{text}")
    return 0


def inspection_data(model, path, args, targets):
    """``lstmcore inspect``: the texts of DATA, a CSV file, tokenised and padded as in
    training; their labels when ``targets``."""
    meta = model.metadata
    texts, *raw = read_csv_columns(path, [args.text_column] + ([args.label_column] if targets else []))
    if not texts:
        raise TaskError(f"{path}: no rows")
    ids, lengths = encode_texts(texts, meta)
    labels = label_indices(raw[0], meta["classes"])[0] if targets else None
    return ids, labels, lengths, "cross_entropy", f"{len(texts)} texts of column {args.text_column!r}"
