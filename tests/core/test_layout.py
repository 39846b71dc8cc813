"""One home for each shared fact: geometry, scan order, input checks; no
module reaches into another's private names."""
import ast
from pathlib import Path

import pytest
import torch

import diffjpeg
from diffjpeg.core import geometry, scan
from diffjpeg.core.modes import MODES

PACKAGE = Path(diffjpeg.__file__).parent


def compiled_extensions() -> set[str]:
    """The C extensions setup.py declares (``Extension("diffjpeg._name", ...)``): private modules meant to be imported."""
    setup = ast.parse((PACKAGE.parent / "setup.py").read_text())
    names = {
        node.args[0].value.rsplit(".", 1)[-1]
        for node in ast.walk(setup)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Extension" and isinstance(node.args[0], ast.Constant)
    }
    assert "_native" in names, names
    return names


def test_no_module_imports_another_modules_private_names():
    extensions = compiled_extensions()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("diffjpeg")):
                private = [
                    a.name for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__") and a.name not in extensions
                ]
                if private:
                    offenders.append(f"{path.relative_to(PACKAGE)}: from {'.' * node.level}{node.module or ''} import {private}")
    assert offenders == []


SAMPLINGS = [((1, 1),), ((2, 2),), ((2, 2), (1, 1), (1, 1)), ((2, 1), (1, 1), (1, 1)), ((1, 2), (1, 2), (1, 2)),
             ((4, 1), (1, 1), (1, 1)), ((2, 2), (1, 2), (2, 1)), ((3, 1), (1, 1), (1, 1))]  # fmt: skip
SIZES = [(1, 1), (7, 9), (16, 16), (17, 33), (45, 70)]


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_mcu_counts_cover_every_block_with_the_fewest_mcus(sampling):
    for size in SIZES:
        mcus = geometry.mcu_counts(size, sampling)
        if len(sampling) == 1:
            assert mcus is None
            continue
        h_max, v_max = geometry.max_factors(sampling)
        for g, (h, v) in zip(geometry.geometries(size, sampling), sampling):
            assert mcus[0] * v >= g.blocks[0] and mcus[1] * h >= g.blocks[1]  # every block in an MCU
        assert (mcus[0] - 1) * 8 * v_max < size[0] and (mcus[1] - 1) * 8 * h_max < size[1]  # no MCU beyond the image


@pytest.mark.parametrize("sampling", SAMPLINGS)
def test_coding_order_and_dummy_dc_written_out(sampling):
    """Per MCU, each component's v x h blocks in raster order; a padding block
    repeats the DC coded just before it (jccoefct.c)."""
    size = (45, 70)
    mcus = geometry.mcu_counts(size, sampling) or (None, None)
    for g, (h, v) in zip(geometry.geometries(size, sampling), sampling):
        rows, cols = g.blocks
        blocks = torch.arange(1, rows * cols + 1).reshape(rows, cols, 1) * torch.ones(64, dtype=torch.long)
        ordered, real = scan.coding_order(blocks, (h, v), None if mcus[0] is None else mcus)
        dc = scan.dc_in_coding_order(blocks, (h, v), None if mcus[0] is None else mcus)
        expected, expected_dc, previous = [], [], 0
        if mcus[0] is None:
            expected = [blocks[r, c, 0].item() for r in range(rows) for c in range(cols)]
            expected_dc = expected
        else:
            for my in range(mcus[0]):
                for mx in range(mcus[1]):
                    for y in range(v):
                        for x in range(h):
                            r, c = my * v + y, mx * h + x
                            value = blocks[r, c, 0].item() if r < rows and c < cols else 0
                            previous = value if value else previous
                            expected.append(value)
                            expected_dc.append(previous)
        assert ordered[..., 0].flatten().tolist() == expected
        assert real.flatten().tolist() == [e != 0 for e in expected]
        assert dc.flatten().tolist() == expected_dc


@pytest.mark.parametrize(
    "sampling, problem",
    [(((0, 1), (1, 1), (1, 1)), "1..4"), (((5, 1),), "1..4"), (((3, 2), (2, 1), (1, 1)), "fractional"),
     (((4, 2), (2, 1), (2, 1)), "more than 10 blocks"), (((2, 2), (1, 1), (1, 1)), None), (((4, 4),), None)],
)  # fmt: skip
def test_one_sampling_rule_for_files_and_coefficients(sampling, problem):
    assert (geometry.sampling_problem(sampling) is None) == (problem is None)
    if problem is None:
        return
    assert problem in geometry.sampling_problem(sampling)
    blocks = [torch.zeros(1, 1, 8, 8) for _ in sampling]
    with pytest.raises(ValueError, match=problem):
        diffjpeg.Coefficients(*(blocks + [None] * (3 - len(blocks))), qtables=torch.ones(2, 8, 8), sampling=sampling, size=(8, 8))


def test_pillow_subsampling_numbers_are_pillows():
    import io

    from PIL import Image, JpegImagePlugin

    for name, number in geometry.PILLOW_SUBSAMPLING.items():
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, "JPEG", subsampling=number)
        assert JpegImagePlugin.get_sampling(Image.open(buffer)) == number
        assert diffjpeg.read(buffer.getvalue()).subsampling == name


@pytest.mark.parametrize(
    "call",
    [
        lambda: diffjpeg.stages.dct.fdct(torch.zeros(8, 8), "bogus"),
        lambda: diffjpeg.stages.dct.idct(torch.zeros(8, 8), "bogus"),
        lambda: diffjpeg.stages.quantize.quantize(torch.zeros(8, 8), torch.ones(8, 8), "bogus"),
        lambda: diffjpeg.stages.sampling.downsample(torch.zeros(4, 4), 2, 2, "bogus"),
        lambda: diffjpeg.stages.sampling.upsample(torch.zeros(4, 4), 2, 2, "bogus"),
        lambda: diffjpeg.stages.color.rgb_to_ycbcr(torch.zeros(1, 3, 2, 2), mode="bogus"),
        lambda: diffjpeg.stages.dct.FDCT("bogus"),
        lambda: diffjpeg.stages.quantize.Quantize("bogus"),
        lambda: diffjpeg.stages.sampling.Downsample(2, 2, "bogus"),
    ],
)
def test_stages_refuse_an_unknown_mode(call):
    with pytest.raises(ValueError, match=rf"mode must be one of {MODES}".replace("(", r"\(").replace(")", r"\)")):
        call()


def test_encoder_module_refuses_a_misspelled_argument():
    with pytest.raises(TypeError, match="qualty"):
        diffjpeg.JPEGEncoder(qualty=50)
