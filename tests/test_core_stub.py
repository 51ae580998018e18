"""The typed stubs of the C++ module (python/lstmcore/_core/*.pyi) name every function, class
and constant that _core and _core.diagnostics hold, and nothing they do not: mypy's stubtest
imports the built module and compares."""

import os
import pathlib
import subprocess
import sys

import pytest

ALLOWLIST = pathlib.Path(__file__).with_name("core_stub_allowlist.txt")
# stubtest type-checks the stubs with mypy first: a cold cache takes a while on a busy machine.
STUBTEST_TIMEOUT_SECONDS = 600


def test_stubs_match_the_built_module(tmp_path):
    pytest.importorskip("mypy.stubtest", reason="mypy is not installed (CI installs it)")
    # The cache in tmp_path: the test leaves nothing in the checkout.
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "lstmcore._core", "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=STUBTEST_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"stubtest found differences:\n{result.stdout}\n{result.stderr}"
