"""Threads: the core's OpenMP split does not change results, and Python threads may share a layer.

- set_num_threads(1) vs (2), float64: a pass splits over hidden units (and, for dx, over
  the inputs) or over batch rows (threading.hpp), each unit's arithmetic is the same on
  either thread count, so results agree to 1e-12 of the tensor's scale (rounding only: a
  split changes how rows fall into tiles and GEMM blocks). H=64, B=32 gives 2*B*G*H^2 >=
  0.8M flops a step and 16 rows a thread (the batch split for LSTM, GRU and layer norm,
  the unit split for the projected LSTM); I=80 gives each thread its own inputs of dx.
  Every variant, both layouts, with and without lengths, training and inference (which
  keeps no tape for the LSTM cells). Training with dropout and zoneout masks and
  lengths also at 3 threads, in both splits; and the same call at 2 threads repeats its
  results bit for bit. Eight threads, more than the cores, agree with one (the step
  barrier's sleeping path).
- Four Python threads calling one layer's forward/backward at once (the core releases
  the GIL) return exactly what sequential calls return, and the layer's grads then hold
  the sum of every call's contribution (addition order aside: 1e-12 of the scale).
"""

import threading

import numpy as np
import pytest

import lstmcore
from _compare import assert_close, scaled_atol
from _layers import pass_split
from _variants import LAYER_VARIANTS, kinds, variant_options, variants

LAYERS = {"lstm": lstmcore.LSTM, "gru": lstmcore.GRU}
TOL = 1e-12


@pytest.fixture
def restore_threads():
    previous = lstmcore.get_num_threads()
    yield
    lstmcore.set_num_threads(previous)


def pass_results(layer, x, dy, lengths=None):
    """y, final states, dx, initial-state gradients and the grads of one forward/backward,
    and the output and final states of inference."""
    layer.zero_grad()
    y, final, tape = layer.forward(x, lengths=lengths)
    dx, dstate0 = layer.backward(tape, dy)
    y_inference, final_inference = layer(x, lengths=lengths)
    parts = {"y": y, "dx": dx, "y (inference)": y_inference}
    for name, value in zip(("h_n", "c_n"), final_inference if isinstance(final, tuple) else (final_inference,)):
        parts[f"{name} (inference)"] = value
    for name, value in zip(("h_n", "c_n"), final if isinstance(final, tuple) else (final,)):
        parts[name] = value
    for name, value in zip(("dh0", "dc0"), dstate0 if isinstance(dstate0, tuple) else (dstate0,)):
        parts[name] = value
    parts.update({k: v.copy() for k, v in layer.grads.items()})
    return parts


@variants()
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_one_and_two_openmp_threads_agree(variant, batch_first, with_lengths, restore_threads):
    rng = np.random.default_rng(50)
    cls, options = LAYER_VARIANTS[variant]
    options = {**options, "proj_size": 40} if "proj_size" in options else options
    steps, batch = 6, 32
    x = rng.normal(size=(batch, steps, 80) if batch_first else (steps, batch, 80))
    lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
    dy = rng.normal(size=x.shape[:2] + (2 * options.get("proj_size", 64),))
    results = {}
    for threads in (1, 2):
        lstmcore.set_num_threads(threads)
        assert lstmcore.get_num_threads() == threads
        # A fresh layer each time: the same weights and the same zoneout masks.
        layer = cls(80, 64, 2, bidirectional=True, batch_first=batch_first, dtype=np.float64, seed=2, **options)
        results[threads] = pass_results(layer, x, dy, lengths)
    for name, expected in results[1].items():
        assert_close(f"{name} (2 threads vs 1)", results[2][name], expected, TOL, scaled_atol(TOL, expected))


@variant_options("zoneout_recurrent_dropout", "peephole_recurrent_dropout", "layer_norm")
@pytest.mark.parametrize(
    "threads, lengths, split",
    [
        (2, "balanced", "batch"),
        (3, "balanced", "batch"),
        # Half of the real steps in one sequence: its thread would run the tail alone.
        (2, "one-long", "units"),
        (3, "one-long", "units"),
    ],
)
def test_thread_counts_agree_in_training_with_masks_and_lengths(options, threads, lengths, split, restore_threads):
    # Training draws the dropout and zoneout masks; a fresh layer per thread count, from the
    # same seed, draws the same ones. H=64, B=30: 10 rows a thread on three threads.
    rng = np.random.default_rng(53)
    steps, batch = 24, 30
    if lengths == "balanced":
        lengths = rng.integers(steps // 2, steps + 1, size=batch)
    else:
        lengths = np.array([steps] + [1] * (batch - 1))
    x = rng.normal(size=(batch, steps, 80))
    dy = rng.normal(size=(batch, steps, 128))
    results = {}
    for count in (1, threads):
        lstmcore.set_num_threads(count)
        if count > 1:
            sorted_lengths = np.sort(lengths)[::-1]
            for backward in (False, True):
                assert pass_split(batch, 80, 64, 4, np.float64, backward, sorted_lengths) == (threads, split)
        layer = lstmcore.LSTM(80, 64, 2, bidirectional=True, dtype=np.float64, seed=5, **options)
        results[count] = pass_results(layer, x, dy, lengths)
    for name, expected in results[1].items():
        got = results[threads][name]
        assert_close(f"{name} ({threads} threads vs 1)", got, expected, TOL, scaled_atol(TOL, expected))


@variants("lstm", "gru", "layer_norm", argname="kind")
@pytest.mark.parametrize("batch", [12, 40], ids=["units-split", "batch-split"])
def test_two_threads_repeat_every_result_bit_for_bit(kind, batch, two_threads):
    # The bias, peephole and layer-norm gain gradients are summed per thread and added in
    # thread order, so the same call gives the same bits whichever thread finishes first.
    rng = np.random.default_rng(54)
    x, dy = rng.normal(size=(batch, 9, 80)), rng.normal(size=(batch, 9, 128))
    options = {"lstm": {"peephole": True}, "gru": {}, "layer_norm": {"layer_norm": True}}[kind]
    layer = LAYERS.get(kind, lstmcore.LSTM)(80, 64, 2, bidirectional=True, dtype=np.float64, seed=6, **options)
    first = pass_results(layer, x, dy)
    for _ in range(3):
        again = pass_results(layer, x, dy)
        for name, value in first.items():
            np.testing.assert_array_equal(again[name], value, err_msg=name)


@variants()
def test_more_openmp_threads_than_cores_agree_with_one(variant, restore_threads):
    # Eight threads on this 2-core kind of machine: at each step's barrier (step_barrier.hpp)
    # a thread may wait for one that has no core long enough to sleep until woken. H=128,
    # B=6: 5 to 7 threads by the flops a step, under 8 rows a thread, so the units split.
    cls, options = LAYER_VARIANTS[variant]
    rng = np.random.default_rng(61)
    x = rng.normal(size=(6, 12, 40))
    dy = rng.normal(size=(6, 12, 128 if variant != "projected" else 3))
    results = {}
    for threads in (1, 8):
        lstmcore.set_num_threads(threads)
        if variant != "projected" and threads > 1:
            planned, split = pass_split(6, 40, 128, 3 if variant == "gru" else 4, np.float64, False)
            assert split == "units" and planned >= 5, (planned, split)
        # A new layer of the same seed for each count: zoneout draws the same masks.
        results[threads] = pass_results(cls(40, 128, dtype=np.float64, seed=8, **options), x, dy)
    for name, expected in results[1].items():
        assert_close(f"{name} (8 threads vs 1)", results[8][name], expected, TOL, scaled_atol(TOL, expected))


def run_in_threads(work, count):
    """Run ``work(k)`` for k < count in Python threads released together; re-raise any error."""
    errors = []
    start = threading.Barrier(count)

    def body(k):
        try:
            start.wait()
            work(k)
        except Exception as error:  # re-raised below, with its thread
            errors.append((k, error))

    threads = [threading.Thread(target=body, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@kinds
@pytest.mark.parametrize("batch, hidden, split", [(16, 48, "batch"), (6, 80, "units")])
def test_python_threads_sharing_a_layer_get_the_sequential_results(kind, batch, hidden, split, two_threads):
    # Split over units, each call's OpenMP team waits at its own step barrier.
    gates = 4 if kind == "lstm" else 3
    assert pass_split(batch, 2 * hidden, hidden, gates, np.float64, False) == (2, split)
    rng = np.random.default_rng(51)
    layer = LAYERS[kind](8, hidden, 2, bidirectional=True, dtype=np.float64, seed=3)
    inputs = [(rng.normal(size=(batch, 12, 8)), rng.normal(size=(batch, 12, 2 * hidden))) for _ in range(4)]
    sequential = [pass_results(layer, x, dy) for x, dy in inputs]
    results = [[] for _ in inputs]

    def work(k):
        x, dy = inputs[k]
        for _ in range(3):  # several rounds so the calls of different threads overlap
            y, final, tape = layer.forward(x)
            dx, dstate0 = layer.backward(tape, dy)
            got = {"y": y, "dx": dx}
            got.update(zip(("h_n", "c_n"), final if isinstance(final, tuple) else (final,)))
            got.update(zip(("dh0", "dc0"), dstate0 if isinstance(dstate0, tuple) else (dstate0,)))
            results[k].append(got)

    run_in_threads(work, len(inputs))
    for k, rounds in enumerate(results):
        for got in rounds:
            for name, value in got.items():
                np.testing.assert_array_equal(value, sequential[k][name], err_msg=f"thread {k}: {name}")


@kinds
def test_concurrent_backward_calls_add_every_gradient(kind, restore_threads):
    lstmcore.set_num_threads(1)  # the Python threads, not OpenMP, share the cores
    rng = np.random.default_rng(52)
    layer = LAYERS[kind](8, 64, 1, dtype=np.float64, seed=4)
    x, dy = rng.normal(size=(4, 3, 8)), rng.normal(size=(4, 3, 64))
    once = pass_results(layer, x, dy)
    _, _, tape = layer.forward(x)
    threads, rounds = 4, 300

    def work(k):
        for _ in range(rounds):
            layer.backward(tape, dy)

    # A lost update needs two threads inside the accumulation at once: try a few times
    # (each a short run) and fail on the first trial that loses one.
    for trial in range(8):
        layer.zero_grad()
        run_in_threads(work, threads)
        for name in layer.grads:
            expected = threads * rounds * once[name]
            assert_close(
                f"grads[{name!r}] after {threads}x{rounds} concurrent backward calls (trial {trial})",
                layer.grads[name],
                expected,
                TOL,
                scaled_atol(TOL, expected),
            )
