"""The ``diffjpeg`` command line: every subcommand, checked against Pillow, and its errors."""
import argparse
import io
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

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
    torch): one mistake argparse finds, two found while running (one of them an
    image over Pillow's limit: no DecompressionBombWarning either), and ``-o -``
    writing the JPEG to a real stdout. The other mistakes go through the same
    ``main`` in-process below."""
    from tests.tools.test_tools import huge_png

    (tmp_path / "notes.txt").write_text("not an image")
    big = huge_png(tmp_path / "big.png")
    good, out = str(photo), str(tmp_path / "o.jpg")
    cases = {
        "not an image": (["compress", str(tmp_path / "notes.txt"), "-q", "50", "-o", out], "not an image"),
        "quality -5": (["compress", good, "-q", "-5", "-o", out], "quality must be an integer from 0 to 100, got '-5'"),
        "too large": (["compress", str(big), "-q", "50", "-o", out], "12000x12000 is 144,000,000 pixels"),
        "to stdout": (["compress", good, "-q", "50", "-o", "-"], None),
    }
    runs = {name: subprocess.Popen([sys.executable, "-m", "diffjpeg", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=tmp_path) for name, (argv, _) in cases.items()}
    for name, run in runs.items():
        stdout, stderr = run.communicate(timeout=300)
        stderr = stderr.decode()
        if cases[name][1] is None:
            assert run.returncode == 0, stderr
            assert stdout == diffjpeg.write(diffjpeg.encode(torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1).contiguous(), quality=50))
            assert "wrote the JPEG to stdout" in stderr
            continue
        assert run.returncode != 0, name
        _one_line_error(stderr, cases[name][1], name)
        assert b"Traceback" not in stdout, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "notes.txt"]


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


# ---------------------------------------------------------------- nothing written when a command fails
def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_huge_image_is_refused_in_one_line_before_any_write(tmp_path, capsys):
    from tests.tools.test_tools import huge_png

    big = huge_png(tmp_path / "big.png")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for argv in (["compress", str(big), "-q", "50", "-o", str(tmp_path / "big.jpg")],
                     ["compare", str(big), "-o", str(tmp_path / "fig.png")],
                     ["optimize-tables", str(tmp_path), "--out", str(tmp_path / "t.json")]):
            assert cli.main(argv) == 1
            _one_line_error(capsys.readouterr().err, "12000x12000 is 144,000,000 pixels", argv)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert _leftovers(tmp_path) == ["big.png"]


def test_an_image_larger_than_the_memory_is_refused(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setattr(cli, "available_memory", lambda: 2**19)
    assert cli.main(["compress", str(photo), "-q", "50", "-o", str(tmp_path / "o.jpg")]) == 1
    _one_line_error(capsys.readouterr().err, "compressing a 61x45 image needs about 1 MiB of memory (400 bytes per pixel); 0 MiB is available", "memory")
    assert _leftovers(tmp_path) == []


def test_a_failure_after_the_work_leaves_nothing(tmp_path, photo, capsys, monkeypatch):
    """The output is written to a temporary file and renamed: a failure at the last step leaves neither."""
    from diffjpeg.tools import reference

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reference, "pillow_jpeg", broken)  # the comparison, after the encoding
    out = tmp_path / "o.jpg"
    out.write_bytes(b"an older file")
    assert cli.main(["compress", str(photo), "-q", "50", "-o", str(out)]) == 1
    _one_line_error(capsys.readouterr().err, "No space left on device", "late failure")
    assert _leftovers(tmp_path) == ["o.jpg"] and out.read_bytes() == b"an older file"


def test_unexpected_failures_and_out_of_memory_are_one_line(tmp_path, photo, capsys, monkeypatch):
    for error, expected in ((RuntimeError("boom\n  in some kernel"), "compress failed unexpectedly: RuntimeError: boom in some kernel"),
                            (RuntimeError("DefaultCPUAllocator: can't allocate memory: 27216000000 bytes"), "compress: out of memory"),
                            (MemoryError(), "compress: out of memory"),
                            (AssertionError("Torch not compiled with CUDA enabled"), "AssertionError: Torch not compiled")):
        def fail(args, error=error):
            raise error

        monkeypatch.setitem(cli.HANDLERS, "compress", fail)
        assert cli.main(["compress", str(photo), "-q", "50", "-o", str(tmp_path / "o.jpg")]) == 1
        _one_line_error(capsys.readouterr().err, expected, repr(error))
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------- outputs: names, stdout
@pytest.mark.parametrize("name", ["x.png", "x", "x.jpg.txt"])
def test_compress_refuses_a_name_of_another_format(tmp_path, photo, capsys, name):
    assert cli.main(["compress", str(photo), "-q", "50", "-o", str(tmp_path / name)]) == 1
    _one_line_error(capsys.readouterr().err, "the name must end in .jpg, .jpeg, .jpe or .jfif", name)
    assert _leftovers(tmp_path) == []


def test_compress_to_stdout_writes_the_same_file(tmp_path, photo, capsysbinary):
    out = tmp_path / "o.JPEG"  # any case of the suffix
    assert cli.main(["compress", str(photo), "-q", "60", "-o", str(out), "--optimize"]) == 0
    capsysbinary.readouterr()
    assert cli.main(["compress", str(photo), "-q", "60", "-o", "-", "--optimize"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == out.read_bytes()
    assert b"wrote the JPEG to stdout:" in captured.err and b"identical" in captured.err
    assert _leftovers(tmp_path) == ["o.JPEG"] and not (Path.cwd() / "-").exists()


def test_figures_go_to_stdout_and_through_a_temporary_file(tmp_path, capsysbinary, monkeypatch):
    from diffjpeg.tools import demo

    seen = []

    def run(a, output, *args, **kwargs):
        seen.append(Path(output))
        assert Path(output).parent == (tmp_path if kwargs["shown_as"] != "the figure to stdout" else Path(tempfile.gettempdir()))
        Path(output).write_bytes(b"\x89PNG figure")

    monkeypatch.setattr(demo, "run", run)
    assert cli.main(["demo", "-o", "-"]) == 0
    assert capsysbinary.readouterr().out == b"\x89PNG figure" and seen[-1].suffix == ".png"
    assert cli.main(["demo", "-o", str(tmp_path / "fig.svg")]) == 0
    assert seen[-1].suffix == ".svg" and seen[-1].name != "fig.svg"
    assert _leftovers(tmp_path) == ["fig.svg"] and not any(p.exists() for p in seen)


# ---------------------------------------------------------------- compress --qtables reads optimize-tables' files
def test_compress_uses_the_tables_optimize_tables_wrote(tmp_path, photo, capsys):
    from diffjpeg.tools import qtables

    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(sample_image()[:48, :64]).save(folder / "a.png")
    for suffix in (".json", ".pt"):
        tables = tmp_path / f"t{suffix}"
        argv = ["optimize-tables", str(folder), "--steps", "2", "--crop", "16", "--init", "30", "--out", str(tables), "--quiet"]
        assert cli.main(argv) == 0
        learned = qtables.load_qtables(tables)
        out = tmp_path / "o.jpg"
        assert cli.main(["compress", str(photo), "--qtables", str(tables), "-o", str(out), "--subsampling", "4:4:4"]) == 0
        report = capsys.readouterr().out
        assert f"tables from {tables}" in report and "decoded pixels identical" in report
        with Image.open(out) as written:
            stored = written.quantization
            decoded = np.array(written)
        assert [list(stored[0]), list(stored[1])] == qtables.pillow_qtables(learned)  # natural order, as Pillow reads them
        expected = pillow_pixels(np.array(Image.open(photo)), qtables=qtables.pillow_qtables(learned), subsampling=0)
        np.testing.assert_array_equal(decoded, expected)


def test_json_tables_go_to_stdout(tmp_path, capsys, monkeypatch):
    import json

    from diffjpeg.tools import qtables

    Image.fromarray(sample_image()[:16, :16]).save(tmp_path / "a.png")
    tables = diffjpeg.standard_tables().long() + 1
    monkeypatch.setattr(qtables, "learn_qtables", lambda images, **kw: tables)
    assert cli.main(["optimize-tables", str(tmp_path), "--out", "-"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert torch.equal(torch.tensor([record["luma"], record["chroma"]]), tables)
    assert captured.err == "wrote the tables to stdout\n" and _leftovers(tmp_path) == ["a.png"]


@pytest.mark.parametrize("content, expected", [
    ("not json", "not JSON"),
    ('{"luma": 1}', 'it has no "chroma" table'),
    ('[1, 2]', 'expected an object with "luma" and "chroma"'),
    ('{"luma": [[1, 2]], "chroma": [[1, 2]]}', "must have shape (2, 8, 8)"),
    ('{"luma": ' + str([[0] * 8] * 8) + ', "chroma": ' + str([[1] * 8] * 8) + "}", "entries must be in 1..255"),
    ('{"luma": ' + str([[1.5] * 8] * 8) + ', "chroma": ' + str([[1] * 8] * 8) + "}", "must be integers"),
    ('{"luma": [["a"]], "chroma": [[1]]}', "tables.json"),
    (None, "cannot read"),
])
def test_bad_tables_files_are_one_line(tmp_path, photo, capsys, content, expected):
    tables = tmp_path / "tables.json"
    if content is not None:
        tables.write_text(content)
    assert cli.main(["compress", str(photo), "--qtables", str(tables), "-o", str(tmp_path / "o.jpg")]) == 1
    _one_line_error(capsys.readouterr().err, expected, content)
    assert not (tmp_path / "o.jpg").exists()


def test_a_torch_file_that_is_not_tables_is_one_line(tmp_path, photo, capsys):
    (tmp_path / "t.pt").write_bytes(b"not a torch file")
    torch.save({"luma": torch.ones(8, 8)}, tmp_path / "u.pt")
    for name, expected in (("t.pt", "torch.load cannot read it"), ("u.pt", 'no "chroma" table')):
        assert cli.main(["compress", str(photo), "--qtables", str(tmp_path / name), "-o", str(tmp_path / "o.jpg")]) == 1
        _one_line_error(capsys.readouterr().err, expected, name)
    assert status(["compress", str(photo), "--qtables", str(tmp_path / "t.pt"), "-q", "50", "-o", str(tmp_path / "o.jpg")]) == 2
    _one_line_error(capsys.readouterr().err, "not allowed with argument", "both")


# ---------------------------------------------------------------- optimize-tables: devices, outputs, progress
def test_optimize_tables_device_mistakes_are_one_line(tmp_path, capsys, monkeypatch):
    from diffjpeg.tools import qtables

    Image.fromarray(sample_image()[:16, :16]).save(tmp_path / "a.png")
    monkeypatch.setattr(qtables, "learn_qtables", lambda *a, **k: pytest.fail("the learner ran"))
    cases = [(["--device", "gpu0"], 2, "--device must be a device such as cpu, cuda"),
             (["--device", "cuda:99"], 1, "cuda:99")]
    if not torch.backends.cuda.is_built():
        cases.append((["--device", "cuda"], 1, "is a CPU build, without CUDA; use --device cpu"))
    for options, code, expected in cases:
        assert cli.main(["optimize-tables", str(tmp_path), "--out", str(tmp_path / "t.json"), *options]) == code
        _one_line_error(capsys.readouterr().err, expected, options)
    for options, expected in ((["--out", str(tmp_path / "no" / "t.json")], "folder"),
                              (["--out", str(tmp_path / "t.json"), "--checkpoint", str(tmp_path / "no" / "c.pt")], "folder")):
        assert cli.main(["optimize-tables", str(tmp_path), *options]) == 1
        _one_line_error(capsys.readouterr().err, expected, options)
    assert _leftovers(tmp_path) == ["a.png"]


def test_optimize_tables_failing_midway_writes_nothing(tmp_path, capsys, monkeypatch):
    from diffjpeg.tools import qtables

    Image.fromarray(sample_image()[:16, :16]).save(tmp_path / "a.png")

    def fail(images, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(qtables, "learn_qtables", fail)
    assert cli.main(["optimize-tables", str(tmp_path), "--out", str(tmp_path / "t.json")]) == 1
    _one_line_error(capsys.readouterr().err, "RuntimeError: CUDA error", "midway")
    assert _leftovers(tmp_path) == ["a.png"]


def test_optimize_tables_progress_is_plain_lines_in_a_log(tmp_path, capsys):
    Image.fromarray(sample_image()[:32, :32]).save(tmp_path / "a.png")
    argv = ["optimize-tables", str(tmp_path), "--steps", "20", "--crop", "16", "--batch-size", "1", "--out", str(tmp_path / "t.json")]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 11, err  # a line at each tenth, and "wrote"
    assert lines[0].startswith("learning tables: step 2/20 (10%)  loss ") and " psnr " in lines[0]
    assert lines[-2].startswith("learning tables: step 20/20 (100%)") and lines[-1] == f"wrote {tmp_path / 't.json'}"


def test_progress_is_a_bar_on_a_terminal():
    from diffjpeg.tools.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    with Progress(5, "learning tables", file=screen) as p:
        for _ in range(5):
            p.update(loss="0.1")
    assert "\r" in screen.getvalue() and "5/5" in screen.getvalue() and "loss 0.1" in screen.getvalue()


def test_learn_qtables_is_silent_by_default_and_reports_to_a_callable(capsys):
    from diffjpeg.tools.qtables import learn_qtables

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    records = []
    learn_qtables(x, steps=3, crop=16, progress=records.append)
    assert capsys.readouterr() == ("", "")
    assert [r["step"] for r in records] == [1, 2, 3] and all(r["steps"] == 3 and r["bpp"] > 0 for r in records)
    learn_qtables(x, steps=2, crop=16)
    assert capsys.readouterr() == ("", "")
    with pytest.raises(TypeError, match="progress must be True, False or a callable"):
        learn_qtables(x, steps=1, progress="yes")


# ---------------------------------------------------------------- help, threads, bench
def _subcommands():
    top = cli.parser()
    return next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_has_help_with_its_default():
    for name, sub in _subcommands().items():
        text = " ".join(sub.format_help().split())  # the help as printed, lines joined
        assert "--threads N" in text, name
        for action in sub._actions:
            assert action.help, (name, action.dest)
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default)
                assert f"{' '.join(action.help.split())} (default: {shown})" in text, (name, action.dest)


@pytest.mark.parametrize("command, default", [("demo", 1), ("compress", 1), ("optimize-tables", 1), ("bench", None)])
def test_threads_hold_only_during_the_command(monkeypatch, photo, tmp_path, command, default):
    seen = []
    monkeypatch.setitem(cli.HANDLERS, command, lambda args: seen.append((args.threads, torch.get_num_threads())) or 0)
    before = torch.get_num_threads()
    argv = {"demo": ["demo"], "compress": ["compress", str(photo), "-q", "5", "-o", "o.jpg"],
            "optimize-tables": ["optimize-tables", str(tmp_path)], "bench": ["bench"]}[command]
    assert cli.main(argv) == 0 and cli.main([*argv, "--threads", "3"]) == 0
    assert seen == [(default, default or before), (3, 3)]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("module", ["cv2", "skimage", "sklearn", "matplotlib"])
def test_bench_without_an_extra_is_one_line_and_leaves_no_folder(monkeypatch, capsys, tmp_path, module):
    monkeypatch.setitem(sys.modules, module, None)
    assert cli.main(["bench", "--quick", "--out", str(tmp_path / "results")]) == 1
    err = capsys.readouterr().err
    _one_line_error(err, f'bench needs {cli.BENCH_NEEDS[module]}: pip install "diffjpeg[bench]"', module)
    assert _leftovers(tmp_path) == []


def test_bench_writes_its_folder_only_when_it_finishes(monkeypatch, capsys, tmp_path):
    from diffjpeg.tools.bench import suite

    def run(out, quick, echo=None):
        (out / "speed.png").write_bytes(b"png")
        echo("## Fidelity")
        if quick:
            raise RuntimeError("a peer failed")
        (out / "report.md").write_text("# report")
        return out / "report.md"

    monkeypatch.setattr(suite, "run", run)
    out = tmp_path / "deep" / "results"
    assert cli.main(["bench", "--quick", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "## Fidelity\n"  # each section as it finishes
    _one_line_error(captured.err, "bench failed unexpectedly: RuntimeError: a peer failed", "bench")
    assert _leftovers(tmp_path) == []
    assert cli.main(["bench", "--out", str(out)]) == 0
    assert _leftovers(out) == ["report.md", "speed.png"] and _leftovers(tmp_path / "deep") == ["results"]
    assert capsys.readouterr().out == f"## Fidelity\nwrote {out / 'report.md'}\n"
    (tmp_path / "file").write_text("")
    assert cli.main(["bench", "--out", str(tmp_path / "file")]) == 1
    _one_line_error(capsys.readouterr().err, "it is a file, not a folder", "bench")
