"""The machine a benchmark ran on: CPU, cores, load, threads, the exact kernel, GPU, versions."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ... import __version__
from ...backends import exact


def _cpuinfo() -> dict[str, str]:
    """The first value of each field of /proc/cpuinfo (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def machine() -> dict:
    cpuinfo = _cpuinfo()
    cpu = cpuinfo.get("model name") or platform.processor() or platform.machine()
    versions = {"diffjpeg": __version__, "torch": torch.__version__, "Pillow": Image.__version__, "numpy": np.__version__}
    for name in ("kornia", "cv2", "skimage", "sklearn"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    try:  # Reich et al.'s package has no __version__; it imports kornia
        module = __import__("diff_jpeg")
    except ImportError:
        versions["diff_jpeg (Reich et al.)"] = "not installed"
    else:
        try:
            versions["diff_jpeg (Reich et al.)"] = importlib.metadata.version("diff_jpeg")
        except importlib.metadata.PackageNotFoundError:  # on the path without pip's metadata (a checkout)
            versions["diff_jpeg (Reich et al.)"] = f"imported from {os.path.dirname(module.__file__)} (no package metadata)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load average at start (1 min)": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
        "torch threads": torch.get_num_threads(),
        "exact kernel (diffjpeg/backends/_native.c)": ("compiled" if exact.compiled() else "not built: tensor stages only")
        + (", CPU has AVX2" if "avx2" in cpuinfo.get("flags", "").split() else ", CPU without AVX2 (portable build)"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        **versions,
    }
