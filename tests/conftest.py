"""Makes the private test helpers (tests/_compare.py, ...) importable whatever pytest's
import mode, and holds the fixtures more than one test file uses."""

import pathlib
import sys

import pytest

import lstmcore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def quiet_load_sensor():
    """The load sensor off, and what it found forgotten, for every test: a busy verdict
    while a test runs (other work on the CI machine) would plan some passes on one thread,
    whose weight gradients add in another order, and tests that repeat a computation bit
    for bit would fail. tests/test_load_sensor.py turns it on and drives it."""
    enabled = lstmcore._core.load_sensor()["enabled"]
    lstmcore._core.reset_load_sensor(False)
    yield
    lstmcore._core.reset_load_sensor(enabled)


@pytest.fixture
def two_threads():
    """The core's OpenMP thread count set to 2 for one test, then restored (a count set by
    the caller is used as planned, whatever the load sensor finds)."""
    previous = lstmcore._core.requested_threads()
    lstmcore.set_num_threads(2)
    yield
    lstmcore.set_num_threads(previous)
