"""examples/torch_char_lm.py, a plain PyTorch training script, gives the same losses with
its nn.GRU swapped by lstmcore.torch.convert as with torch.nn's own GRU."""

import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "torch_char_lm.py"
LOSS = re.compile(r"loss (\d+\.\d+)")


def _losses(*arguments):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "6", *arguments], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [float(value) for value in LOSS.findall(result.stdout)]


def test_the_converted_script_follows_torch_nn_losses():
    converted, ours = _losses()
    plain, theirs = _losses("--torch")
    assert "lstmcore.torch._recurrent.GRU" in converted and "torch.nn.modules.rnn.GRU" in plain
    # Float32 through six Adam steps: the printed three decimals agree.
    assert ours and ours == theirs
