"""The applications in diffjpeg/tools: the core imports none of them, the old module paths are gone, one image loader."""
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHIMS = ("diffjpeg.tables", "diffjpeg.demo", "diffjpeg.cli", "diffjpeg.benchmark")  # the paths before diffjpeg.tools


def test_import_diffjpeg_imports_no_tool():
    code = ("import sys, json, diffjpeg; json.dump(sorted(m for m in sys.modules if m.startswith(('diffjpeg', 'matplotlib', "
            "'kornia', 'cv2', 'sklearn', 'skimage', 'scipy'))), sys.stdout)")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "diffjpeg" in loaded and "diffjpeg.training.losses" in loaded
    unwanted = [m for m in loaded if m.startswith(("diffjpeg.tools", "matplotlib", "kornia", "cv2", "sklearn", "skimage", "scipy"))
                or m in SHIMS]
    assert unwanted == []


@pytest.mark.parametrize("name", SHIMS)
def test_old_module_paths_are_gone(name):
    """The tools moved to diffjpeg.tools before any release: no alias module stands at the old path."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)


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


# ---------------------------------------------------------------- one loader on every path
def _kinds_of_images(folder):
    """Files of every kind the loader converts, each with its reference conversion
    (computed here, not by the loader): ``{name: (path, expected uint8 array, tolerance)}``."""
    rng = np.random.default_rng(1)
    h, w = 24, 40
    made = {}
    # 16-bit: the gradient (it came out almost white through optimize-tables) and a dark one, both / 257
    for name, top in (("gray16", 65535), ("dark16", 255)):
        a = np.linspace(0, top, h * w).reshape(h, w).astype(np.uint16)
        Image.fromarray(a).save(folder / f"{name}.png")
        assert Image.open(folder / f"{name}.png").mode == "I;16"
        made[name] = (folder / f"{name}.png", np.rint(a / 257).astype(np.uint8), 0)
    # RGBA and LA: composited onto white, out = c * alpha + 255 * (1 - alpha)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    alpha = rgba[..., 3:] / 255
    made["rgba"] = (folder / "rgba.png", np.rint(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8), 1)
    la = rgba[..., [0, 3]]
    Image.fromarray(la, "LA").save(folder / "la.png")
    made["la"] = (folder / "la.png", np.rint(la[..., 0] * alpha[..., 0] + 255 * (1 - alpha[..., 0])).astype(np.uint8), 1)
    # palette: each index looked up
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (h, w), dtype=np.uint8)
    p = Image.fromarray(index, "P")
    p.putpalette(palette.flatten().tolist())
    p.save(folder / "palette.png")
    made["palette"] = (folder / "palette.png", palette[index], 0)
    # 1-bit: 0 and 255
    bits = rng.integers(0, 2, (h, w)).astype(bool)
    Image.fromarray(bits).save(folder / "bits.png")
    made["bits"] = (folder / "bits.png", np.where(bits, 255, 0).astype(np.uint8), 0)
    # grayscale as it is
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    Image.fromarray(gray).save(folder / "gray.png")
    made["gray"] = (folder / "gray.png", gray, 0)
    # EXIF orientation 6: turned 90 degrees clockwise to be shown
    rotated = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "rotated.jpg", exif=exif, quality=95)
    with Image.open(folder / "rotated.jpg") as stored:  # the decoded pixels, as stored in the file
        made["rotated"] = (folder / "rotated.jpg", np.rot90(np.array(stored), k=-1), 0)
    # CMYK JPEG: R = (255 - C)(255 - K) / 255, ... (Pillow's conversion)
    Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "CMYK").save(folder / "cmyk.jpg", quality=95)
    with Image.open(folder / "cmyk.jpg") as stored:
        assert stored.mode == "CMYK"
        cmyk = np.array(stored).astype(np.float64)
    made["cmyk"] = (folder / "cmyk.jpg", np.rint((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255).astype(np.uint8), 1)
    return made


def _agrees(got, expected, tolerance, name):
    got = np.asarray(got)
    assert got.shape == expected.shape and got.dtype == np.uint8, (name, got.shape, expected.shape)
    assert int(np.abs(got.astype(np.int16) - expected.astype(np.int16)).max()) <= tolerance, name


def test_every_path_reads_the_same_pixels(tmp_path, monkeypatch, capsys):
    """The same files through load_image, compress, compare, demo --image, optimize-tables and
    learn_qtables' image sets give the same pixels, and those match a reference conversion."""
    import diffjpeg
    from diffjpeg.tools import cli, demo, qtables
    from diffjpeg.tools.images import ImageSet, load_image

    folder = tmp_path / "images"
    folder.mkdir()
    made = _kinds_of_images(folder)
    as_rgb = lambda a: np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a  # noqa: E731 - image sets are RGB

    encoded, shown = [], []
    real_encode = diffjpeg.encode
    monkeypatch.setattr(diffjpeg, "encode", lambda x, **kw: encoded.append(x.clone()) or real_encode(x, **kw))
    monkeypatch.setattr(demo, "run", lambda a, output, *args, **kw: shown.append(a) or Path(output).write_bytes(b"figure"))
    learned = []
    monkeypatch.setattr(qtables, "learn_qtables", lambda images, **kw: learned.append(images) or diffjpeg.standard_tables().long())

    for name, (path, expected, tolerance) in made.items():
        _agrees(load_image(path)[0], expected, tolerance, f"load_image {name}")
        assert cli.main(["compress", str(path), "-q", "90", "-o", str(tmp_path / "out.jpg")]) == 0
        x = encoded.pop()
        _agrees(x[0] if x.shape[0] == 1 else x.permute(1, 2, 0), expected, tolerance, f"compress {name}")
        assert cli.main(["compare", str(path), "-o", str(tmp_path / "fig.png"), "--steps", "0"]) == 0
        assert cli.main(["demo", "--image", str(path), "-o", str(tmp_path / "fig.png"), "--steps", "0"]) == 0
        for a in (shown.pop(), shown.pop()):
            _agrees(a, expected, tolerance, f"compare / demo --image {name}")

    assert cli.main(["optimize-tables", str(folder), "--out", str(tmp_path / "t.json"), "--quiet"]) == 0
    by_command, by_list = learned.pop(), ImageSet(sorted(p for p, _, _ in made.values()))
    names = sorted(made, key=lambda n: made[n][0])
    for i, name in enumerate(names):
        _agrees(by_command[i].permute(1, 2, 0).numpy(), as_rgb(made[name][1]), made[name][2], f"optimize-tables {name}")
        _agrees(by_list[i].permute(1, 2, 0).numpy(), as_rgb(made[name][1]), made[name][2], f"learn_qtables {name}")
        assert by_command.sizes[i] == made[name][1].shape[:2], name  # from the header, orientation applied
    gray16 = by_list[names.index("gray16")].float().mean().item()
    assert 126 < gray16 < 129  # the 16-bit PNG: mean 254.5 when clipped
    capsys.readouterr()


def huge_png(path, width=12000, height=12000):
    """A PNG header of ``width`` x ``height`` RGB and a little data: what Image.open sees of a huge image."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * width)))
                     + chunk(b"IEND", b""))
    return path


def test_images_over_pillows_limit_are_refused_from_the_header(tmp_path):
    from diffjpeg.tools.images import ImageError, ImageSet, image_size, load_image

    big = huge_png(tmp_path / "big.png")
    for read in (load_image, image_size, ImageSet):
        # Pillow's own warning comes first, as for any such file (a library call leaves the warnings
        # filters alone; the command silences it): then the error, before any pixel is allocated
        with pytest.raises(ImageError, match=r"12000x12000 is 144,000,000 pixels, more than the 89,478,485 allowed"), \
                pytest.warns(Image.DecompressionBombWarning):
            read(big if read is not ImageSet else [big])


def test_image_sets_refuse_float_images_on_another_scale():
    """A float image in [0, 255] is refused by the library's rule, not clipped to white."""
    from diffjpeg.tools.images import ImageSet

    photo = torch.rand(3, 16, 16)
    assert ImageSet([photo])[0].dtype == torch.uint8
    with pytest.raises(ValueError, match=r"images\[1\] is float with values in .*divide by 255"):
        ImageSet([photo, photo * 255])
    with pytest.raises(ValueError, match="NaN"):
        ImageSet([photo * float("nan")])
