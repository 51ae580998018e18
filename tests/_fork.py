"""Running a check in a forked child with hard timeouts (tests/test_fork*.py)."""

import os
import signal
import time

import pytest

CHILD_ALARM = 50  # a hung child ends itself even if the parent is gone
PARENT_WAIT = 60  # the parent kills a child that has not exited by then


def in_child(check):
    """Runs check() in a forked child; its exit code (0: check returned True, 3: False)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(CHILD_ALARM)
            code = 0 if check() else 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + PARENT_WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {PARENT_WAIT} s")
