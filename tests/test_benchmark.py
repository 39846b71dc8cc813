"""The benchmark suite runs end to end (tiny settings; no timing is asserted)."""
import pytest

from diffjpeg import cli


def test_bench_quick_writes_every_section(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    pytest.importorskip("cv2")
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    for section in ("Machine and versions", "Fidelity against Pillow, 4:2:0", "Fidelity against Pillow, 4:4:4",
                    "Speed and memory", "Gradient usefulness"):
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
