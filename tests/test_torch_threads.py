"""Threads and lstmcore.torch: inside the modules the core runs on torch.get_num_threads()
threads, forward and backward, unless lstmcore.set_num_threads was called, which wins
(lstmcore/torch/_threads.py); and Python threads calling one module at once, for inference
and for training, get exactly the results of sequential calls (the same core calls on
the same thread count, so tolerance 0, as tests/test_threads.py's).
"""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

import lstmcore  # noqa: E402
import lstmcore.torch as lt  # noqa: E402
from lstmcore.torch import _threads  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 12, 8, 5, 32
PYTHON_THREADS, CALLS = 4, 5


@pytest.fixture
def thread_counts():
    """torch's and the core's thread counts as found, restored after the test; the core
    starts at its default, followed by nobody, as when lstmcore.torch is imported (an
    earlier test's explicit count would otherwise read as the user's)."""
    torch_threads, requested, followed = torch.get_num_threads(), lstmcore._core.requested_threads(), _threads._followed
    lstmcore.set_num_threads(0)
    _threads._followed = 0
    yield torch_threads
    torch.set_num_threads(torch_threads)
    lstmcore.set_num_threads(requested)
    _threads._followed = followed


def small_pass(module):
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    return module(x)[0]


def small_pass_float32(module):
    return module(torch.randn(STEPS, BATCH, INPUT))[0]


def test_a_forward_after_torch_set_num_threads_runs_the_core_on_that_many(thread_counts):
    module = lt.LSTM(INPUT, HIDDEN, dtype=torch.float64)
    default = lstmcore.get_num_threads()
    torch.set_num_threads(1)
    small_pass(module)
    assert lstmcore.get_num_threads() == 1
    torch.set_num_threads(thread_counts)
    small_pass(module)
    if thread_counts == default:  # back at torch's count, the core is back at its default
        assert lstmcore._core.requested_threads() == 0 and lstmcore.get_num_threads() == default
    else:
        assert lstmcore.get_num_threads() == thread_counts


def test_a_backward_follows_torch_thread_count_too(thread_counts):
    module = lt.GRU(INPUT, HIDDEN, dtype=torch.float64)
    y = small_pass(module)
    torch.set_num_threads(1)
    y.sum().backward()
    assert lstmcore.get_num_threads() == 1


def test_an_explicit_lstmcore_set_num_threads_wins_over_torch(thread_counts):
    module = lt.RNN(INPUT, HIDDEN, dtype=torch.float64)
    lstmcore.set_num_threads(2)
    torch.set_num_threads(1)
    small_pass(module).sum().backward()
    assert lstmcore._core.requested_threads() == 2 and lstmcore.get_num_threads() == 2
    torch.set_num_threads(3)
    small_pass(module)
    assert lstmcore.get_num_threads() == 2


def test_a_backward_makes_the_weight_gradients_without_a_pytorch_operator(thread_counts):
    # A PyTorch operator as large as a weight runs on PyTorch's threads, whose parallel
    # region waits for a core when other processes hold them, while the core's passes step
    # down to one thread there (docs/production.md, "Busy cores").
    module = lt.LSTM(INPUT, HIDDEN)
    y = small_pass_float32(module)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        y.sum().backward()

    def in_core_backward(event):
        while event is not None and event.name != "lstmcore::recurrent_backward":
            event = event.cpu_parent
        return event is not None

    fills = {"aten::zeros", "aten::zero_", "aten::fill_"}
    inside = [event.name for event in profile.events() if in_core_backward(event.cpu_parent)]
    assert "lstmcore::recurrent_backward" in {event.name for event in profile.events()}
    assert not fills & set(inside), f"PyTorch fills inside the core's backward: {inside}"
    assert all(torch.count_nonzero(w.grad) for w in module.parameters())


def run_in_threads(work):
    """work(thread index, call index) on PYTHON_THREADS threads started together, CALLS
    times each; the results by (thread, call), re-raising the first error."""
    results, errors = {}, []
    barrier = threading.Barrier(PYTHON_THREADS)

    def worker(index):
        try:
            barrier.wait()
            for call in range(CALLS):
                results[index, call] = work(index, call)
        except BaseException as error:  # handed to the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(PYTHON_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def thread_inputs():
    generator = torch.Generator().manual_seed(3)
    return {
        (index, call): torch.randn(STEPS, BATCH, INPUT, generator=generator, dtype=torch.float64)
        for index in range(PYTHON_THREADS)
        for call in range(CALLS)
    }


def test_python_threads_sharing_a_module_for_inference_get_the_sequential_results(two_threads):
    torch.manual_seed(0)
    module = lt.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, dtype=torch.float64).eval()
    inputs = thread_inputs()

    def infer(index, call):
        with torch.no_grad():  # thread-local: set in the thread that runs the pass
            y, (h, c) = module(inputs[index, call])
        return [y, h, c]

    expected = {key: infer(*key) for key in inputs}
    got = run_in_threads(infer)
    for key, parts in expected.items():
        for name, mine, theirs in zip(("y", "h_n", "c_n"), got[key], parts):
            assert torch.equal(mine, theirs), f"{name} of thread {key[0]}, call {key[1]}"


def test_python_threads_training_one_module_get_the_sequential_gradients(two_threads):
    torch.manual_seed(0)
    module = lt.GRU(INPUT, HIDDEN, num_layers=2, dtype=torch.float64)
    inputs = thread_inputs()
    names = ["x"] + [name for name, _ in module.named_parameters()]

    def train_step(index, call):
        x = inputs[index, call].clone().requires_grad_()
        y, h = module(x)
        loss = y.square().sum() + h.sum()
        return [loss.detach(), *torch.autograd.grad(loss, [x, *module.parameters()])]

    expected = {key: train_step(*key) for key in inputs}
    got = run_in_threads(train_step)
    for key, parts in expected.items():
        for name, mine, theirs in zip(["loss", *names], got[key], parts):
            assert torch.equal(mine, theirs), f"{name} of thread {key[0]}, call {key[1]}"
