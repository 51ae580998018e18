"""The load sensor (cpp/include/lstmcore/load_sensor.hpp): multi-threaded passes report how
long their threads waited for a core; while the cores are busy, passes plan one thread,
or the batch split when large enough, and compute the same values as on a quiet machine.
Timing thresholds are the benchmarks' (benchmarks/contention.py); these tests drive the
sensor with reported timings."""

import numpy as np
import pytest

import lstmcore
from _variants import variants
from lstmcore import _core

# Far past the thresholds (microseconds), and far below them.
SLOW_START, QUIET = 50_000.0, 1.0


def report_busy(slowest_start=SLOW_START, longest_sleep=QUIET):
    """Two slow passes in a row: a busy verdict (one alone is a hiccup)."""
    for _ in range(2):
        _core.diagnostics.sense_team(slowest_start, longest_sleep)


@pytest.fixture
def sensing():
    """The default thread count (the only one the sensor adapts), the sensor on."""
    previous = _core.requested_threads()
    lstmcore.set_num_threads(0)
    if lstmcore.get_num_threads() < 2:
        pytest.skip("the default thread count here is 1: nothing to adapt")
    _core.reset_load_sensor(True)
    yield
    lstmcore.set_num_threads(previous)


def test_a_quiet_report_leaves_the_split_alone(sensing):
    _core.diagnostics.sense_team(QUIET, QUIET)
    assert not _core.load_sensor()["busy"]
    assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (2, "units")


def test_busy_cores_plan_one_thread_for_a_small_pass(sensing):
    for slowest_start, longest_sleep in [(SLOW_START, QUIET), (QUIET, SLOW_START)]:
        _core.reset_load_sensor(True)
        report_busy(slowest_start, longest_sleep)
        state = _core.load_sensor()
        assert state["busy"] and state["busy_verdicts"] == 1 and state["lone_slow_passes"] == 0
        assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (1, "units")
        assert _core.diagnostics.pass_plan(32, 128, 128, 4, 4, True) == (1, "units")


def test_busy_cores_split_a_large_pass_over_the_batch(sensing):
    # Weights too large for the batch split on a quiet machine (H=1024).
    assert _core.diagnostics.pass_plan(64, 1024, 1024, 4, 4, True, steps=20) == (2, "units")
    report_busy()
    assert _core.diagnostics.pass_plan(64, 1024, 1024, 4, 4, True, steps=20) == (2, "batch")
    # Too few rows for two threads' tiles, or too few steps to outweigh the barriers.
    assert _core.diagnostics.pass_plan(8, 1024, 1024, 4, 4, True, steps=200) == (1, "units")
    assert _core.diagnostics.pass_plan(64, 1024, 1024, 4, 4, True, steps=1) == (1, "units")


def test_a_slow_pass_between_quick_ones_is_a_hiccup_not_a_verdict(sensing):
    first_hold = _core.load_sensor()["hold_seconds"]
    for _ in range(3):
        _core.diagnostics.sense_team(QUIET, QUIET)
        _core.diagnostics.sense_team(QUIET, SLOW_START)
    _core.diagnostics.sense_team(QUIET, QUIET)
    state = _core.load_sensor()
    assert not state["busy"] and state["busy_verdicts"] == 0 and state["lone_slow_passes"] == 3
    assert state["hold_seconds"] == first_hold
    assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (2, "units")
    # A slow pass, then another: the verdict, with the first hold.
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    assert not _core.load_sensor()["busy"]
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    state = _core.load_sensor()
    assert state["busy"] and state["busy_verdicts"] == 1 and state["lone_slow_passes"] == 3
    assert state["hold_seconds"] == pytest.approx(0.05)


def test_after_a_busy_verdict_each_slow_pass_renews_it_until_a_quick_one(sensing):
    report_busy()
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    assert _core.load_sensor()["busy_verdicts"] == 2
    _core.diagnostics.sense_team(QUIET, QUIET)
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    state = _core.load_sensor()
    assert state["busy_verdicts"] == 2 and state["lone_slow_passes"] == 0


def test_busy_verdicts_in_a_row_hold_longer_and_quiet_ones_shorten_it(sensing):
    report_busy()
    first = _core.load_sensor()["hold_seconds"]
    assert first == pytest.approx(0.05)
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    _core.diagnostics.sense_team(SLOW_START, QUIET)
    assert _core.load_sensor()["hold_seconds"] == pytest.approx(4 * first)
    _core.diagnostics.sense_team(QUIET, QUIET)
    assert _core.load_sensor()["hold_seconds"] == pytest.approx(2 * first)


def test_switched_off_the_sensor_ignores_reports(sensing):
    _core.reset_load_sensor(False)
    report_busy(SLOW_START, SLOW_START)
    state = _core.load_sensor()
    assert not state["busy"] and state["passes_sensed"] == 0
    assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (2, "units")


def test_a_thread_count_set_by_the_caller_is_used_as_planned(sensing):
    report_busy()
    assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (1, "units")
    lstmcore.set_num_threads(2)
    assert _core.diagnostics.pass_plan(1, 256, 256, 4, 4, False) == (2, "units")
    assert _core.diagnostics.pass_plan(16, 12, 64, 4, 4, True) == (2, "batch")


def test_every_multi_threaded_pass_reports_and_one_thread_passes_do_not(sensing):
    layer = lstmcore.LSTM(32, 256, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 10, 32)).astype(np.float32)
    layer(x)
    reported = _core.load_sensor()["passes_sensed"]
    assert reported >= 1 or _core.load_sensor()["busy"]
    lstmcore.set_num_threads(1)
    layer(x)
    assert _core.load_sensor()["passes_sensed"] == reported


@variants("lstm", "gru", "projected", "layer_norm", argname="kind")
def test_passes_planned_while_busy_compute_what_quiet_ones_do(kind, sensing):
    options = {"proj_size": 48} if kind == "projected" else {"layer_norm": True} if kind == "layer_norm" else {}
    layer = (lstmcore.GRU if kind == "gru" else lstmcore.LSTM)(24, 128, seed=0, dtype=np.float64, **options)
    x = np.random.default_rng(1).normal(size=(4, 12, 24))
    _core.reset_load_sensor(False)
    quiet_y, _, tape = layer.forward(x)
    quiet_dx, _ = layer.backward(tape, np.ones_like(quiet_y))
    quiet_grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    _core.reset_load_sensor(True)
    # Busy verdicts in a row double the hold up to its longest (seconds), so that the
    # passes below run inside it even slowed by a sanitizer and other processes; one
    # verdict's hold (tens of milliseconds) can end before the backward is planned.
    for _ in range(8):
        _core.diagnostics.sense_team(SLOW_START, QUIET)
    assert _core.load_sensor()["hold_seconds"] >= 1.0
    busy_y, _, tape = layer.forward(x)
    busy_dx, _ = layer.backward(tape, np.ones_like(busy_y))
    assert _core.load_sensor()["busy"]
    np.testing.assert_allclose(busy_y, quiet_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(busy_dx, quiet_dx, rtol=1e-12, atol=1e-12)
    for key, grad in quiet_grads.items():
        np.testing.assert_allclose(layer.grads[key], grad, rtol=1e-10, atol=1e-12, err_msg=key)
