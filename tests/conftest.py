"""Makes the private test helpers (tests/_compare.py, ...) importable whatever pytest's
import mode, and holds the fixtures more than one test file uses."""

import pathlib
import sys

import pytest

import lstmcore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def fresh_load_sensor():
    """Each test starts with a load sensor that has found nothing yet (a busy verdict of an
    earlier test's passes would change how this test's passes split)."""
    enabled = lstmcore._core.load_sensor()["enabled"]
    lstmcore._core.reset_load_sensor(enabled)
    yield
    lstmcore._core.reset_load_sensor(enabled)


@pytest.fixture
def two_threads():
    """The core's OpenMP thread count set to 2 for one test, then restored; the load
    sensor off meanwhile, so that the passes of a test about two threads use two even
    when other work holds the cores (tests/test_load_sensor.py tests the sensor)."""
    previous = lstmcore.get_num_threads()
    enabled = lstmcore._core.load_sensor()["enabled"]
    lstmcore.set_num_threads(2)
    lstmcore._core.reset_load_sensor(False)
    yield
    lstmcore.set_num_threads(previous)
    lstmcore._core.reset_load_sensor(enabled)
