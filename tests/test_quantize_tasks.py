"""Quantized models on the shipped tasks: the task's own metric on its held-out data
(RMSE of the CO2 forecast, bits per character of the character model, accuracy of the
sentence classifier) within 1% of the float32 model's, for int8 and bfloat16, with the
LSTM, GRU and RNN cells. Each model is trained here briefly, as `lstmcore train` trains it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lstmcore
from lstmcore import datasets
from lstmcore.cli._training import chronological_split
from lstmcore.cli.tasks import charlm, classify, forecast

PRECISIONS = ["int8", "bfloat16"]
quiet = {"verbose": False, "echo": lambda *_: None}


def cross_entropy_bits(logits, targets):
    """Mean cross-entropy in bits per prediction of logits (..., classes)."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probabilities, targets[..., None], axis=-1)
    return float(-picked.mean() / math.log(2))


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def forecaster(request):
    result = forecast.train_forecast(cell=request.param, hidden=32, epochs=30, **quiet)
    _, series = datasets.load_co2()
    x, y, _ = forecast.forecast_windows(series, 24, 1)
    split = chronological_split(len(x), 0.2)
    scale = float(np.std(x[:split]))
    return result, forecast.scaled_windows(x, scale)[split:], y[split:], scale


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_forecast_rmse_stays_within_one_percent(forecaster, precision):
    result, inputs, actual, scale = forecaster
    model = result["model"]
    float_rmse = forecast.rmse(model.predict(inputs).astype(np.float64) * scale, actual)
    assert float_rmse == pytest.approx(result["val_rmse"], rel=1e-6)
    quantized = lstmcore.quantize(model, precision)
    rmse = forecast.rmse(quantized.predict(inputs).astype(np.float64) * scale, actual)
    assert abs(rmse - float_rmse) <= 0.01 * float_rmse


@pytest.fixture(scope="module", params=["lstm", "gru"])
def character_model(request):
    result = charlm.train_charlm(cell=request.param, hidden=64, embedding=32, steps=32, epochs=1, batch_size=32, **quiet)
    content = datasets.load_text("alice")
    vocabulary = charlm.char_vocabulary(content)
    ids = charlm.encode_chars(content, vocabulary)
    split = chronological_split(len(ids), 0.1)
    return result, *charlm.char_sequences(ids[split:], 32)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_bits_per_character_stay_within_one_percent(character_model, precision):
    result, x_val, y_val = character_model
    model = result["model"]
    float_bits = cross_entropy_bits(model.predict(x_val), y_val)
    assert float_bits == pytest.approx(result["val_bpc"], rel=1e-4)
    assert float_bits < result["unigram_bpc"]  # it learned something to lose
    bits = cross_entropy_bits(lstmcore.quantize(model, precision).predict(x_val), y_val)
    assert abs(bits - float_bits) <= 0.01 * float_bits


@pytest.fixture(scope="module")
def classifier():
    result = classify.train_classify(epochs=8, **quiet)
    texts, labels = datasets.load_sentences()
    targets, _ = classify.label_indices(labels)
    held = np.random.default_rng(0).permutation(len(texts))[chronological_split(len(texts), 0.2) :]
    model = result["model"]
    ids, lengths = classify.encode_texts([texts[i] for i in held], model.metadata)
    return result, ids, lengths, targets[held]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_classifier_accuracy_stays_within_one_percent(classifier, precision):
    result, ids, lengths, targets = classifier
    model = result["model"]
    float_accuracy = float(np.mean(model.predict(ids, lengths=lengths).argmax(-1) == targets))
    assert float_accuracy == pytest.approx(result["val_accuracy"])
    assert float_accuracy > result["majority_accuracy"]
    quantized = lstmcore.quantize(model, precision)
    accuracy = float(np.mean(quantized.predict(ids, lengths=lengths).argmax(-1) == targets))
    assert abs(accuracy - float_accuracy) <= 0.01 * float_accuracy
