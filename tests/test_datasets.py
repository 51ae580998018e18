"""The shipped data sets: the loaders return what their docstrings promise."""

import os

import numpy as np
import pytest

from lstmcore import datasets


def test_load_co2_returns_monthly_series_1958_to_2001():
    months, co2 = datasets.load_co2()
    assert months.dtype == np.dtype("datetime64[M]") and co2.dtype == np.float64
    assert months.shape == co2.shape == (526,)
    assert months[0] == np.datetime64("1958-03") and months[-1] == np.datetime64("2001-12")
    assert np.all(np.diff(months) == np.timedelta64(1, "M"))  # no month missing
    assert np.all((co2 > 310) & (co2 < 380)) and co2[-12:].mean() > co2[:12].mean() + 50


def test_load_text_alice_is_plain_ascii_without_gutenberg_header():
    text = datasets.load_text("alice")
    assert isinstance(text, str) and len(text) == 148_480
    assert len(set(text)) == 72 and text.isascii() and "\r" not in text
    assert "ALICE'S ADVENTURES IN WONDERLAND" in text[:200] and text.rstrip().endswith("THE END")
    assert "gutenberg" not in text.lower()


def test_load_text_unknown_name_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="alice"):
        datasets.load_text("moby")


def test_load_sentences_returns_labelled_texts_of_two_authors():
    texts, labels = datasets.load_sentences()
    assert len(texts) == len(labels) == 2004
    assert all(isinstance(t, str) and 20 <= len(t) <= 200 for t in texts)
    assert labels.count("carroll") == 1014 and labels.count("shakespeare") == 990


def test_shipped_files_are_small_and_documented():
    folder = os.path.dirname(datasets.path("co2_monthly.csv"))
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as file:
        readme = file.read()
    names = ["co2_monthly.csv", "alice_in_wonderland.txt", "sentences.csv"]
    assert sum(os.path.getsize(datasets.path(name)) for name in names) < 1_500_000
    for name in names:
        assert name in readme
    assert "public domain" in readme.lower()
    with pytest.raises(ValueError, match="shipped files"):
        datasets.path("missing.csv")
