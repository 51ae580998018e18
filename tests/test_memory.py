"""The heap setting that lets repeated passes reuse freed memory (cpp/src/memory.cpp)."""

import os
import platform

import pytest

from lstmcore import _core


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting exists only in glibc")
@pytest.mark.skipif(
    os.environ.get("LSTMCORE_SANITIZE") == "ON",
    reason="AddressSanitizer's allocator replaces glibc's heap, so glibc's setting (mallopt) has no heap to set",
)
def test_retain_freed_memory_takes_effect_on_glibc():
    # It once returned False on every machine: the glibc test in the C++ ran before any
    # header had defined __GLIBC__, so the thresholds were never set.
    assert _core.retain_freed_memory() is True
