"""The benchmark suite (same as ``diffjpeg bench``): writes benchmarks/results/report.md and plots.

    python benchmarks/suite.py            # the full run (about 10 minutes on 2 cores)
    python benchmarks/suite.py --quick    # a smoke test; its numbers mean nothing
"""
import sys

from diffjpeg.tools.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
