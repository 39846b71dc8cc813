"""The ``diffjpeg`` command line: every subcommand, checked against Pillow, and its errors."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.tools import cli
from diffjpeg.tools.demo import centre_crop, recover_quality
from diffjpeg.tools.images import sample_image
from diffjpeg.tools.metrics import psnr
from tests.helpers import PIL_SUBSAMPLING, pillow_pixels


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 61x45 piece of the bundled photo as a PNG (odd sizes: edge padding)."""
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(sample_image()[60:105, 100:161]).save(path)
    return path


# ---------------------------------------------------------------- compress
@pytest.mark.parametrize("quality, subsampling, flags", [
    (50, "4:2:0", []),
    (5, "4:4:4", ["--optimize"]),
    (93, "4:2:2", ["--progressive"]),
    (0, "4:2:0", []),
])
def test_compress_writes_what_pillow_writes(photo, tmp_path, capsys, quality, subsampling, flags):
    out = tmp_path / "out.jpg"
    argv = ["compress", str(photo), "-q", str(quality), "--subsampling", subsampling, "-o", str(out)] + flags
    assert cli.main(argv) == 0
    report = capsys.readouterr().out
    a = np.array(Image.open(photo))
    with Image.open(out) as written:
        assert written.format == "JPEG" and written.mode == "RGB" and written.size == (61, 45)
        assert bool(written.info.get("progressive")) == ("--progressive" in flags)
        decoded = np.array(written)
    reference = pillow_pixels(a, quality=quality, subsampling=PIL_SUBSAMPLING[subsampling],
                              optimize="--optimize" in flags, progressive="--progressive" in flags)
    np.testing.assert_array_equal(decoded, reference)
    # and the file holds what the exact codec computes
    expected = diffjpeg.jpeg(torch.from_numpy(a).permute(2, 0, 1).contiguous(), quality=quality, subsampling=subsampling)
    np.testing.assert_array_equal(decoded, expected.permute(1, 2, 0).numpy())
    assert f"wrote {out}: {out.stat().st_size} bytes" in report
    assert f"PSNR against the input: {psnr(decoded, a):.2f} dB" in report
    assert f"decoded pixels identical (all {a.size} samples)" in report


def test_compress_converts_other_modes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 27, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    sixteen = (np.arange(20 * 27, dtype=np.uint16).reshape(20, 27) * 120)
    Image.fromarray(sixteen).save(tmp_path / "gray16.png")
    assert cli.main(["compress", str(tmp_path / "rgba.png"), "-q", "70", "-o", str(tmp_path / "a.jpg")]) == 0
    assert cli.main(["compress", str(tmp_path / "gray16.png"), "-q", "70", "-o", str(tmp_path / "b.jpg")]) == 0
    notes = capsys.readouterr().err
    assert "transparency composited onto white" in notes and "scaled to 8 bits" in notes

    alpha = rgba[..., 3:].astype(np.float64) / 255
    flat = Image.alpha_composite(Image.new("RGBA", (27, 20), "white"), Image.fromarray(rgba, "RGBA")).convert("RGB")
    assert np.abs(np.array(flat) - (rgba[..., :3] * alpha + 255 * (1 - alpha))).max() <= 1
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "a.jpg")), pillow_pixels(np.array(flat), quality=70))

    with Image.open(tmp_path / "b.jpg") as gray:
        assert gray.mode == "L"
        eight = np.clip(np.rint(sixteen / 257), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(np.array(gray), pillow_pixels(eight, quality=70))


# ---------------------------------------------------------------- demo, compare
def test_demo_runs_on_the_bundled_photo(tmp_path, capsys):
    figure = tmp_path / "demo.png"
    threads = torch.get_num_threads()
    assert cli.main(["demo", "-o", str(figure), "-q", "20", "75", "--steps", "2", "--starts", "2"]) == 0
    assert torch.get_num_threads() == threads  # --threads (default 1) holds only during the command
    out = capsys.readouterr().out
    assert "every pixel identical to Pillow's at 2 of 2 qualities" in out
    assert "exact forward identical to Pillow at 14 of 14 qualities" in out
    assert "true quality found:" in out
    with Image.open(figure) as im:
        assert im.format == "PNG" and im.width > 600


def test_compare_writes_its_figure_for_a_grayscale_image(tmp_path, capsys):
    path = tmp_path / "gray.png"
    Image.fromarray(sample_image()[:40, :56, 1]).save(path)
    figure = tmp_path / "compare.svg"
    assert cli.main(["compare", str(path), "-o", str(figure), "-q", "30", "--steps", "0"]) == 0
    out = capsys.readouterr().out
    assert "56x40 grayscale" in out and "every pixel identical to Pillow's at 1 of 1 qualities" in out
    assert "Recovering" not in out
    assert figure.read_text().lstrip().startswith("<?xml")


def test_recover_quality_finds_pillows_quality():
    a = centre_crop(sample_image(), 64)
    r = recover_quality(a, [35, 80], steps=30, starts=8)
    assert r.identical == [True, True] and r.correct == [True, True]
    assert [round(f) for f in r.found] == [35, 80]
    assert r.trajectories.shape == (31, 2, 8)


def test_missing_matplotlib_is_one_line(monkeypatch, capsys, photo):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["compare", str(photo)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffjpeg: error: the figure needs matplotlib")


# ---------------------------------------------------------------- help, optimize-tables, missing packages
def status(argv) -> int:
    """The exit status of ``cli.main(argv)``, returned or raised by argparse."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("command", ["demo", "compare", "compress", "optimize-tables", "bench"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert f"usage: diffjpeg {command}" in capsys.readouterr().out


def test_optimize_tables_passes_its_options_to_the_learner(monkeypatch, tmp_path, capsys):
    from diffjpeg.tools import qtables

    seen = {}
    Image.fromarray(sample_image()[:16, :16]).save(tmp_path / "a.png")
    monkeypatch.setattr(qtables, "learn_qtables", lambda images, **kwargs: seen.update(kwargs, images=len(images)) or diffjpeg.standard_tables().long())
    out = tmp_path / "t.json"
    argv = ["optimize-tables", str(tmp_path), "--lambda", "0.5", "--steps", "3", "--crop", "0", "--init", "70",
            "--mode", "soft", "--huffman", "standard", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    assert seen["images"] == 1 and seen["lam"] == 0.5 and seen["steps"] == 3 and seen["crop"] is None
    assert seen["init"] == 70 and seen["mode"] == "soft" and seen["huffman"] == "standard" and seen["progress"] is False
    seen.clear()  # the old spelling of the option still works
    assert cli.main([*argv[:-5], "--forward", "float", *argv[-3:]]) == 0 and seen["mode"] == "float"
    assert torch.equal(qtables.load_qtables(out), diffjpeg.standard_tables().long())


def test_a_missing_package_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert cli.main(["bench", "--quick", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == 'diffjpeg: error: bench needs scikit-learn: pip install "diffjpeg[bench]" (or pip install scikit-learn)\n'
    assert not any(tmp_path.iterdir())


def test_optimize_tables_mistakes_are_one_line(tmp_path, capsys):
    for argv in ([str(tmp_path / "missing")], [str(tmp_path), "--lambda", "-1"], [str(tmp_path)]):
        assert status(["optimize-tables", *argv]) not in (0, None), argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("diffjpeg: error: "), (argv, err)


# ---------------------------------------------------------------- mistakes: one line, non-zero, no traceback
def _one_line_error(stderr: str, expected: str, name: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("diffjpeg: error: "), (name, stderr)
    assert expected in stderr, (name, stderr)
    assert "Traceback" not in stderr, name


def test_mistakes_give_one_line_from_the_real_command(tmp_path, photo):
    """``python -m diffjpeg`` in child processes, side by side (each imports
    torch): one mistake argparse finds, one found while running. The other
    mistakes go through the same ``main`` in-process below."""
    (tmp_path / "notes.txt").write_text("not an image")
    good, out = str(photo), str(tmp_path / "o.jpg")
    cases = {
        "not an image": (["compress", str(tmp_path / "notes.txt"), "-q", "50", "-o", out], "not an image"),
        "quality -5": (["compress", good, "-q", "-5", "-o", out], "quality must be an integer from 0 to 100, got '-5'"),
    }
    runs = {name: subprocess.Popen([sys.executable, "-m", "diffjpeg", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=tmp_path) for name, (argv, _) in cases.items()}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode != 0, name
        _one_line_error(stderr, cases[name][1], name)
        assert "Traceback" not in stdout, name
    assert not (tmp_path / "o.jpg").exists()


@pytest.mark.parametrize("argv, expected", [
    (["compress", "{cut}", "-q", "50", "-o", "{out}"], "cannot read"),
    (["compress", "{dir}", "-q", "50", "-o", "{out}"], "is a folder"),
    (["compress", "{good}", "-q", "101", "-o", "{out}"], "quality must be an integer from 0 to 100, got '101'"),
    (["compress", "{good}", "-q", "abc", "-o", "{out}"], "got 'abc'"),
    (["compress", "{good}", "-q", "50.5", "-o", "{out}"], "got '50.5'"),
    (["compress", "{good}", "-q", "50"], "-o/--output"),
    (["compress", "{good}", "-q", "50", "-o", "{dir}"], "it is a folder"),
    (["compress", "{good}", "-q", "50", "-o", "{out}", "--fast"], "unrecognized arguments: --fast"),
    (["compress", "{dir}/nope.png", "-q", "50", "-o", "{out}"], "no such file"),
    (["compress", "{notes}", "-q", "50", "-o", "{out}"], "not an image"),
    (["compress", "{good}", "-q", "50", "--subsampling", "4:1:1", "-o", "{out}"], "invalid choice: '4:1:1'"),
    (["compress", "{good}", "-q", "50", "-o", "{dir}/no/dir/o.jpg"], "does not exist"),
    (["compare", "{good}", "-o", "{dir}/fig.xyz"], "must end in one of"),
    (["compare", "{good}", "-o", "{dir}/no/fig.png"], "does not exist"),
    (["compare", "{dir}/nope.png"], "no such file"),
    (["demo", "-q", "10", "200"], "got '200'"),
    (["demo", "--steps", "-1"], "steps must be an integer"),
    (["demo", "--starts", "0"], "starts must be an integer"),
    (["demo", "--threads", "0"], "threads must be an integer"),
    (["demo", "--image", "{cut}"], "cannot read"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "required"),
])
def test_mistakes_give_one_line(tmp_path, photo, capsys, argv, expected):
    (tmp_path / "cut.png").write_bytes(photo.read_bytes()[:300])
    (tmp_path / "notes.txt").write_text("not an image")
    names = {"cut": tmp_path / "cut.png", "dir": tmp_path, "good": photo, "out": tmp_path / "o.jpg", "notes": tmp_path / "notes.txt"}
    try:
        status = cli.main([a.format(**names) for a in argv])
    except SystemExit as e:  # argparse's way
        status = e.code
    assert status not in (0, None)
    captured = capsys.readouterr()
    _one_line_error(captured.err, expected, argv)
    assert not (tmp_path / "o.jpg").exists()
