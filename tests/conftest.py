"""Makes the private test helpers (tests/_compare.py) importable whatever pytest's import mode."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
