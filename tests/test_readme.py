"""Every code block of README.md and of the guide's pages (docs/**/*.md) runs as written.

Each ```python block runs on its own (a reader copies one block), in a fresh
namespace, in a temporary folder holding the files the pages name
(``photo.jpg``, ``a.jpg``, ``photos/``, ...), made here from the bundled photo
with Pillow. A block that imports an optional package that is not installed
(torchvision, kornia) is skipped; a block preceded by
``<!-- readme-test: slow: REASON -->`` runs under ``-m slow`` only, and
``<!-- readme-test: skip: REASON -->`` never (the reason stays in the page).
Shell blocks must parse (``bash -n``); every ``diffjpeg`` command in them, and
in the pages' inline code, must parse with the CLI's own parser, and the
extras that ``pip install`` names must exist.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg

ROOT = Path(__file__).resolve().parents[1]
# the README and the guide the reference text moved to (docs/guide/*.md)
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
TEXT = {page: (ROOT / page).read_text() for page in PAGES}
COMMAND_LINE = "docs/guide/command-line.md"  # the Command line table
OPTIONAL = {"torchvision", "kornia", "matplotlib", "cv2", "skimage", "sklearn"}  # extras, not dependencies
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!--\s*readme-test:\s*(skip|slow):\s*(.+?)\s*-->\s*$")


def blocks(language: str) -> list[tuple[str, int, str, str | None, str | None]]:
    """``(page, line, code, marker, reason)`` of each fenced block in ``language``."""
    found = []
    for page, text in TEXT.items():
        for m in FENCE.finditer(text):
            if m.group(1) != language:
                continue
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            found.append((page, text.count("\n", 0, m.start()) + 1, m.group(2), *(marker.groups() if marker else (None, None))))
    return found


def _params(language: str):
    out = []
    for page, line, code, marker, reason in blocks(language):
        marks = [pytest.mark.slow] if marker == "slow" else [pytest.mark.skip(reason=f"{page}: {reason}")] if marker == "skip" else []
        out.append(pytest.param(code, page, line, id=f"{page}:line{line}", marks=marks))
    return out


def test_the_pages_are_found():
    """The guide's pages are collected (a wrong glob would check nothing)."""
    assert {"README.md", COMMAND_LINE, "docs/guide/usage.md", "docs/guide/files.md", "docs/guide/tables.md"} <= set(PAGES)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder with the files the README's examples read."""
    photo = np.asarray(Image.open(resources.files("diffjpeg") / "data" / "chelsea.png").convert("RGB"))
    Image.fromarray(photo[:96, :128]).save(tmp_path / "photo.png")
    Image.fromarray(photo[:96, :128]).save(tmp_path / "photo.jpg", quality=85)
    for name, (top, left) in {"a.jpg": (0, 0), "b.jpg": (100, 150)}.items():  # same size and sampling: one batch
        Image.fromarray(photo[top : top + 64, left : left + 80]).save(tmp_path / name, quality=75)
    (tmp_path / "photos").mkdir()
    for i, (top, left) in enumerate([(0, 0), (80, 120), (110, 190)]):
        Image.fromarray(photo[top : top + 96, left : left + 128]).save(tmp_path / "photos" / f"photo{i}.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _needs(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# the blocks whose comments' claims _check_what_the_block_says checks: each must still be on some page
CHECKED = ["diffjpeg.DiffJPEG(quality=75, learnable=True)", 'diffjpeg.read("photo.jpg")', "diffjpeg.RandomJPEG((30, 95)),",
           "tables.learn_qtables"]


def test_every_checked_block_is_on_a_page():
    code = "\n".join(c for _, _, c, _, _ in blocks("python"))
    assert [s for s in CHECKED if s not in code] == []


def _check_what_the_block_says(code: str, namespace: dict, folder: Path) -> None:
    """The claims the blocks' comments make, checked on what they left behind."""
    if "diffjpeg.DiffJPEG(quality=75, learnable=True)" in code:  # Usage
        x, y, c = namespace["x"], namespace["y"], namespace["c"]
        assert y.shape == x.shape and isinstance(c, diffjpeg.Coefficients)
        assert torch.equal(diffjpeg.decode(c), diffjpeg.jpeg(x, quality=50))  # jpeg(x) == decode(encode(x))
        assert {name for name, _ in namespace["layer"].named_parameters()} >= {"quality"}
    if 'diffjpeg.read("photo.jpg")' in code:  # Real files
        pillow = np.asarray(Image.open(folder / "photo.jpg"))
        assert np.array_equal(np.round(namespace["x"].detach().permute(1, 2, 0).numpy() * 255).astype(np.uint8), pillow)
        assert [p.name for p in sorted(folder.glob("out_*.jpg"))] == [f"out_{i:03d}.jpg" for i in range(4)]
        assert Image.open(folder / "out.jpg").size == (128, 96)
        assert namespace["c"].batch_shape == (2,) and float(namespace["n"]) > 0
    if "diffjpeg.RandomJPEG((30, 95))," in code:  # Augmentation, torchvision: the sample's parts after v2.Compose
        from torchvision import tv_tensors

        image, target = namespace["image"], namespace["target"]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 224, 224) and image.dtype == torch.float32
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (224, 224)
        assert torch.equal(target["labels"], torch.tensor([3]))
    if "tables.learn_qtables" in code:  # Learned quantization tables
        t = namespace["t"]
        assert t.shape == (2, 8, 8) and t.dtype == torch.int64 and int(t.min()) >= 1 and int(t.max()) <= 255
        assert np.array_equal(namespace["y"].permute(1, 2, 0).numpy(), np.asarray(Image.open(folder / "out.jpg")))


@pytest.mark.parametrize("code, page, line", _params("python"))
def test_python_block_runs_as_written(code, page, line, folder):
    for name in sorted(_needs(code) & OPTIONAL):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs {name}, not installed")
    namespace = {"__name__": "readme"}
    torch.manual_seed(0)
    exec(compile(code, f"<{page}, the block at line {line}>", "exec"), namespace)
    _check_what_the_block_says(code, namespace, folder)


def _commands(text: str) -> list[list[str]]:
    """The ``diffjpeg`` command lines in a shell block or an inline code span, split as the shell does."""
    found = []
    for command in re.split(r"&&|\n|;", text):
        words = shlex.split(command, comments=True)
        for i, word in enumerate(words):
            if word.endswith("/diffjpeg") or (word == "diffjpeg" and (i == 0 or words[i - 1] == "-m")):
                found.append(words[i + 1 :])
                break
    return found


def _parse(args: list[str]) -> None:
    from diffjpeg.tools.cli import parser

    try:
        parser().parse_args(args)
    except SystemExit as e:  # argparse's way to refuse
        raise AssertionError(f"diffjpeg {shlex.join(args)}: the CLI refuses it (status {e.code})") from None


@pytest.mark.parametrize("code, page, line", _params("bash"))
def test_shell_block_parses_and_its_commands_exist(code, page, line):
    subprocess.run(["bash", "-n"], input=code, text=True, check=True)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for spec in re.findall(r'-e "\.\[([\w,]+)\]"', code):
        assert set(spec.split(",")) <= extras, f"pip install names an extra that pyproject.toml lacks: {spec}"
    for args in _commands(code):
        _parse(args)


def _inline(page: str) -> list[str]:
    return [span for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", TEXT[page])) if span.startswith("diffjpeg ")]


@pytest.mark.parametrize("page", PAGES)
def test_inline_diffjpeg_commands_parse(page):
    inline = _inline(page)
    if page == COMMAND_LINE:
        assert len(inline) >= 5  # the Command line table's examples
    for span in inline:
        for args in _commands(span):
            _parse(args)


def test_the_compress_example_runs(folder, capsys):
    from diffjpeg.tools.cli import main

    example = next(s for s in _inline(COMMAND_LINE) if s.startswith("diffjpeg compress "))
    assert main(shlex.split(example)[1:]) == 0
    output = shlex.split(example)[shlex.split(example).index("-o") + 1]
    assert Image.open(folder / output).format == "JPEG"


def test_the_readmes_links_into_the_docs_exist():
    """The site is not hosted: the README links to the files in docs/, which must exist."""
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", TEXT["README.md"])) if "://" not in t]
    assert sum(t.startswith("docs/") for t in targets) >= 8  # the guide's pages and the reference
    assert [t for t in targets if not (ROOT / t).is_file()] == []
