"""Small real data sets shipped with lstmcore, as plain NumPy arrays and Python objects.

Each file's source, licence and preparation are in ``lstmcore/data/README.md``.

- ``load_co2()``: monthly mean atmospheric CO2 at Mauna Loa, March 1958 - December 2001,
  a series for forecasting.
- ``load_text("alice")``: Lewis Carroll's *Alice's Adventures in Wonderland* (1865), a
  public-domain text for a character model.
- ``load_sentences()``: 2,004 sentences labelled by which of two public-domain books they
  come from (Carroll or Shakespeare's *As You Like It*), for sequence classification.

And one made on the spot, not shipped:

- ``adding_problem(count, steps)``: Hochreiter and Schmidhuber's (1997) test of memory
  over many steps.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np

__all__ = ["load_co2", "load_text", "load_sentences", "adding_problem", "path", "TEXTS"]

#: Names accepted by ``load_text`` and the files they read.
TEXTS = {"alice": "alice_in_wonderland.txt"}

_FILES = ("co2_monthly.csv", "alice_in_wonderland.txt", "sentences.csv")


def path(name: str) -> str:
    """The path of a shipped data file, e.g. ``path("co2_monthly.csv")``, as a string.

    Use it to hand a shipped file to code that reads files (``lstmcore train forecast
    --csv``, ``csv``, ``pandas``).
    """
    if name not in _FILES:
        raise ValueError(f"expected one of the shipped files {list(_FILES)}, got {name!r}")
    return str(resources.files("lstmcore") / "data" / name)


def _read(name: str) -> str:
    return (resources.files("lstmcore") / "data" / name).read_text(encoding="utf-8")


def load_co2() -> tuple[np.ndarray, np.ndarray]:
    """Monthly mean CO2 at Mauna Loa Observatory, Hawaii, in ppmv (parts per million).

    Returns ``(months, co2)``: ``months`` is a (526,) ``datetime64[M]`` array from
    1958-03 to 2001-12, ``co2`` a (526,) float64 array. Each value is the mean of that
    month's weekly averages; the 5 months without any weekly value (1958-06, 1958-10,
    1964-02..04) are linearly interpolated (the file's ``weeks`` column is 0 there).
    """
    rows = list(csv.DictReader(io.StringIO(_read("co2_monthly.csv"))))
    months = np.array([row["month"] for row in rows], dtype="datetime64[M]")
    co2 = np.array([float(row["co2"]) for row in rows], dtype=np.float64)
    return months, co2


def load_text(name: str = "alice") -> str:
    """A public-domain English text as one ``str`` (``\\n`` line ends).

    ``"alice"``: *Alice's Adventures in Wonderland*, the Millennium Fulcrum Edition 2.9,
    148,480 characters of 72 distinct ones (plain ASCII).
    """
    if name not in TEXTS:
        raise ValueError(f"expected a text name in {sorted(TEXTS)}, got {name!r}")
    return _read(TEXTS[name])


def load_sentences() -> tuple[list[str], list[str]]:
    """Sentences labelled by their author, for sequence classification.

    Returns ``(texts, labels)``, two lists of 2,004 ``str``: each text is one sentence
    (20 to 200 characters) from *Alice's Adventures in Wonderland* (label ``"carroll"``,
    1,014 sentences) or *As You Like It* (label ``"shakespeare"``, 990), shuffled. This
    is an authorship task, not sentiment: no sentiment set with a licence that clearly
    allows redistribution was available, see ``data/README.md``.
    """
    rows = list(csv.DictReader(io.StringIO(_read("sentences.csv"))))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def adding_problem(count: int, steps: int, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter and Schmidhuber, 1997): x (count, steps, 2) float32,
    y (count, 1) float32.

    Channel 0 holds numbers drawn uniformly from [0, 1]; channel 1 marks two of the steps
    with 1, one in each half of the sequence. The target is the sum of the two marked
    numbers, so a model must hold the first of them across at least steps/2 steps.
    Predicting the constant 1 scores a mean squared error of 1/6 (the sum's variance).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"expected steps as an int >= 2 (one marker in each half), got {steps!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"expected count as an int >= 1, got {count!r}")
    rng = np.random.default_rng(seed)
    numbers = rng.uniform(0.0, 1.0, size=(count, steps))
    half = steps // 2
    first = rng.integers(0, half, size=count)
    second = rng.integers(half, steps, size=count)
    markers = np.zeros((count, steps))
    rows = np.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([numbers, markers], axis=-1).astype(np.float32)
    y = (numbers[rows, first] + numbers[rows, second])[:, None].astype(np.float32)
    return x, y
