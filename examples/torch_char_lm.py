"""A plain PyTorch training script (a character-level GRU language model of Alice's
Adventures in Wonderland) whose nn.GRU runs on lstmcore's core after one added line,
``lstmcore.torch.convert(model)``. Everything else is the script as PyTorch users write it.

    python examples/torch_char_lm.py            # with lstmcore's GRU
    python examples/torch_char_lm.py --torch    # with torch.nn.GRU, to compare
    python examples/torch_char_lm.py --steps 50 # a shorter run

Both print the loss every few steps and the time per training step.
"""

import argparse
import time

import torch
from torch import nn

import lstmcore.torch
from lstmcore import datasets


class CharModel(nn.Module):
    def __init__(self, vocabulary, hidden=256):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, 64)
        self.gru = nn.GRU(64, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocabulary)

    def forward(self, tokens):
        output, _ = self.gru(self.embed(tokens))
        return self.out(output)


def batches(ids, steps, batch, generator):
    """Random windows of the text: inputs and the next characters, each (batch, steps)."""
    while True:
        starts = torch.randint(0, len(ids) - steps - 1, (batch,), generator=generator)
        windows = torch.stack([ids[s : s + steps + 1] for s in starts.tolist()])
        yield windows[:, :-1], windows[:, 1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="keep torch.nn.GRU (no convert)")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    args = parser.parse_args()

    text = datasets.load_text("alice")
    vocabulary = sorted(set(text))
    ids = torch.tensor([vocabulary.index(char) for char in text])
    torch.manual_seed(0)
    model = CharModel(len(vocabulary))
    if not args.torch:
        lstmcore.torch.convert(model)  # the one added line
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = batches(ids, steps=100, batch=32, generator=torch.Generator().manual_seed(1))

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        inputs, targets = next(data)
        loss = nn.functional.cross_entropy(model(inputs).transpose(1, 2), targets)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0 or step == args.steps:
            per_step = (time.perf_counter() - start) / step
            print(f"step {step:4d}  loss {loss.item():.3f}  {per_step * 1e3:.1f} ms per step")
    print(f"{type(model.gru).__module__}.{type(model.gru).__name__}: final loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
