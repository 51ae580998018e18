"""What the newer suites (torch_bridge.py, inference.py) share to show and keep a run:
a table as aligned text or Markdown, and the run written as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path


def table(header, columns, body, notes, markdown=False):
    """``header`` lines, then a table of ``body`` rows under ``columns``, then the notes."""
    lines = list(header)
    if markdown:
        lines = [line + "  " for line in lines]  # a Markdown line break
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max(len(cells[k]) for cells in [columns, *body]) for k in range(len(columns))]
        for cells in [columns, *body]:
            lines.append("  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]))
    notes = [f"note: {note}" for note in notes]
    if markdown and notes:
        notes = ["", *(note + "  " for note in notes)]  # after the table, not a row of it
    lines += notes
    return "\n".join(lines) + "\n"


def publish(results, render, json_path, markdown_path=None):
    """Print ``render(results)``, write the results as JSON and, when asked, as Markdown
    headed by the command that made them."""
    print()
    print(render(results), end="")
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {json_path}")
    if markdown_path:
        text = render(results, markdown=True)
        Path(markdown_path).write_text(f"`{' '.join(results['command'])}`\n\n" + text)
        print(f"wrote {markdown_path}")
