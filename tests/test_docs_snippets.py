"""Every ```python block of the README and of docs/ runs as it is written.

A reader copies these blocks first; one that fails (a renamed option, a changed return
value) teaches the wrong API. Each block runs in a fresh interpreter, in an empty working
directory (the blocks may write files), with a hard timeout. A block that imports torch
skips where torch is missing, and its id ends in "-torch", so the sanitized CI step (which
deselects -k "not torch") leaves it out as it leaves out the other torch tests. The blocks
that use scikit-learn (docs/sklearn.md), mpi4py or Dask (docs/distributed.md) skip where
it is not installed.
"""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
IMPORTS_TORCH = re.compile(r"^(import|from) torch\b", re.M)
TIMEOUT_S = 120


def _snippets():
    for document in DOCUMENTS:
        if not document.exists():
            continue
        for index, code in enumerate(PYTHON_BLOCK.findall(document.read_text(encoding="utf-8"))):
            suffix = "-torch" if IMPORTS_TORCH.search(code) else ""
            yield pytest.param(code, id=f"{document.relative_to(ROOT).as_posix()}-{index}{suffix}")


SNIPPETS = list(_snippets())


def test_the_documents_hold_snippets():
    assert len(SNIPPETS) >= 5, [s.id for s in SNIPPETS]


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs(code, tmp_path):
    if IMPORTS_TORCH.search(code):
        pytest.importorskip("torch")
    if "sklearn" in code:  # docs/sklearn.md: a skip for a missing scikit-learn, a failure in CI (conftest.py)
        pytest.importorskip("sklearn")
    if 'distributed="mpi"' in code:  # docs/distributed.md: one MPI rank, without mpiexec
        pytest.importorskip("mpi4py")
    if "import dask" in code:
        pytest.importorskip("distributed")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stderr[-3000:]}"
