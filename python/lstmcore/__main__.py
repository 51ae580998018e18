"""``python -m lstmcore``: the command line (see ``lstmcore --help``)."""

import sys

from lstmcore._cli import main

sys.exit(main())
