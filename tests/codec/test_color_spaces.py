"""Files in every color space libjpeg decodes (grayscale, YCbCr, RGB, CMYK,
YCCK), files with many APPn segments, and the refusals that remain (12/16-bit
samples, lossless): read, decode and write against Pillow and libjpeg itself.

Every file is made here: by Pillow (CMYK), by libjpeg-turbo 2.1 through
jpeglib (CMYK, YCCK, RGB at chosen sampling factors), by :func:`diffjpeg.write`
from coefficients made here, and by byte edits of those (the Adobe transform,
component ids, inserted segments).
"""
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.backends import cpu, exact
from diffjpeg.bitstream.huffman import STANDARD_TABLES, pack, stuff
from diffjpeg.bitstream.markers import parse_structure
from diffjpeg.bitstream.sequential import ADOBE, JFIF
from diffjpeg.core.colorspace import COLOR_SPACES, file_color_space
from diffjpeg.stages import color
from tests.helpers import assert_identical, pillow_decode, skimage_crop

jpeglib = pytest.importorskip("jpeglib")

SIZES = [(1, 1), (13, 21), (17, 9), (40, 33)]


def photo4(h: int, w: int) -> np.ndarray:
    """Four smooth channels with edges: a photo's RGB and its gray as K."""
    rgb = skimage_crop("astronaut", h, w, 100, 150)
    return np.ascontiguousarray(np.concatenate([rgb, skimage_crop("camera", h, w, 50, 50)[..., None]], axis=2))


def pillow_cmyk(a: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, "CMYK").save(buf, "JPEG", **options)
    return buf.getvalue()


def libjpeg_file(a: np.ndarray, space: str, tmp_path, sampling=None, quality=85, progressive=False) -> bytes:
    """``a`` (CMYK or RGB samples) written by libjpeg-turbo 2.1 as ``space``
    (jpeg_set_colorspace: its ids, Adobe marker, default sampling unless given)."""
    path = str(tmp_path / "libjpeg.jpg")
    with jpeglib.version("turbo210"):
        im = jpeglib.from_spatial(a, in_color_space=jpeglib.JCS_CMYK if a.shape[2] == 4 else jpeglib.JCS_RGB)
        im.jpeg_color_space = getattr(jpeglib, f"JCS_{space}")
        if sampling is not None:
            im.samp_factor = np.array(sampling)
        im.write_spatial(path, qt=quality, flags=["+PROGRESSIVE_MODE"] if progressive else [])
    with open(path, "rb") as f:
        return f.read()


def ours(c: diffjpeg.Coefficients, **options) -> np.ndarray:
    x = torch.round(diffjpeg.decode(c, **options) * 255).to(torch.uint8)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def assert_decodes_like_pillow(data: bytes, space: str | None = None) -> diffjpeg.Coefficients:
    """decode(read(data)) equals Pillow's pixels, on the compiled kernel and the tensor stages."""
    c = diffjpeg.read(data)
    if space is not None:
        assert c.color_space == space
    reference = pillow_decode(data)
    assert_identical(ours(c), reference)
    with cpu.enabled(False):
        assert_identical(ours(c), reference)
        image = diffjpeg.read_image(data)  # the tensor stages' 8-bit samples
    assert_identical(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy(), reference)
    return c


def same_coefficients(a: diffjpeg.Coefficients, b: diffjpeg.Coefficients) -> bool:
    return (
        len(a.components) == len(b.components)
        and all(torch.equal(x, y) for x, y in zip(a.components, b.components))
        and torch.equal(a.component_qtables(), b.component_qtables())
        and (a.sampling, a.size, a.color_space) == (b.sampling, b.size, b.color_space)
    )


def handmade(space: str, sampling, size=(29, 45), seed=0) -> diffjpeg.Coefficients:
    """Smooth random coefficients of ``space`` with the given sampling factors."""
    rng = np.random.default_rng(seed)
    count = COLOR_SPACES[space]
    zero = torch.zeros(1, 1, 8, 8)
    shape = diffjpeg.Coefficients(*([zero] * 3), qtables=torch.full((2, 8, 8), 3.0), sampling=sampling, size=size,
                                  k=zero if count == 4 else None, color_space=space)
    blocks = []
    for geometry in shape.geometries():
        b = rng.normal(0, 1, geometry.blocks + (8, 8)) * 30 / (1 + np.add.outer(np.arange(8), np.arange(8)))[None, None] ** 1.5
        b[..., 0, 0] = rng.integers(-40, 40, geometry.blocks)
        blocks.append(torch.tensor(np.round(b), dtype=torch.float32))
    blocks += [None] * (4 - count)
    return diffjpeg.Coefficients(blocks[0], blocks[1], blocks[2], shape.qtables, sampling, size, k=blocks[3], color_space=space)


def adobe_offset(data: bytes) -> int:
    """Offset of the (first) Adobe APP14 segment's transform byte: byte 11 of its body."""
    return data.index(b"\xff\xee\x00\x0eAdobe") + 4 + 11


def with_adobe_transform(data: bytes, transform: int) -> bytes:
    at = adobe_offset(data)
    return data[:at] + bytes([transform]) + data[at + 1 :]


def with_segments(data: bytes, segments: bytes, after_sos: bool = False) -> bytes:
    """``segments`` inserted after SOI, or just before the second scan."""
    if after_sos:
        at = parse_structure(data).scans[1].header[0]
        return data[:at] + segments + data[at:]
    return data[:2] + segments + data[2:]


def segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


# ---------------------------------------------------------------- CMYK and YCCK
@pytest.mark.parametrize("size", SIZES)
def test_pillow_cmyk_files_decode_like_pillow(size):
    """Pillow writes CMYK inverted (Adobe) with an Adobe marker, transform 0;
    decode gives Pillow's CMYK, the ink amounts, not the stored samples."""
    a = photo4(*size)
    for options in ({"quality": 90}, {"quality": 40, "progressive": True}, {"quality": 75, "optimize": True}):
        data = pillow_cmyk(a, **options)
        c = assert_decodes_like_pillow(data, "CMYK")
        assert c.sampling == ((1, 1),) * 4 and c.subsampling == "4:4:4" and c.k is not None
    # the convention: the file stores 255 - ink (a flat block's DC is 8 (s - 128) at table 1)
    flat = np.zeros((8, 8, 4), np.uint8) + np.array([0, 64, 200, 255], np.uint8)
    c = diffjpeg.read(pillow_cmyk(flat, quality=100))
    assert bool((c.qtables == 1).all())
    assert [float(b[0, 0, 0, 0]) / 8 + 128 for b in c.components] == [255, 191, 55, 0]
    assert ours(c)[0, 0].tolist() == [0, 64, 200, 255]


SAMPLINGS_4 = {
    "YCCK default 4:2:0": ("YCCK", None),
    "YCCK 4:4:4": ("YCCK", [[1, 1]] * 4),
    "YCCK 4:2:2": ("YCCK", [[2, 1], [1, 1], [1, 1], [2, 1]]),
    "CMYK default 4:4:4": ("CMYK", None),
    "CMYK mixed": ("CMYK", [[2, 2], [1, 1], [1, 2], [2, 1]]),
    "RGB default": ("RGB", None),
    "RGB 4:2:0": ("RGB", [[2, 2], [1, 1], [1, 1]]),
}


@pytest.mark.parametrize("name", list(SAMPLINGS_4))
@pytest.mark.parametrize("size", SIZES)
def test_libjpeg_files_decode_like_pillow(name, size, tmp_path):
    """libjpeg-turbo 2.1's own CMYK, YCCK (ycck_cmyk_convert) and RGB files."""
    space, sampling = SAMPLINGS_4[name]
    a = photo4(*size)
    if space == "RGB":
        a = np.ascontiguousarray(a[..., :3])
    c = assert_decodes_like_pillow(libjpeg_file(a, space, tmp_path, sampling), space)
    if sampling is None and space == "YCCK":
        assert c.sampling == ((2, 2), (1, 1), (1, 1), (2, 2)) and c.subsampling == "4:2:0" and c.qtable_index == (0, 1, 1, 0)
    progressive = libjpeg_file(a, space, tmp_path, sampling, quality=30, progressive=True)
    assert_decodes_like_pillow(progressive, space)


def flat_blocks_file(values: np.ndarray, space: str, columns: int) -> bytes:
    """A 4:4:4 file of one flat 8x8 block per row of ``values`` (N, C): tables
    of 1 and DC ``8 (v - 128)``, so that libjpeg's samples are the values exactly."""
    n, count = values.shape
    rows = -(-n // columns)
    padded = np.concatenate([values, np.full((rows * columns - n, count), 128)]).reshape(rows, columns, count)
    blocks = []
    for ci in range(count):
        b = torch.zeros(rows, columns, 8, 8)
        b[..., 0, 0] = torch.tensor(8 * (padded[..., ci] - 128), dtype=torch.float32)
        blocks.append(b)
    blocks += [None] * (4 - count)
    c = diffjpeg.Coefficients(blocks[0], blocks[1], blocks[2], torch.ones(2, 8, 8), ((1, 1),) * count,
                              (8 * rows, 8 * columns), k=blocks[3], color_space=space)
    return diffjpeg.write(c)


def test_ycck_integer_form_is_libjpegs_over_many_inputs():
    """ycck_cmyk_convert, then Pillow's inversion, on a grid of Y, Cb, Cr
    (every 51st level, 0 and 255 included) and 1000 random values, against
    Pillow decoding a file whose blocks are flat at those values."""
    levels = np.arange(0, 256, 51)
    grid = np.stack([g.flatten() for g in np.meshgrid(levels, levels, levels, indexing="ij")], axis=1)
    rng = np.random.default_rng(0)
    values = np.concatenate([grid, rng.integers(0, 256, (1000, 3))])
    values = np.concatenate([values, rng.integers(0, 256, (len(values), 1))], axis=1)  # K
    columns = 40
    pillow = pillow_decode(flat_blocks_file(values, "YCCK", columns))[::8, ::8].reshape(-1, 4)[: len(values)]
    planes = torch.tensor(values, dtype=torch.int32).T.reshape(1, 4, 1, -1)
    fixed = color.decoded_pixels_fixed(planes, "YCCK")[0, :, 0].T.numpy()
    assert_identical(fixed, pillow)
    assert_identical(255 - color.ycck_to_cmyk_fixed(planes)[0, :, 0].T.numpy(), pillow)
    # its real-valued twin: the same values in exact mode, within a level in float
    real = planes.to(torch.float64)
    assert torch.equal(color.ycck_to_cmyk(real, mode="exact"), color.ycck_to_cmyk_fixed(planes).to(torch.float64))
    assert float((color.decoded_pixels(real, "YCCK", mode="float")[0, :, 0].T - torch.tensor(pillow)).abs().max()) <= 1


@pytest.mark.parametrize("space", ["CMYK", "YCCK", "RGB"])
def test_float_and_soft_decode_are_close_and_differentiable(space, tmp_path):
    a = photo4(24, 40)
    if space == "RGB":
        a = np.ascontiguousarray(a[..., :3])
    c = diffjpeg.read(libjpeg_file(a, space, tmp_path))
    exact = diffjpeg.decode(c)
    for mode in ("float", "soft"):
        other = diffjpeg.decode(c, mode=mode)
        assert other.shape == exact.shape
        assert float((other - exact).abs().max()) * 255 < 3, mode
    leaf = c.y.clone().requires_grad_(True)
    g = diffjpeg.Coefficients(leaf, c.cb, c.cr, c.qtables, c.sampling, c.size, c.qtable_index, k=c.k, color_space=space)
    out = diffjpeg.decode(g)
    assert torch.equal(out.detach(), exact)
    out.sum().backward()
    assert leaf.grad is not None and bool(torch.isfinite(leaf.grad).all()) and float(leaf.grad.abs().sum()) > 0
    # CMYK pixels go down where the stored samples go up (Adobe's inversion); YCCK's and RGB's first channel up
    sign = -1 if space == "CMYK" else 1
    assert sign * float(leaf.grad[..., 0, 0].sum()) > 0


def test_soft_ycck_conversion_passes_gradcheck():
    # inside the gamut: the clamps to [0, 255] are straight-through, not differentiated
    x = torch.rand(1, 4, 3, 5, dtype=torch.float64) * torch.tensor([100.0, 40, 40, 250]).reshape(1, 4, 1, 1)
    x = (x + torch.tensor([80.0, 108, 108, 2]).reshape(1, 4, 1, 1)).requires_grad_(True)
    m = color.ycbcr_to_rgb_matrix(torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, m: color.decoded_pixels(x, "YCCK", m, "soft"), (x, m))


def test_ycck_custom_matrix_acts_on_its_first_three_components(tmp_path):
    c = diffjpeg.read(libjpeg_file(photo4(16, 24), "YCCK", tmp_path))
    libjpegs = color.ycbcr_to_rgb_matrix()
    assert torch.equal(diffjpeg.decode(c, ycbcr_to_rgb=libjpegs), diffjpeg.decode(c))
    swapped = libjpegs[[2, 1, 0]]
    out = diffjpeg.decode(c, ycbcr_to_rgb=swapped)
    assert torch.equal(out[[2, 1, 0]][:3], diffjpeg.decode(c)[:3]) and torch.equal(out[3], diffjpeg.decode(c)[3])
    cmyk = diffjpeg.read(pillow_cmyk(photo4(8, 8)))
    with pytest.raises(ValueError, match="ycbcr_to_rgb applies to YCbCr and YCCK"):
        diffjpeg.decode(cmyk, ycbcr_to_rgb=libjpegs)


# ---------------------------------------------------------------- byte edits: the markers decide
@pytest.mark.parametrize("sampling", [((1, 1),) * 4, ((2, 2), (1, 1), (1, 1), (2, 2)), ((1, 2), (1, 1), (1, 1), (1, 2))])
@pytest.mark.parametrize("size", [(29, 45), (8, 8), (7, 3)])
def test_adobe_transform_flag_decides_cmyk_or_ycck(sampling, size):
    """The same coefficients as CMYK (transform 0) and YCCK (transform 2)."""
    c = handmade("CMYK", sampling, size)
    data = diffjpeg.write(c)
    assert data[adobe_offset(data)] == 0
    assert same_coefficients(assert_decodes_like_pillow(data, "CMYK"), c)
    ycck = with_adobe_transform(data, 2)
    back = assert_decodes_like_pillow(ycck, "YCCK")
    assert all(torch.equal(x, y) for x, y in zip(back.components, c.components))
    # no Adobe marker: libjpeg takes 4 components as CMYK
    at = adobe_offset(data) - 15  # the segment: FF EE, length 14, its 12 bytes
    plain = data[:at] + data[at + 16 :]
    assert_decodes_like_pillow(plain, "CMYK")


def test_unknown_adobe_transform_warns_and_means_ycck_or_ycbcr():
    """libjpeg warns (JWRN_ADOBE_XFORM): strict refuses, strict=False decodes as Pillow."""
    for space, sampling, meaning in (("CMYK", ((1, 1),) * 4, "YCCK"), ("RGB", ((2, 2), (1, 1), (1, 1)), "YCbCr")):
        data = with_adobe_transform(diffjpeg.write(handmade(space, sampling)), 7)
        assert parse_structure(data).color_space == meaning
        with pytest.raises(diffjpeg.JPEGError, match="Unknown Adobe color transform code 7"):
            diffjpeg.read(data)
        c = diffjpeg.read(data, strict=False)
        assert c.color_space == meaning
        assert_identical(ours(c), pillow_decode(data))


def test_rgb_coded_files_by_component_ids_and_by_adobe_marker():
    """3 components decode without a color transform: component ids R, G, B
    without JFIF, or Adobe transform 0; JFIF (at least 14 bytes) overrides both."""
    c = handmade("YCbCr", ((2, 2), (1, 1), (1, 1)))
    jfif = diffjpeg.write(c)
    app0 = segment(0xE0, JFIF)
    assert jfif.startswith(b"\xff\xd8" + app0)
    rest = jfif[2 + len(app0) :]  # DQT, SOF, DHT, SOS, data
    sof, sos = rest.index(b"\xff\xc0"), rest.index(b"\xff\xda")
    rgb_ids = bytearray(rest)
    for i, cid in enumerate(b"RGB"):
        rgb_ids[sof + 10 + 3 * i] = cid
        rgb_ids[sos + 5 + 2 * i] = cid
    rgb_ids = bytes(rgb_ids)
    assert_decodes_like_pillow(b"\xff\xd8" + app0 + rgb_ids, "YCbCr")  # JFIF says YCbCr whatever the ids
    rgb = assert_decodes_like_pillow(b"\xff\xd8" + rgb_ids, "RGB")
    assert all(torch.equal(x, y) for x, y in zip(rgb.components, c.components))
    # a JFIF APP0 under 14 bytes is not JFIF to libjpeg
    short = b"\xff\xd8" + segment(0xE0, JFIF[:13]) + rgb_ids
    assert_decodes_like_pillow(short, "RGB")
    # ids 1, 2, 3 with an Adobe marker: transform 0 is RGB, 1 YCbCr; shorter than 12 bytes, no marker
    adobe = b"\xff\xd8" + segment(0xEE, ADOBE + b"\x00") + rest
    assert_decodes_like_pillow(adobe, "RGB")
    assert_decodes_like_pillow(with_adobe_transform(adobe, 1), "YCbCr")
    assert_decodes_like_pillow(b"\xff\xd8" + segment(0xEE, ADOBE) + rest, "YCbCr")


def test_markers_after_the_first_scan_do_not_change_the_color_space():
    """libjpeg decides at the first SOS: an Adobe marker between the scans of a
    progressive file changes nothing."""
    data = pillow_cmyk(photo4(24, 32), quality=80, progressive=True)
    late = with_segments(data, segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x02"), after_sos=True)
    assert_decodes_like_pillow(late, "CMYK")


def test_file_color_space_follows_libjpeg():
    assert file_color_space((1,), True, 0) == "grayscale"
    assert file_color_space((1, 2, 3), True, 0) == "YCbCr"
    assert file_color_space((82, 71, 66), False, None) == "RGB"
    assert file_color_space((82, 71, 66), False, 1) == "YCbCr"
    assert file_color_space((1, 2, 3, 4), True, None) == "CMYK"
    assert file_color_space((1, 2, 3, 4), False, 5) == "YCCK"


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize("space", ["CMYK", "YCCK", "RGB"])
def test_writes_are_byte_identical_to_libjpegs(space, tmp_path):
    """jpeg_write_coefficients's files: the Adobe marker, libjpeg's component
    ids and table slots, one interleaved scan or the all-purpose progression."""
    a = photo4(21, 35)
    if space == "RGB":
        a = np.ascontiguousarray(a[..., :3])
    for progressive in (False, True):
        reference = libjpeg_file(a, space, tmp_path, quality=60, progressive=progressive)
        c = diffjpeg.read(reference)
        assert diffjpeg.write(c, progressive=progressive) == reference
        again = diffjpeg.read(diffjpeg.write(c, optimize=True))
        assert same_coefficients(again, c)
        assert_identical(pillow_decode(diffjpeg.write(c, optimize=True)), pillow_decode(reference))
    optimized = pillow_cmyk(photo4(21, 35), quality=60, optimize=True)
    assert diffjpeg.write(diffjpeg.read(optimized), optimize=True) == optimized


@pytest.mark.parametrize("space", ["CMYK", "YCCK", "RGB"])
def test_bits_and_rate_of_other_color_spaces(space):
    sampling = {"CMYK": ((1, 1),) * 4, "YCCK": ((2, 2), (1, 1), (1, 1), (2, 2)), "RGB": ((1, 1),) * 3}[space]
    c = handmade(space, sampling)
    for huffman, options in (("standard", {}), ("optimized", {"optimize": True})):
        data = diffjpeg.write(c, **options)
        start, end = parse_structure(data).scans[0].data
        assert int(diffjpeg.bits(c, huffman)) == 8 * (end - start)
        estimate = float(diffjpeg.rate(c, huffman))
        assert 0.8 < estimate / (8 * (end - start)) < 1.25


def test_batches_of_cmyk_files_and_their_checks(tmp_path):
    files = [pillow_cmyk(photo4(16, 16), quality=q) for q in (30, 90)]
    batch = diffjpeg.read_batch(files)
    assert batch.k.shape == (2, 2, 2, 8, 8) and batch.color_space == "CMYK"
    assert batch[1].color_space == "CMYK" and batch[1].k.shape == (2, 2, 8, 8)
    assert_identical(ours(batch[1]), pillow_decode(files[1]))
    written = diffjpeg.write(batch)
    assert [pillow_decode(w).tolist() for w in written] == [pillow_decode(f).tolist() for f in files]
    ycck = libjpeg_file(photo4(16, 16), "YCCK", tmp_path, sampling=[[1, 1]] * 4)
    with pytest.raises(ValueError, match="color space"):
        diffjpeg.read_batch([files[0], ycck])


def test_coefficients_check_the_color_space():
    z = torch.zeros(2, 2, 8, 8)
    t = torch.ones(2, 8, 8)
    assert diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16)).color_space == "YCbCr"
    assert diffjpeg.Coefficients(z, None, None, t, "4:4:4", (16, 16)).color_space == "grayscale"
    c = diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), k=z)
    assert c.color_space == "CMYK" and c.qtable_index == (0, 0, 0, 0) and "color_space='CMYK'" in repr(c)
    assert diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), k=z, color_space="YCCK").qtable_index == (0, 1, 1, 0)
    assert diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), color_space="RGB").qtable_index == (0, 0, 0)
    with pytest.raises(ValueError, match="color_space 'CMYK' has 4 components, these coefficients 3"):
        diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), color_space="CMYK")
    with pytest.raises(ValueError, match="color_space must be one of"):
        diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), color_space="Lab")
    with pytest.raises(ValueError, match="components must be"):
        diffjpeg.Coefficients(z, None, None, t, "4:4:4", (16, 16), k=z)
    with pytest.raises(ValueError, match="components must be"):
        diffjpeg.Coefficients(z, z, None, t, "4:4:4", (16, 16))
    with pytest.raises(ValueError, match="component 3 has shape"):
        diffjpeg.decode(diffjpeg.Coefficients(z, z, z, t, "4:4:4", (16, 16), k=z[:1]))


# ---------------------------------------------------------------- many APPn segments
@pytest.mark.parametrize("reader", ["compiled", "jpeglib"])
def test_hundreds_of_app_segments(reader, monkeypatch):
    """libjpeg skips any number of APPn (jpeglib alone keeps at most 50 and fails past them)."""
    from diffjpeg.codec import files

    if reader == "jpeglib":
        monkeypatch.setattr(files, "_reader", lambda: None)
    one = skimage_crop("astronaut", 1, 1, 100, 150)
    buf = io.BytesIO()
    Image.fromarray(one).save(buf, "JPEG")
    icc = b"".join(segment(0xE2, b"ICC_PROFILE\x00" + bytes([i % 255 + 1, 255]) + bytes(40)) for i in range(300))
    comments = b"".join(segment(0xFE, b"hello %d" % i) for i in range(60))
    for data in (with_segments(buf.getvalue(), icc + comments), with_segments(pillow_cmyk(photo4(9, 7)), icc)):
        assert len(parse_structure(data).skipped) >= 300
        assert_identical(ours(diffjpeg.read(data)), pillow_decode(data))


def test_many_segments_parse_in_time_proportional_to_the_file():
    """100,000 empty COM segments (400 KB): parsed once, no quadratic work."""
    import time

    base = diffjpeg.write(handmade("YCbCr", ((2, 2), (1, 1), (1, 1)), (8, 8)))
    small, large = (with_segments(base, b"\xff\xfe\x00\x02" * n) for n in (10_000, 100_000))
    timings = []
    for data in (small, large):
        start = time.perf_counter()
        diffjpeg.read(data)
        timings.append(time.perf_counter() - start)
    assert timings[1] < 5.0 and timings[1] < 30 * timings[0] + 0.1, timings


# ---------------------------------------------------------------- what stays refused
def lossless_gray(a: np.ndarray) -> bytes:
    """A lossless (SOF3) 8-bit grayscale file: predictor 1 (left; above at
    each row's start, 128 first), T.81 H.1, Huffman table K.3's luma DC."""
    h, w = a.shape
    x = a.astype(np.int64)
    prediction = np.empty_like(x)
    prediction[0, 0] = 128
    prediction[0, 1:] = x[0, :-1]
    prediction[1:, 0] = x[:-1, 0]
    prediction[1:, 1:] = x[1:, :-1]
    diff = (x - prediction).flatten()
    size = np.array([int(abs(int(d))).bit_length() for d in diff])
    extra = np.where(diff >= 0, diff, diff + (1 << size) - 1)
    table = STANDARD_TABLES[0][0]
    lengths, codes = table.code_lengths_and_codes()
    data = stuff(pack(torch.tensor((codes[size] << size) | extra), torch.tensor(lengths[size] + size)))
    return (b"\xff\xd8" + segment(0xC3, struct.pack(">BHHB", 8, h, w, 1) + bytes([1, 0x11, 0]))
            + segment(0xC4, bytes([0]) + bytes(table.counts) + bytes(table.values))
            + segment(0xDA, bytes([1, 1, 0x00, 1, 0, 0])) + data + b"\xff\xd9")


def test_lossless_files_have_no_coefficients_but_pixels():
    """Pillow 13 (libjpeg-turbo 3) decodes 8-bit lossless JPEG; it has no DCT
    coefficients: read says so, read_image decodes it (tests/codec/test_lossless.py)."""
    a = skimage_crop("camera", 9, 13, 200, 200)
    data = lossless_gray(a)
    assert_identical(pillow_decode(data), a)
    with pytest.raises(diffjpeg.JPEGError, match="lossless JPEG file .SOF3. has no DCT coefficients to read; diffjpeg.read_image"):
        diffjpeg.read(data)
    assert_identical(diffjpeg.read_image(data)[0].numpy(), a)


@pytest.mark.parametrize("precision", [12, 16])
def test_12_and_16_bit_files_are_refused_with_the_reason(precision):
    data = diffjpeg.write(handmade("YCbCr", ((2, 2), (1, 1), (1, 1)), (8, 8)))
    sof = data.index(b"\xff\xc0")
    edited = data[: sof + 4] + bytes([precision]) + data[sof + 5 :]
    with pytest.raises(diffjpeg.JPEGError, match=f"{precision}-bit samples; only 8-bit samples are supported"):
        diffjpeg.read(edited)


def test_decoder_steps_are_decoded_pixels():
    """The compiled kernel's two steps (color.DECODER_STEPS) give decoded_pixels_fixed's values."""
    for space, count in COLOR_SPACES.items():
        planes = torch.randint(0, 256, (2, count, 5, 7), dtype=torch.int32)
        convert, inverted = color.DECODER_STEPS[space]
        steps = planes.clone()
        if convert:
            steps[:, :3] = color.ycbcr_to_rgb_fixed(planes[:, :3].contiguous())
        steps[:, list(inverted)] = 255 - steps[:, list(inverted)]
        assert torch.equal(steps, color.decoded_pixels_fixed(planes, space)), space


@pytest.mark.paths
@pytest.mark.skipif(not exact.compiled(), reason="no compiled kernel")
def test_kernel_decodes_every_color_space_like_the_tensor_stages(tmp_path):
    """Batched, float32 and float64, uint8 out: the kernel's values are the tensor stages'."""
    files = {
        "CMYK": [pillow_cmyk(photo4(19, 26), quality=q) for q in (20, 95)],
        "YCCK": [libjpeg_file(photo4(19, 26), "YCCK", tmp_path, quality=q) for q in (20, 95)],
        "RGB": [libjpeg_file(np.ascontiguousarray(photo4(19, 26)[..., :3]), "RGB", tmp_path, quality=q) for q in (20, 95)],
    }
    for space, pair in files.items():
        batch = diffjpeg.read_batch(pair)
        for dtype in (torch.float32, torch.float64):
            c = batch.to(dtype)
            assert exact.decode_applies(c.components, c.component_qtables(), c.geometries(), None, space)
            kernel = diffjpeg.decode(c)
            with cpu.enabled(False):
                assert torch.equal(kernel, diffjpeg.decode(c)), (space, dtype)
        flat = [t.reshape(2, *t.shape[1:]) for t in batch.components]
        samples = exact.decode(flat, batch.component_qtables(), batch.geometries(), batch.size, torch.uint8, space)
        with cpu.enabled(False):
            assert torch.equal(samples, torch.round(diffjpeg.decode(batch) * 255).to(torch.uint8)), space
