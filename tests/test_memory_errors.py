"""A failed allocation anywhere in the core reaches Python as MemoryError, and the process
goes on working: passes run under an address-space limit (RLIMIT_AS) in a subprocess, at
limits that make the calling thread's buffers or the per-thread buffers inside the
parallel region fail."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.environ.get("LSTMCORE_SANITIZE") == "ON",
    reason="RLIMIT_AS is Linux's; a sanitizer reserves terabytes of address space",
)

# Weights large next to the sequences, so that raising the limit a few MB at a time walks
# the failure from the outputs through the pass's buffers to each thread's packed weights.
SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    import lstmcore
    sys.path.insert(0, sys.argv[3])
    from test_memory_errors import make_layer, run

    lstmcore.set_num_threads(2)
    kind, taped, out = sys.argv[1], sys.argv[2] == "taped", sys.argv[4]
    layer, x = make_layer(kind)
    # OpenMP's threads start before the limit: a thread that cannot start aborts in libgomp.
    small = lstmcore.LSTM(64, 256, seed=0)
    small(np.zeros((16, 4, 64), np.float32))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        base = int(statm.read().split()[0]) * resource.getpagesize()
    failures = successes = 0
    for extra_mb in range(0, 120, 3):
        resource.setrlimit(resource.RLIMIT_AS, (base + extra_mb * 2**20, hard))
        try:
            run(layer, x, taped)
            successes += 1
        except MemoryError:
            failures += 1
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    # The process is still usable; the caller checks what it computes.
    np.save(out, run(layer, x, taped))
    print(failures, successes)
    """
)


def make_layer(kind):
    """Weights large next to the sequences, so that raising the limit a few MB at a time
    walks the failure from the outputs through the pass's buffers to each thread's packed
    weights."""
    import numpy as np

    import lstmcore

    options = {"layer_norm": True} if kind == "layer_norm" else {}
    options.update({"proj_size": 256} if kind == "projected" else {})
    cls = lstmcore.GRU if kind == "gru" else lstmcore.LSTM
    x = np.random.default_rng(0).normal(size=(16, 4, 1024)).astype(np.float32)
    return cls(1024, 1024, seed=0, **options), x


def run(layer, x, taped):
    import numpy as np

    if taped:
        y, _, tape = layer.forward(x)
        dx, _ = layer.backward(tape, np.ones_like(y))
        return np.concatenate([y.ravel(), dx.ravel()])
    return layer(x)[0]


@pytest.mark.parametrize("kind", ["lstm", "gru", "layer_norm", "projected"])
@pytest.mark.parametrize("taped", ["taped", "inference"])
def test_failed_allocation_raises_memory_error_and_the_process_goes_on(kind, taped, tmp_path, two_threads):
    out = tmp_path / "after.npy"
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind, taped, here, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"exit {done.returncode}; stderr:\n{done.stderr[-2000:]}"
    failures, successes = map(int, done.stdout.split())
    # The limits walked past every allocation: some passes failed, later ones ran.
    assert failures > 0 and successes > 0, done.stdout
    layer, x = make_layer(kind)
    np.testing.assert_array_equal(np.load(out), run(layer, x, taped == "taped"))
