"""NumPy's BLAS runs on one thread while fit, evaluate and predict run, and gets its thread
count back afterwards (python/lstmcore/_util/blas.py)."""

import numpy as np
import pytest

import lstmcore
from lstmcore import losses
from lstmcore._util import blas as _blas

pytestmark = pytest.mark.skipif(_blas.blas_threads() is None, reason="NumPy's BLAS here is not an OpenBLAS")


@pytest.fixture
def two_blas_threads(monkeypatch):
    monkeypatch.delenv("LSTMCORE_KEEP_BLAS_THREADS", raising=False)
    before = _blas.blas_threads()
    _blas.set_blas_threads(2)
    yield
    _blas.set_blas_threads(before)


def test_one_thread_inside_nested_uses_and_the_count_restored_after(two_blas_threads):
    with _blas.one_blas_thread():
        assert _blas.blas_threads() == 1
        with _blas.one_blas_thread():
            assert _blas.blas_threads() == 1
        assert _blas.blas_threads() == 1, "the inner use must not restore the count"
    assert _blas.blas_threads() == 2


def test_the_count_is_restored_after_an_error(two_blas_threads):
    with pytest.raises(RuntimeError), _blas.one_blas_thread():
        raise RuntimeError("inside")
    assert _blas.blas_threads() == 2


def test_keep_blas_threads_leaves_the_count_alone(two_blas_threads, monkeypatch):
    monkeypatch.setenv("LSTMCORE_KEEP_BLAS_THREADS", "1")
    with _blas.one_blas_thread():
        assert _blas.blas_threads() == 2


class RecordingMSE(losses.MeanSquaredError):
    """The MSE, noting NumPy's BLAS thread count each time the loop scores a batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def sum_and_count(self, *args, **kwargs):
        self.seen.append(_blas.blas_threads())
        return super().sum_and_count(*args, **kwargs)


def test_fit_evaluate_and_predict_run_on_one_blas_thread(two_blas_threads):
    rng = np.random.default_rng(0)
    model = lstmcore.Sequential([lstmcore.LSTM(2, 4, seed=0), lstmcore.LastStep(), lstmcore.Dense(4, 1, seed=1)])
    x, y = rng.normal(size=(12, 5, 2)), rng.normal(size=(12, 1))
    loss = RecordingMSE()
    model.fit(x, y, loss=loss, epochs=2, batch_size=4, validation_split=0.25, verbose=False)
    model.evaluate(x, y, loss=loss)
    assert loss.seen and set(loss.seen) == {1}
    assert _blas.blas_threads() == 2

    calls = []
    last = model.layers[-1]
    original = last.forward

    def recording_forward(*args, **kwargs):
        calls.append(_blas.blas_threads())
        return original(*args, **kwargs)

    last.forward = recording_forward
    model.predict(x, batch_size=5)
    assert calls and set(calls) == {1}
    assert _blas.blas_threads() == 2


def test_dense_products_run_on_one_blas_thread(two_blas_threads, monkeypatch):
    # Dense is the layer whose products go to NumPy's BLAS; forward and backward run on
    # one BLAS thread wherever they are called from (a loop of one's own included).
    from lstmcore.nn import _layers

    seen = []
    for name in ("as_numeric_array", "_check_dy"):
        original = getattr(_layers, name)

        def recording(*args, _original=original, **kwargs):
            seen.append(_blas.blas_threads())
            return _original(*args, **kwargs)

        monkeypatch.setattr(_layers, name, recording)
    dense = lstmcore.Dense(3, 2, seed=0)
    y, tape = dense.forward(np.ones((4, 3)))
    in_forward = len(seen)
    dense.backward(tape, np.ones_like(y))
    assert 0 < in_forward < len(seen), "both passes must have been seen"
    assert set(seen) == {1}
    assert _blas.blas_threads() == 2
