"""The fixtures more than one test file uses (the private helpers, tests/_*.py, are found
through pytest's pythonpath setting in pyproject.toml)."""

import os

import pytest

import lstmcore


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


# CI installs every optional module that a test imports (.ci/run, docs/ci.md), so there
# a test skipped by pytest.importorskip did not run for a broken install: it fails.
_OPTIONAL_MODULES_REQUIRED = os.environ.get("CI", "").lower() in ("1", "true")


def _fail_if_an_optional_module_is_missing(report):
    if not (_OPTIONAL_MODULES_REQUIRED and report.skipped):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "could not import" in reason:
        report.outcome = "failed"
        report.longrepr = f"not a skip under CI=true, where .ci/run installs the optional modules: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_an_optional_module_is_missing(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # pytest.importorskip at a module's top level skips the whole file at collection.
    outcome = yield
    _fail_if_an_optional_module_is_missing(outcome.get_result())
