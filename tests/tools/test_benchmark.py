"""The benchmark suite runs end to end (tiny settings; no timing is asserted)."""
import sys

import pytest

from diffjpeg.stages.rounding import DEFAULT_ROUNDING
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


@pytest.mark.slow  # 12 s of the 3-minute default run: run it (-m slow) before each GPU session's device script
def test_gpu_script_runs_on_the_cpu_and_writes_every_section(tmp_path):
    """benchmarks/gpu.py end to end on the CPU, tiny: one test, two photos, two qualities, no compile."""
    import importlib.util
    import json
    from pathlib import Path

    pytest.importorskip("skimage")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("gpu_benchmark", path)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    out = tmp_path / "gpu.md"
    argv = ["--device", "cpu", "--quick", "--no-compile", "--out", str(out),
            "--tests", "tests/core/test_validation.py::test_mismatched_coefficients_rejected",
            "--photos", "chelsea", "camera", "--crop", "24", "--qualities", "50", "100",
            "--batch", "1", "--size", "32", "--warmup", "1", "--repeats", "1"]
    assert gpu.main(argv) == 0
    report = out.read_text()
    for section in ("## Machine and versions", "## Settings", "## 1. Tests on cpu", "## 2. Exact mode against Pillow",
                    "## 3. Speed and memory on cpu, eager", "## 3b. Speed and memory under torch.compile", "## 4. First call on cpu",
                    "## 5. Decoding on cpu", "## 6. Targets of issue 29",
                    "_Total run time"):
        assert section in report
    assert "**1 passed, 0 failed, 0 errors" in report
    # 2 photos x 2 qualities x 3 subsamplings x 4 dtypes; float32 and uint8 go through the exact codec unchanged
    assert "/ 48 cases" in report
    assert "| float32 | 4/4 | 4/4 | 4/4 |" in report and "| uint8 | 4/4 | 4/4 | 4/4 |" in report
    for target in ("exact forward ≥ 25 Gpx/s (float32)", "soft forward+backward ≥ 10 Gpx/s (bfloat16)", "20x kornia", "first call ≤ 5 s, fresh process (exact float32)"):
        assert target in report
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["device"] and data["date"]
    # issue 29's schema: one record per speed row
    fields = {"backend", "mode", "dtype", "compiled", "fwd_mps", "fwd_bwd_mps", "peak_mib"}
    assert data["records"] and all(fields <= set(r) for r in data["records"])
    assert {(r["mode"], r["backend"]) for r in data["records"] if r["method"] == "diffjpeg"} == {
        (m, b) for m in ("exact", "float", "soft") for b in ("auto", "torch")}
    assert all(r["fwd_mps"] > 0 and r["fwd_bwd_mps"] > 0 for r in data["records"] if "error" not in r)
    first = data["first call"]
    assert [(r["mode"], r["dtype"]) for r in first] == [("exact", "float32")] and first[0]["fresh s"] > 0 and first[0]["warm s"] > 0


def test_read_benchmark_runs_and_checks_pixels(tmp_path):
    """benchmarks/read.py end to end, tiny: the 64x64 set and a batch of 4;
    it checks diffjpeg's pixels against Pillow's before timing (no timing is asserted)."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("skimage")
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "read.py"
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
    for column in ("watermark q15", "watermark mixed", "attack q50", "attack q75", "recovery", "tables BD-rate"):
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
    flat = scaling.flat_cost(((1, 16, 16), (1, 24, 40)), modes=("exact", "float"), rounds=2)
    assert list(flat) == ["exact", "float"] and all(list(p) == ["forward", "forward+backward"] for p in flat.values())
    assert all(len(r) == 2 and all(v > 0 for v in r) for p in flat.values() for r in p.values())
    text = scaling.section(rows, flat, ((1, 16, 16), (1, 24, 40)))
    assert "- float: 24x40 / 16x16 throughput, median (range) of 2 alternating rounds: forward " in text
    if sys.platform == "linux":  # the probe reads /proc/self
        assert scaling.peak_bytes("float", 1, 256, 256, grad=True) > 0


def test_surrogate_task_tables_scores_real_files_and_merges_into_earlier_runs(tmp_path):
    """Task (d), tiny: tables learned through a diffjpeg layer and kornia over 2 seeds, scored by BD-rate
    through real Pillow files, merged into the report of an earlier run of another task."""
    pytest.importorskip("skimage")
    import json

    import torch

    from diffjpeg.tools.bench import surrogates
    from diffjpeg.tools.qtables import ijg_curve

    surrogates.run(tmp_path, quick=True, layers=("exact/sigmoid",), tasks=("recovery",), progress=lambda line: None)
    layers = ("exact/sigmoid", "kornia")
    report = surrogates.run(tmp_path, quick=True, layers=layers, tasks=("tables",), seeds=(0, 1), progress=lambda line: None,
                            command="tables run", merge=True)
    data = json.loads((tmp_path / "surrogates.json").read_text())
    assert set(data["scores"]) == {"recovery", "tables BD-rate"}  # the earlier column stays
    assert [r["columns"] for r in data["runs"]] == [["recovery"], ["tables BD-rate"]]
    settings = data["runs"][1]["settings"]
    assert "table_lambda" in settings and "recovery_steps" not in settings
    anchor = ijg_curve(surrogates.photos_uint8(surrogates.TEST_PHOTOS), settings["table_qualities"])
    names = [n for n in layers if n != "kornia" or surrogates.kornia_table_codec() is not None]
    assert list(data["tables"]) == names
    for name in names:
        assert len(data["scores"]["tables BD-rate"][name]) == 2
        for tables, score in zip(data["tables"][name], data["scores"]["tables BD-rate"][name]):
            t = torch.tensor(tables)
            assert t.shape == (2, 8, 8) and 1 <= int(t.min()) and int(t.max()) <= 255
            # the recorded score is the BD-rate of those tables through real files, recomputed here
            assert surrogates.tables_bd_rate(t, anchor, settings["table_qualities"]) == pytest.approx(score, abs=1e-9)
    text = report.read_text()
    assert "| tables BD-rate |" in text and "(lower is better)" in text
    assert "## Run 1: recovery" in text and "## Run 2: tables BD-rate" in text and "`tables run`" in text
    assert surrogates.render(tmp_path / "surrogates.json") == text


def test_kornia_table_codec_gives_kornia_coefficients_in_our_layout():
    """The coefficients diffjpeg.rate prices for kornia are kornia's, laid out as ours: they match diffjpeg's
    float pass with kornia's (polynomial) surrogate on all but a few coefficients (kornia's chroma
    downsampling differs), and the gradient reaches the tables through kornia's quantizer."""
    pytest.importorskip("kornia")
    import torch

    import diffjpeg
    from diffjpeg.tools.bench.methods import kornia_table_codec

    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    tables = diffjpeg.standard_tables().float().requires_grad_()
    decoded, c = kornia_table_codec()(x, tables)
    ours = diffjpeg.encode(x, qtables=tables.detach(), mode="float", rounding="polynomial")
    assert c.y.shape == ours.y.shape and c.cb.shape == ours.cb.shape and decoded.shape == x.shape
    for theirs, mine in zip(c.components, ours.components):
        assert float((theirs.round() == mine.round()).float().mean()) > 0.95
    diffjpeg.RateDistortionLoss(0.03)(decoded, x, c).loss.backward()
    assert bool((tables.grad != 0).all())


def test_reich_peer_is_none_and_reported_not_installed_without_its_package(monkeypatch):
    """Reich et al.'s layer is optional: without its package (a None in sys.modules makes the import fail)
    the adapter is None, the suite leaves it out, and the speed section says it is not installed."""
    from diffjpeg.tools.bench import methods
    from diffjpeg.tools.bench.suite import peer_ratios

    monkeypatch.setitem(sys.modules, "diff_jpeg", None)
    assert methods.reich_jpeg() is None
    assert methods.make_method(methods.REICH_STE) is None
    assert methods.REICH_STE not in methods.methods("4:2:0")
    rows = [{"method": f"float/{DEFAULT_ROUNDING}", "forward+backward MP/s": 20.0}, {"method": f"exact/{DEFAULT_ROUNDING}", "forward+backward MP/s": 16.0},
            {"method": "kornia", "forward+backward MP/s": 2.5}]
    lines = peer_ratios(rows)
    assert f"- {methods.REICH_STE}: not installed: pip install --no-deps git+https://github.com/necla-ml/Diff-JPEG" in "\n".join(lines)
    # the fastest peer present is kornia then: float 8x, exact 6.4x
    assert lines[0] == "- forward+backward / the fastest peer present (kornia, 2.50 MP/s): float 8.00x, exact 6.40x"


def test_peer_ratios_divide_by_the_fastest_peer_present():
    from diffjpeg.tools.bench.methods import REICH_STE
    from diffjpeg.tools.bench.suite import peer_ratios

    rows = [{"method": f"float/{DEFAULT_ROUNDING}", "forward+backward MP/s": 30.0}, {"method": f"exact/{DEFAULT_ROUNDING}", "forward+backward MP/s": 24.0},
            {"method": "float/polynomial", "forward+backward MP/s": 99.0},  # not the default surrogate: not compared
            {"method": "kornia", "forward+backward MP/s": 3.0}, {"method": REICH_STE, "forward+backward MP/s": 15.0}]
    lines = peer_ratios(rows)
    assert lines[0] == f"- forward+backward / the fastest peer present ({REICH_STE}, 15.00 MP/s): float 2.00x, exact 1.60x"
    assert "- forward+backward / kornia (3.00 MP/s): float 10.00x, exact 8.00x" in lines
    assert not any("not installed" in line for line in lines)


def test_reich_peer_maps_unit_range_to_unit_range_close_to_pillow():
    """The adapter around Reich et al.'s diff_jpeg_coding (ste=True) takes and gives (B, 3, H, W) in [0, 1],
    and its output is close to Pillow's JPEG of the same image, though not equal: their layer downsamples the
    chroma with kornia's antialiased bilinear rescale (libjpeg averages 2x2) and keeps the pixels in float
    between stages. Measured at quality 90 on these 64x64 crops: 44.1 and 45.2 dB against Pillow (pixels up
    to 8 levels apart), where the input itself is 36.0 and 36.3 dB from Pillow's JPEG; the bounds leave ~4 dB."""
    pytest.importorskip("diff_jpeg")
    pytest.importorskip("skimage")
    import torch

    from diffjpeg.tools.bench.methods import REICH_STE, float_tensor, make_method, photos, reich_jpeg, uint8_array
    from diffjpeg.tools.metrics import psnr
    from diffjpeg.tools.reference import pillow_roundtrip

    f = reich_jpeg()
    assert f is not None and make_method(REICH_STE) is not None
    images = photos(("astronaut", "chelsea"), size=64)
    x = torch.stack([float_tensor(a) for a in images]).requires_grad_()
    y = f(x, torch.tensor(90.0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    for a, out in zip(images, y):
        real = pillow_roundtrip(a, 90)
        assert psnr(uint8_array(out), real) >= 40.0
        assert psnr(uint8_array(out), real) >= psnr(a, real) + 5  # it codes: far closer to JPEG than the input is
    y.sum().backward()  # the straight-through backward reaches the input
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="quality"):
        f(x.detach(), torch.tensor(100.0))
