"""``lstmcore demo memory``: the seed's claim, measured. A vanilla RNN, a GRU and an LSTM of
one size on the adding problem: their validation error against predicting the constant 1,
and how far back in time the gradient reaches, before and after training."""

from __future__ import annotations

import time

from lstmcore.cli import _arguments as arguments
from lstmcore.cli import _memory_experiment as experiment
from lstmcore.cli import _memory_plot
from lstmcore.cli._files import check_output_paths
from lstmcore.cli._limits import check_model_size, lstm_parameters

DESCRIPTION = (
    "Train a vanilla RNN (tanh), a GRU and an LSTM of the same size on the adding problem "
    "(Hochreiter and Schmidhuber, 1997: sum the two marked numbers of a sequence of T) and print "
    "each one's validation MSE next to predicting the constant 1 (1/6 = 0.167), and the mean norm "
    "of dL/dh_t at a few steps t, before and after training (L: the mean prediction). The RNN's "
    "gradient vanishes over the steps and it stays near 0.167; the GRU and the LSTM learn. "
    "About 25 seconds on 2 cores with the defaults (40 when other work shares the cores)."
)


def add_parser(demos):
    """``lstmcore demo memory``, run by ``run``; ``demos`` are the ``demo`` command's subcommands."""
    parser = demos.add_parser(
        "memory",
        help="why gates: RNN, GRU and LSTM on the adding problem, and their gradients over time",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--steps",
        type=arguments.whole_number("memory_steps"),
        default=100,
        metavar="T",
        help="sequence length T (default %(default)s)",
    )
    parser.add_argument("--hidden", type=arguments.whole_number("hidden"), default=32, help="default %(default)s")
    parser.add_argument("--epochs", type=arguments.whole_number("epochs"), default=20, help="default %(default)s")
    parser.add_argument(
        "--samples", type=arguments.whole_number("samples"), default=10_000, help="training sequences (default %(default)s)"
    )
    parser.add_argument("--batch-size", type=arguments.whole_number("batch_size"), default=64, help="default %(default)s")
    parser.add_argument("--lr", type=arguments.positive_float, default=1e-2, help="Adam's rate (default %(default)s)")
    parser.add_argument("--seed", type=arguments.whole_number("seed"), default=0, help="default %(default)s")
    parser.add_argument(
        "--plot",
        type=arguments.nonempty_path,
        metavar="PNG",
        help="write the gradient norms over t and the validation curves to this PNG (needs matplotlib)",
    )
    parser.set_defaults(run=run)
    return parser


def table_steps(steps):
    """The steps t shown in the table: 0, T/4, T/2, 3T/4, T-1 (without repeats)."""
    return sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})


def format_gradient_table(results, steps, attribute):
    """One row per shown t, one column per kind: the mean ||dL/dh_t||."""
    lines = ["     t" + "".join(f"{result.kind:>11}" for result in results)]
    for t in table_steps(steps):
        lines.append(f"{t:6d}" + "".join(f"{getattr(result, attribute)[t]:11.1e}" for result in results))
    return "\n".join(lines)


def run(args):
    started = time.perf_counter()
    check_model_size(
        parameters=lstm_parameters(2, args.hidden, 1),
        batch_size=max(args.batch_size, experiment.VALIDATION_SAMPLES),
        steps=args.steps,
        hidden=args.hidden,
        layers=1,
    )
    check_output_paths(args.plot)
    train, validation = experiment.adding_data(args.steps, args.samples, args.seed)
    print(
        f"== The adding problem, T = {args.steps}: the first marked number must be held for "
        f"{args.steps - args.steps // 2} to {args.steps - 1} steps =="
    )
    print(
        f"   {args.samples} training and {experiment.VALIDATION_SAMPLES} validation sequences; hidden size "
        f"{args.hidden}, Adam lr {args.lr:g}, batch {args.batch_size}, {args.epochs} epochs"
    )
    # The constant 1 is the best guess in expectation; on this finite set it scores near 1/6.
    constant_mse = float(((validation[1] - 1.0) ** 2).mean())
    results = []
    for kind in experiment.KINDS:
        result = experiment.train_kind(
            kind,
            train,
            validation,
            hidden=args.hidden,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
        )
        results.append(result)
        print(
            f"{kind:>5}: validation MSE {result.val_mse:.4f} (predicting 1: {constant_mse:.4f})"
            f"   trained in {result.seconds:.1f} s",
            flush=True,
        )
    print()
    print(
        f"Mean ||dL/dh_t|| over {experiment.GRADIENT_SAMPLES} validation sequences, "
        f"L the mean prediction (read at step {args.steps - 1}): how much h_t still moves it."
    )
    print("Before training:")
    print(format_gradient_table(results, args.steps, "initial_norms"))
    print("After training:")
    print(format_gradient_table(results, args.steps, "trained_norms"))
    if args.plot is not None:
        wrote = _memory_plot.plot_memory(args.plot, results, baseline=constant_mse)
        print(
            f"wrote the plot to {args.plot}"
            if wrote
            else "note: matplotlib is not installed, so no plot was written (pip install 'lstmcore[plot]')"
        )
    print()
    scores = ", ".join(f"{result.kind} {result.val_mse:.3f}" for result in results)
    print(
        f"memory demo done in {time.perf_counter() - started:.1f} s: validation MSE {scores} "
        f"vs {constant_mse:.3f} for predicting 1"
    )
    return 0
