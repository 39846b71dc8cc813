"""The ``diffjpeg`` command. Subcommands: ``bench``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="diffjpeg", description="Differentiable JPEG, bit-exact with libjpeg-turbo.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bench", help="run the benchmark suite (fidelity, speed, memory, gradients)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from .benchmark import main as bench

        return bench(rest)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
