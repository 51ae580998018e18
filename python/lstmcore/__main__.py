"""``python -m lstmcore``: the command line (see ``lstmcore --help``)."""

import sys

from lstmcore.cli.main import main

sys.exit(main())
