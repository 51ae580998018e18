"""The ``lstmcore`` command line (``python -m lstmcore``): ``main`` in ``lstmcore.cli.main``,
one module per task in ``lstmcore.cli.tasks``."""
