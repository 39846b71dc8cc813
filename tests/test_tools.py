"""The applications in diffjpeg/tools: the core imports none of them, the old module paths warn and still work, one image loader."""
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

SHIMS = ("diffjpeg.tables", "diffjpeg.demo", "diffjpeg.cli", "diffjpeg.benchmark")


def test_import_diffjpeg_imports_no_tool():
    code = ("import sys, json, diffjpeg; json.dump(sorted(m for m in sys.modules if m.startswith(('diffjpeg', 'matplotlib', "
            "'kornia', 'cv2', 'sklearn', 'skimage', 'scipy'))), sys.stdout)")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "diffjpeg" in loaded and "diffjpeg.losses" in loaded
    unwanted = [m for m in loaded if m.startswith(("diffjpeg.tools", "matplotlib", "kornia", "cv2", "sklearn", "skimage", "scipy"))
                or m in SHIMS]
    assert unwanted == []


@pytest.mark.parametrize("name", SHIMS)
def test_old_module_paths_warn_and_reexport(name, monkeypatch):
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{name} is deprecated: use diffjpeg.tools"):
        module = importlib.import_module(name)
    public = {
        "diffjpeg.tables": ("learn_qtables", "QTableParameters", "ImageSet", "evaluate_qtables", "bd_rate", "pillow_qtables",
                            "save_qtables", "load_qtables", "scaled_qtables", "load_checkpoint", "objective_terms", "main"),
        "diffjpeg.demo": ("run", "recover_quality", "sample_image", "psnr", "pillow_jpeg", "pillow_decode", "to_tensor", "centre_crop"),
        "diffjpeg.cli": ("main", "parser", "load_image", "CommandError", "check_output", "quality"),
        "diffjpeg.benchmark": ("main", "run", "machine", "ours", "kornia_jpeg", "pillow_jpeg", "opencv_jpeg", "methods", "photos"),
    }[name]
    assert all(callable(getattr(module, n)) for n in public)


def test_old_tables_objective_and_main_still_answer(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "diffjpeg.tables", raising=False)
    with pytest.warns(DeprecationWarning):
        tables = importlib.import_module("diffjpeg.tables")
    bits, d = tables.objective_terms(torch.rand(1, 3, 16, 16), tables.scaled_qtables(torch.full((2, 8, 8), 16.0), 50).float())
    assert bits.item() > 0 and d.item() > 0
    assert tables.main([str(tmp_path / "missing")]) == 1
    assert tables.main(["--help"]) == 0
    assert "usage: diffjpeg optimize-tables" in capsys.readouterr().out


def test_learning_reads_images_as_the_command_does(tmp_path):
    """16-bit grayscale is scaled (not clipped), transparency composited onto white, EXIF orientation applied."""
    from diffjpeg.tools.images import ImageSet, load_image

    rng = np.random.default_rng(0)
    Image.fromarray((np.arange(12 * 20, dtype=np.uint16).reshape(12, 20) * 250)).save(tmp_path / "a16.png")
    Image.fromarray(rng.integers(0, 256, (12, 20, 4), dtype=np.uint8), "RGBA").save(tmp_path / "b.png")
    rotated = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: 20 wide becomes 20 high
    rotated.save(tmp_path / "c.jpg", exif=exif)
    images = ImageSet(tmp_path)
    assert images.sizes == [(12, 20), (12, 20), (20, 12)]
    for i, path in enumerate(sorted(tmp_path.iterdir())):
        a = load_image(path)[0]
        expected = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
        assert torch.equal(images[i], torch.from_numpy(expected).permute(2, 0, 1)), path.name
        assert tuple(images[i].shape[1:]) == images.sizes[i]
