"""``lstmcore demo``: a forecaster and a character model trained on the shipped data;
``lstmcore demo memory``: the RNN, GRU and LSTM on the adding problem (``_memory_demo``)."""

from __future__ import annotations

import time

from lstmcore.cli import _arguments as arguments
from lstmcore.cli import _memory_demo
from lstmcore.cli.tasks import charlm, forecast


def add_parser(commands):
    """``lstmcore demo``, run by ``run``, and its optional demos (``lstmcore demo memory``)."""
    parser = commands.add_parser(
        "demo",
        help="train a CO2 forecaster and a character model on the shipped data",
        description="Train an LSTM forecaster on the shipped Mauna Loa CO2 series and print its validation "
        "RMSE next to the naive last-value forecast; then train a character model on Alice's Adventures "
        "in Wonderland for a few epochs and print a sample. About ten seconds on 2 cores. "
        "`lstmcore demo memory` is another demo: why gates (see its --help).",
    )
    parser.add_argument(
        "--plot", type=arguments.nonempty_path, metavar="PNG", help="write forecast vs actual to this PNG (needs matplotlib)"
    )
    parser.add_argument("--seed", type=arguments.whole_number("seed"), default=0, help="default %(default)s")
    parser.add_argument(
        "--charlm-epochs", type=arguments.whole_number("charlm_epochs"), default=5, help="default %(default)s"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.set_defaults(run=run)
    # Optional: a bare `lstmcore demo` stays the main job; a named demo brings its own options.
    demos = parser.add_subparsers(dest="demo", metavar="DEMO", required=False)
    _memory_demo.add_parser(demos)
    return parser


def run(args):
    # the trainers are read from their modules when the demo runs, so a test can swap one
    started = time.perf_counter()
    print("== 1. Forecast monthly CO2 at Mauna Loa (LSTM on 24-month windows) ==")
    forecaster = forecast.train_forecast(seed=args.seed, plot=args.plot, verbose=False)
    print(f"   ({time.perf_counter() - started:.1f} s)")
    print()
    print("== 2. A character model of Alice's Adventures in Wonderland (a few epochs) ==")
    lm_started = time.perf_counter()
    language_model = charlm.train_charlm(epochs=args.charlm_epochs, seed=args.seed, verbose=not args.quiet)
    print(f"   ({time.perf_counter() - lm_started:.1f} s)")
    print()
    print("A sample (temperature 0.8, primed with 'Alice '):")
    print(charlm.generate(language_model["model"], length=300, temperature=0.8, prime="Alice ", seed=args.seed))
    print()
    print(
        f"demo done in {time.perf_counter() - started:.1f} s: forecast RMSE {forecaster['val_rmse']:.3f} ppm "
        f"vs naive {forecaster['naive_rmse']:.3f} ppm; character model {language_model['val_bpc']:.2f} bits/char "
        f"vs unigram {language_model['unigram_bpc']:.2f}"
    )
    return 0
