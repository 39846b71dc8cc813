"""What ``import diffjpeg`` costs on top of ``import torch``: no compiler
(``torch._dynamo`` takes a second or more to import), no optional package."""
import json
import statistics
import subprocess
import sys

import pytest

# loaded by none of diffjpeg's imports: the compiler stack, and the optional packages
HEAVY = ("torch._dynamo", "torch._inductor", "sympy", "torchvision", "kornia", "cv2", "skimage", "sklearn", "scipy", "matplotlib")


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import sys, json; json.dump(sorted(sys.modules), sys.stdout)"
    return set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))


def test_import_loads_nothing_heavy_beyond_torch():
    torch_only = _modules_after("import torch")
    ours = _modules_after("import diffjpeg")
    extra = sorted(m for m in ours - torch_only if not m.startswith("diffjpeg"))
    heavy = sorted(m for m in ours if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], f"import diffjpeg loads {heavy[:10]}"
    # numpy, Pillow and jpeglib are diffjpeg's own dependencies; nothing else is pulled in
    assert [m for m in extra if m.split(".")[0] not in ("numpy", "PIL", "jpeglib", "diffjpeg")] == []


def _import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


@pytest.mark.slow  # ten fresh interpreters, 15-30 s on 2 loaded cores
def test_import_costs_at_most_a_fifth_more_than_torch():
    """Median of 5 interleaved runs each (so that load on the machine hits both alike)."""
    torch_times, ours = [], []
    for _ in range(5):
        torch_times.append(_import_seconds("torch"))
        ours.append(_import_seconds("diffjpeg"))
    ratio = statistics.median(ours) / statistics.median(torch_times)
    assert ratio <= 1.2, f"import diffjpeg {statistics.median(ours):.2f} s, import torch {statistics.median(torch_times):.2f} s"
