"""Cost per pixel and memory from 256² batches to 12 MP, each mode: writes benchmarks/results/scaling.md.

    python benchmarks/scaling.py           # about 5 minutes on 2 cores
    python benchmarks/scaling.py --quick   # a smoke test; its numbers mean nothing
"""
import sys

from diffjpeg.tools.bench.scaling import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
