"""The ``charlm`` task: a character-level language model of a text (default: the shipped
Alice's Adventures in Wonderland), and ``lstmcore generate``, which samples from one.

A text becomes a character vocabulary and (input, next character) sequences.
"""

from __future__ import annotations

import math

import numpy as np

import lstmcore
from lstmcore import datasets
from lstmcore.cli import _arguments as arguments
from lstmcore.cli._cells import layer_text, recurrent_layer
from lstmcore.cli._errors import TaskError
from lstmcore.cli._files import check_output_paths, read_text
from lstmcore.cli._limits import BOUNDS, MAX_VOCABULARY, check_model_size, lstm_parameters
from lstmcore.cli._model_files import load_model
from lstmcore.cli._training import check_model_output, chronological_split, count_params, save_trained
from lstmcore.inference import PreparedLayer, prepare
from lstmcore.rnn._recurrent import _GatedRecurrent

NAME = "charlm"
SHIPPED_TEXT = "the shipped text, Alice's Adventures in Wonderland"
# A character model generates text instead (``lstmcore generate``).
predict = None


def add_parsers(train_tasks, commands):
    """``lstmcore train charlm`` and ``lstmcore generate``."""
    defaults = arguments.defaults(train_charlm)
    parser = train_tasks.add_parser(
        "charlm",
        help="a character-level language model (default: shipped Alice in Wonderland)",
        description="Train Embedding -> LSTM -> Dense to predict each next character of a text; the end of "
        "the text is held out and its bits per character printed next to a unigram baseline.",
    )
    parser.add_argument("--text", metavar="FILE", help="UTF-8 text file (default: the shipped text)")
    parser.add_argument(
        "--steps",
        type=arguments.whole_number("steps"),
        default=defaults["steps"],
        help="characters per training sequence (default %(default)s)",
    )
    parser.add_argument(
        "--embedding",
        type=arguments.whole_number("embedding"),
        default=defaults["embedding"],
        help="embedding size (default %(default)s)",
    )
    arguments.training_options(parser, defaults, out="charlm.npz")
    parser.set_defaults(run=arguments.train_runner(train_charlm))

    parser = commands.add_parser(
        "generate",
        help="sample text from a charlm model",
        description="Sample text from a model made by `lstmcore train charlm`, one character at a time.",
    )
    parser.add_argument("model", metavar="MODEL", help="model file (.npz or .safetensors)")
    parser.add_argument(
        "--length", type=arguments.whole_number("length"), default=300, help="characters to sample (default %(default)s)"
    )
    parser.add_argument(
        "--temperature",
        type=arguments.sampling_temperature,
        default=0.8,
        help="below 1: safer, above 1: wilder (default %(default)s)",
    )
    parser.add_argument("--prime", default="The ", help="text to start from (default %(default)r)")
    parser.add_argument("--seed", type=arguments.whole_number("seed"), default=None, help="sampling seed (default: random)")
    parser.set_defaults(run=run_generate)


# ----------------------------------------------------------------------------- data


def char_vocabulary(text):
    """The sorted distinct characters of a text."""
    if not text:
        raise TaskError("the text is empty")
    return sorted(set(text))


def encode_chars(text, vocabulary):
    """A text as int64 ids into ``vocabulary``; characters outside it are an error."""
    index = {char: i for i, char in enumerate(vocabulary)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        shown = "".join(unknown[:10])
        raise TaskError(f"characters not in the model's vocabulary: {shown!r}")
    return np.fromiter((index[char] for char in text), dtype=np.int64, count=len(text))


def char_sequences(ids, steps):
    """Non-overlapping (input, next-character target) pairs: x, y (N, steps) int64."""
    count = (len(ids) - 1) // steps
    if count < 1:
        raise TaskError(f"a text of {len(ids)} characters is too short for sequences of {steps}")
    x = ids[: count * steps].reshape(count, steps)
    y = ids[1 : count * steps + 1].reshape(count, steps)
    return x, y


def unigram_nats(train_ids, validation_ids, size):
    """Mean cross-entropy (nats/char) of the validation ids under training frequencies
    (add-one smoothed): the baseline a character model must beat."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-np.mean(log_probs[validation_ids]))


# ----------------------------------------------------------------------------- training


def train_charlm(
    *,
    text=None,
    steps=64,
    embedding=64,
    cell="lstm",
    hidden=128,
    layers=1,
    epochs=10,
    batch_size=16,
    lr=0.01,
    validation=0.1,
    seed=0,
    out=None,
    verbose=True,
    echo=print,
    fit_options=None,
):
    """Embedding -> LSTM -> Dense character model: predicts every next character.

    The last ``validation`` fraction of the text is held out; its cross-entropy is
    reported in bits per character next to the unigram model (character frequencies of
    the training text), which knows nothing about order.
    """
    check_output_paths(out)
    check_model_output(out)
    if text is None:
        content, source = datasets.load_text("alice"), SHIPPED_TEXT
    else:
        content, source = read_text(text), str(text)
    vocabulary = char_vocabulary(content)
    ids = encode_chars(content, vocabulary)
    split = chronological_split(len(ids), validation)
    x_train, y_train = char_sequences(ids[:split], steps)
    x_val, y_val = char_sequences(ids[split:], steps)
    size = len(vocabulary)
    check_model_size(
        parameters=size * embedding + lstm_parameters(embedding, hidden, layers) + (hidden + 1) * size,
        batch_size=batch_size,
        steps=steps,
        hidden=hidden,
        layers=layers,
        outputs_per_step=size,
    )
    echo(
        f"charlm: {len(content):,} characters ({size} distinct) from {source}; "
        f"{len(x_train)} training and {len(x_val)} validation sequences of {steps}"
    )
    model = lstmcore.Sequential(
        [
            lstmcore.Embedding(size, embedding, seed=seed),
            recurrent_layer(cell, embedding, hidden, layers, seed + 1),
            lstmcore.Dense(hidden, size, seed=seed + 2),
        ]
    )
    optimizer = lstmcore.optim.Adam(model.params, lr=lr)
    history = model.fit(
        x_train,
        y_train,
        loss="cross_entropy",
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_val, y_val),
        restore_best_weights=False,
        clip_norm=5.0,
        seed=seed,
        verbose=verbose,
        **(fit_options or {}),
    )
    nats = model.evaluate(x_val, y_val, loss="cross_entropy")
    unigram = unigram_nats(ids[:split], ids[split:], size)
    result = {
        "val_loss": nats,
        "val_bpc": nats / math.log(2),
        "unigram_bpc": unigram / math.log(2),
        "loss": history.history["loss"],
        "epochs": history.epochs,
    }
    echo(
        f"model: Embedding({size}, {embedding}) -> {layer_text(cell, embedding, hidden, layers)} -> "
        f"Dense({hidden}, {size}), {count_params(model):,} parameters, {history.epochs} epochs"
    )
    verdict = "beats" if result["val_bpc"] < result["unigram_bpc"] else "does NOT beat"
    echo(
        f"validation loss {nats:.4f} nats = {result['val_bpc']:.3f} bits per character "
        f"(unigram baseline {result['unigram_bpc']:.3f}): the model {verdict} the baseline"
    )
    model.metadata = {
        "task": "charlm",
        "source": str(source),
        "vocabulary": "".join(vocabulary),
        "steps": steps,
        "val_bpc": result["val_bpc"],
        "unigram_bpc": result["unigram_bpc"],
    }
    save_trained(model, out, echo)
    result["model"] = model
    return result


# ----------------------------------------------------------------------------- a trained model


def check_metadata(model, entries):
    vocabulary = entries.text("vocabulary")
    if not 1 <= len(vocabulary) <= MAX_VOCABULARY or len(set(vocabulary)) != len(vocabulary):
        raise entries.refuse("vocabulary", f"a string of 1 to {MAX_VOCABULARY:,} distinct characters")
    entries.whole_number("steps", *BOUNDS["steps"])
    size = len(vocabulary)
    # the last id: an Embedding smaller than the vocabulary refuses it
    ids = np.array([[size - 1]], np.int64)
    entries.probe(model, ids, (1, 1, size), f"the ids of its {size} characters")


def _step_layers(layers, x, states):
    """Run ``x`` (B, T) ids through the layers, carrying each recurrent layer's state."""
    new_states = []
    recurrent = 0
    for layer in layers:
        if isinstance(layer, PreparedLayer):
            x, state = layer(x, states[recurrent] if states else None)
            new_states.append(state)
            recurrent += 1
        else:
            x, _ = layer.forward(x)
    return x, new_states


def generate(model, *, length=300, temperature=0.8, prime="The ", seed=None):
    """Sample ``length`` characters after ``prime`` from a charlm model, one at a time.

    Returns the prime followed by the sampled text. Each step feeds one character and
    carries every LSTM's (h, c) state, so the model sees all that came before.
    """
    vocabulary = model.metadata.get("vocabulary")
    if not isinstance(vocabulary, str) or not vocabulary:
        raise TaskError("the model has no character vocabulary in its metadata")
    if not prime:
        raise TaskError("--prime must hold at least one character")
    if not temperature > 0:
        raise TaskError(f"--temperature must be > 0, got {temperature}")
    unknown = sorted(set(prime) - set(vocabulary))
    if unknown:
        raise TaskError(
            f"--prime holds characters the model never saw: {''.join(unknown)!r} (its vocabulary: {vocabulary!r})"
        )
    index = {char: i for i, char in enumerate(vocabulary)}
    rng = np.random.default_rng(seed)
    # A call per character: the recurrent layers prepared once, not converted each call.
    layers = [prepare(layer) if isinstance(layer, _GatedRecurrent) else layer for layer in model.layers]
    logits, states = _step_layers(layers, np.array([[index[c] for c in prime]], dtype=np.int64), None)
    produced = []
    for _ in range(length):
        scores = logits[0, -1].astype(np.float64) / temperature
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        choice = int(rng.choice(len(vocabulary), p=probabilities))
        produced.append(vocabulary[choice])
        logits, states = _step_layers(layers, np.array([[choice]], dtype=np.int64), states)
    return prime + "".join(produced)


def run_generate(args):
    """``lstmcore generate MODEL``: print a sample of a charlm model."""
    model = load_model(args.model, {NAME: check_metadata})
    print(generate(model, length=args.length, temperature=args.temperature, prime=args.prime, seed=args.seed))
    return 0


def inspection_data(model, path, args, targets):
    """``lstmcore inspect``: DATA, a UTF-8 text, cut into sequences of the model's length."""
    meta = model.metadata
    text = read_text(path)
    ids = encode_chars(text, list(meta["vocabulary"]))
    x, y = char_sequences(ids, int(meta["steps"]))
    return x, y, None, "cross_entropy", f"{len(x)} sequences of {int(meta['steps'])} characters"
