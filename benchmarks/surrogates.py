"""Gradient-usefulness tasks that tell the surrogates apart (diffjpeg.tools.bench.surrogates):
writes benchmarks/results/surrogates.md and surrogates.json.

    python benchmarks/surrogates.py            # the full run: 3 seeds, one thread (about 45 minutes on a loaded 2-core machine)
    python benchmarks/surrogates.py --quick    # a smoke test; its numbers mean nothing
    python benchmarks/surrogates.py --tasks tables --merge   # rerun one task (here (d), learned tables),
                                               # keeping the other columns of results/surrogates.json
    python benchmarks/surrogates.py --layers soft/sigmoid-0.03 --merge   # add one layer's row, keeping the others
"""
import argparse
import sys
from pathlib import Path

from diffjpeg.tools.bench import surrogates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results", help="folder for the report (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that it runs; its numbers mean nothing")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: 0 1 2; --quick: 0)")
    parser.add_argument("--layers", nargs="+", default=None,
                        help=f"mode/rounding names (rounding: a name, fourier-DAMPING-ORDER or sigmoid-TEMPERATURE) or kornia (default: {' '.join(surrogates.LAYERS)}; for tables: {' '.join(surrogates.TABLE_LAYERS)})")
    parser.add_argument("--tasks", nargs="+", default=list(surrogates.TASKS), choices=surrogates.TASKS, help="tasks (default: all)")
    parser.add_argument("--merge", action="store_true",
                        help="keep what OUT/surrogates.json holds that this run does not measure: other columns, and other layers' rows (each run is reported)")
    parser.add_argument("--render", type=Path, default=None, help="only rewrite the Markdown report of this surrogates.json")
    args = parser.parse_args(argv)
    if args.render:
        report = args.render.with_suffix(".md")
        report.write_text(surrogates.render(args.render))
        print(report.read_text())
        return 0
    command = "python benchmarks/surrogates.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = surrogates.run(args.out, quick=args.quick, layers=args.layers, tasks=args.tasks, seeds=args.seeds,
                            progress=lambda line: print(line, flush=True), command=command.strip(), merge=args.merge)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
