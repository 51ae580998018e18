"""Makes the private test helpers (tests/_compare.py, ...) importable whatever pytest's
import mode, and holds the fixtures more than one test file uses."""

import pathlib
import sys

import pytest

import lstmcore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture
def two_threads():
    """The core's OpenMP thread count set to 2 for one test, then restored."""
    previous = lstmcore.get_num_threads()
    lstmcore.set_num_threads(2)
    yield
    lstmcore.set_num_threads(previous)
