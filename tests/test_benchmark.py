"""The benchmark suite runs end to end (tiny settings; no timing is asserted)."""
import sys

import pytest

from diffjpeg.tools import cli


@pytest.mark.slow  # 30-40 s on 2 cores: the whole suite in quick mode; gpu.py's smoke test below stays
def test_bench_quick_writes_every_section(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    pytest.importorskip("cv2")
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    for section in ("Machine and versions", "Fidelity against Pillow, 4:2:0", "Fidelity against Pillow, 4:4:4",
                    "Speed and memory", "Scaling with the image size", "Gradient usefulness"):
        assert section in report
    assert (tmp_path / "speed.png").stat().st_size > 0
    assert (tmp_path / "fidelity_420.png").stat().st_size > 0
    # exact mode is the real codec: 100 dB (identical) in its fidelity column
    fidelity = report.split("## Fidelity against Pillow, 4:2:0")[1].split("Identical pixels")[0]
    rows = [line.split("|") for line in fidelity.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows and all(float(r[2]) == 100.0 for r in rows)


def test_cli_rejects_unknown_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"])
    assert e.value.code != 0


def test_gpu_script_runs_on_the_cpu_and_writes_every_section(tmp_path):
    """benchmarks/gpu.py end to end on the CPU, tiny: one test, two photos, two qualities, no compile."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("skimage")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("gpu_benchmark", path)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    out = tmp_path / "gpu.md"
    argv = ["--device", "cpu", "--quick", "--no-compile", "--out", str(out),
            "--tests", "tests/test_validation.py::test_mismatched_coefficients_rejected",
            "--photos", "chelsea", "camera", "--crop", "24", "--qualities", "50", "100",
            "--batch", "1", "--size", "32", "--warmup", "1", "--repeats", "1"]
    assert gpu.main(argv) == 0
    report = out.read_text()
    for section in ("## Machine and versions", "## Settings", "## 1. Tests on cpu", "## 2. Exact mode against Pillow",
                    "## 3. Speed and memory on cpu, eager", "## 3b. Speed and memory under torch.compile", "## 4. Targets of issue 10",
                    "_Total run time"):
        assert section in report
    assert "**1 passed, 0 failed, 0 errors" in report
    # 2 photos x 2 qualities x 3 subsamplings x 4 dtypes; float32 and uint8 go through the exact codec unchanged
    assert "/ 48 cases" in report
    assert "| float32 | 4/4 | 4/4 | 4/4 |" in report and "| uint8 | 4/4 | 4/4 | 4/4 |" in report
    for target in ("float forward+backward ≥ 2 Gpx/s", "exact forward ≥ 2 Gpx/s", "10x kornia"):
        assert target in report
    assert out.with_suffix(".json").stat().st_size > 0


def test_read_benchmark_runs_and_checks_pixels(tmp_path):
    """benchmarks/read.py end to end, tiny: the 64x64 set and a batch of 4;
    it checks diffjpeg's pixels against Pillow's before timing (no timing is asserted)."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("skimage")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "read.py"
    spec = importlib.util.spec_from_file_location("read_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "read.md"
    assert bench.main(["--sizes", "64", "--quick", "--batch", "4", "--out", str(out)]) == 0
    report = out.read_text()
    assert "| 64x64 |" in report and "| 4 | 256x256 |" in report and "ratio" in report


def test_surrogate_tasks_run_and_report_every_task(tmp_path):
    """diffjpeg.tools.bench.surrogates end to end, tiny (its numbers mean nothing): every task,
    a diffjpeg layer, the noise estimator and kornia side by side, and the attack's baselines."""
    pytest.importorskip("skimage")
    from diffjpeg.tools.bench import surrogates

    report = surrogates.run(tmp_path, quick=True, layers=("exact/fourier-fejer-1", "soft/noise", "kornia"), progress=lambda line: None)
    text = report.read_text()
    for column in ("watermark q15", "watermark mixed", "attack q50", "attack q75", "recovery"):
        assert f"| {column} " in text or f"| {column} |" in text
    for row in ("| exact/fourier-fejer-1 |", "| soft/noise |", "| kornia |", "| none |", "| BPDA |", "| EOT |"):
        assert row in text
    assert "PGD success without JPEG" in text and "Machine:" in text
    assert surrogates.render(tmp_path / "surrogates.json") == text


def test_scaling_table_measures_every_size_and_mode():
    """benchmarks/scaling.py's table, tiny: positive throughputs, and the memory probe reads a peak."""
    from diffjpeg.tools.bench import scaling

    rows = scaling.scaling(((2, 16, 16), (1, 24, 40)), repeats=1, memory=False)
    assert [(r["size"], r["mode"]) for r in rows] == [(s, m) for s in ("2x16x16", "24x40") for m in scaling.MODES]
    assert all(r["forward Mpx/s"] > 0 and r["forward+backward Mpx/s"] > 0 for r in rows)
    assert "| 24x40 | soft |" in scaling.section(rows)
    if sys.platform == "linux":  # the probe reads /proc/self
        assert scaling.peak_bytes("float", 1, 256, 256, grad=True) > 0
