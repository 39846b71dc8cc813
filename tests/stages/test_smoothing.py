"""Block smoothing of progressive files whose scans stop early, against Pillow.

The files are Pillow's (and diffjpeg's own) progressive files with their
later scans cut off: the bytes up to the end of scan ``k``, then EOI.
"""
import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.backends import cpu
from diffjpeg.bitstream import progressive
from diffjpeg.bitstream.markers import parse_structure
from diffjpeg.stages import smoothing
from tests.helpers import PIL_SUBSAMPLING, assert_identical, pillow_decode, pillow_file, skimage_crop

SIZES = ((8, 8), (24, 40), (37, 53), (130, 97))  # one block; the row quirks of 4:2:0; odd; several iMCU rows


def photo(h, w, gray=False):
    a = skimage_crop("astronaut", h, w, 40, 120)
    return np.ascontiguousarray(a[..., 0]) if gray else a


def cut(data: bytes, keep: int) -> bytes:
    """The file with only its first ``keep`` scans."""
    return data[: parse_structure(data).scans[keep - 1].data[1]] + b"\xff\xd9"


def to_uint8(x: torch.Tensor) -> np.ndarray:
    a = torch.round(x * 255).to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def mismatches(c: diffjpeg.Coefficients, data: bytes) -> int:
    return int((to_uint8(diffjpeg.decode(c)).astype(int) != pillow_decode(data)).sum())


def every_cut(data: bytes):
    scans = len(parse_structure(data).scans)
    return [cut(data, k) for k in range(1, scans + 1)]


CASES = [("4:2:0", s) for s in SIZES] + [("gray", s) for s in SIZES] + [("4:4:4", (37, 53)), ("4:2:2", (130, 97))]


@pytest.mark.parametrize("kind,size", CASES)
def test_cut_progressive_files_decode_like_pillow(kind, size):
    """Every cut point of libjpeg's script: DC only (interpolation), DC and
    the first luma AC band, successive approximation half done, ...; with
    the compiled kernel and with the tensor stages."""
    gray = kind == "gray"
    options = {} if gray else {"subsampling": PIL_SUBSAMPLING[kind]}
    data = pillow_file(photo(*size, gray), quality=80, progressive=True, **options)
    for part in every_cut(data):
        c = diffjpeg.read(part)
        reference = pillow_decode(part)
        assert_identical(to_uint8(diffjpeg.decode(c)), reference)
        with cpu.enabled(False):
            assert_identical(to_uint8(diffjpeg.decode(c)), reference)
        image = diffjpeg.read_image(part)  # the 8-bit samples straight from the smoothed integer stages
        assert_identical(image[0].numpy() if gray else image.permute(1, 2, 0).numpy(), reference)


def test_cut_cmyk_progressive_files_decode_like_pillow():
    """Four components, each with its own state: Pillow's CMYK files cut at every scan."""
    buf = io.BytesIO()
    Image.fromarray(photo(37, 53)).convert("CMYK").save(buf, "JPEG", quality=80, progressive=True)
    smoothed = 0
    for part in every_cut(buf.getvalue()):
        c = diffjpeg.read(part)
        smoothed += c.progression is not None
        reference = np.asarray(Image.open(io.BytesIO(part)))
        for kernel in (True, False):
            with cpu.enabled(kernel):
                assert_identical(to_uint8(diffjpeg.decode(c)), reference)
    assert smoothed >= 5


def test_smoothing_is_what_closes_the_gap():
    """Without it (the decoder before smoothing), the same files differ from Pillow."""
    data = pillow_file(photo(37, 53), quality=80, progressive=True)
    before = after = 0
    for part in every_cut(data)[:-1]:
        c = diffjpeg.read(part)
        assert c.progression is not None
        before += mismatches(dataclasses.replace(c, progression=None), part)
        after += mismatches(c, part)
    assert after == 0 and before > 1000


def test_complete_files_have_no_progression():
    photo_ = photo(24, 40)
    assert diffjpeg.read(pillow_file(photo_, progressive=True)).progression is None
    assert diffjpeg.read(pillow_file(photo_)).progression is None
    assert diffjpeg.encode(torch.rand(3, 16, 16)).progression is None


def test_progression_state_follows_the_scans():
    data = pillow_file(photo(24, 40), progressive=True)  # libjpeg's script (diffjpeg.bitstream.progressive)
    y, cb, cr = diffjpeg.read(cut(data, 1)).progression.bits
    assert y == cb == cr == (1,) + (-1,) * 63
    y, cb, cr = diffjpeg.read(cut(data, 2)).progression.bits
    assert y[:7] == (1, 2, 2, 2, 2, 2, -1) and cb == (1,) + (-1,) * 63
    y, cb, cr = diffjpeg.read(cut(data, 7)).progression.bits
    assert y == (0,) + (1,) * 63 and cb == (0,) + (1,) * 63


@pytest.mark.parametrize("size", ((24, 40), (40, 56), (9, 130)))
def test_own_progressive_files_with_another_script(monkeypatch, size):
    """Non-interleaved DC scans (no padding row coded), successive
    approximation on a few AC, cut anywhere: diffjpeg writes, Pillow decodes."""
    script = (
        ((0,), 0, 0, 0, 2),  # luma DC alone: its MCU padding row stays 0
        ((1, 2), 0, 0, 0, 0),
        ((0,), 1, 2, 0, 3),
        ((0,), 0, 0, 2, 1),
        ((1,), 1, 9, 0, 1),
        ((0,), 1, 2, 3, 2),
        ((0,), 3, 63, 0, 0),
        ((2,), 1, 63, 0, 0),
        ((1,), 1, 9, 1, 0),
        ((0,), 1, 2, 2, 1),
        ((1,), 10, 63, 0, 0),
        ((0,), 0, 0, 1, 0),
        ((0,), 1, 2, 1, 0),
    )
    monkeypatch.setattr(progressive, "YCBCR_SCRIPT", script)
    c = diffjpeg.encode(torch.from_numpy(photo(*size)).permute(2, 0, 1), quality=85)
    data = diffjpeg.write(c, progressive=True)
    for part in every_cut(data)[1:]:  # from the second scan on: every component has a scan
        assert_identical(to_uint8(diffjpeg.decode(diffjpeg.read(part))), pillow_decode(part))


def test_padding_row_as_libjpegs_encoders_write_it():
    """Without the padding row's values (the jpeglib fallback) smoothing
    assumes libjpeg's encoders' padding, which Pillow's files have."""
    data = pillow_file(photo(24, 40), quality=80, progressive=True)
    for part in every_cut(data)[:-1]:
        c = diffjpeg.read(part)
        assert c.progression.padding_dc[0] is not None  # 3 luma block rows, MCUs of 2
        blind = dataclasses.replace(c, progression=diffjpeg.Progression(c.progression.bits, (None,) * 3))
        assert mismatches(blind, part) == 0


def test_cut_arithmetic_progressive_files_decode_like_pillow(tmp_path):
    jpeglib = pytest.importorskip("jpeglib")
    path = str(tmp_path / "arithmetic.jpg")
    with jpeglib.version("turbo210"):
        jpeglib.from_spatial(photo(40, 56)).write_spatial(path, qt=80, flags=["+ARITH_CODE", "+PROGRESSIVE_MODE"])
    with open(path, "rb") as f:
        data = f.read()
    assert parse_structure(data).process == "arithmetic progressive"
    for part in every_cut(data):
        assert_identical(to_uint8(diffjpeg.decode(diffjpeg.read(part))), pillow_decode(part))


def test_fallback_reader_decodes_like_pillow(monkeypatch):
    from diffjpeg.codec import files

    monkeypatch.setattr(files, "_reader", lambda: None)  # jpeglib, no padding row
    data = pillow_file(photo(24, 40), quality=80, progressive=True)
    for part in every_cut(data)[:3]:
        c = diffjpeg.read(part)
        assert c.progression.padding_dc == (None, None, None)
        assert_identical(to_uint8(diffjpeg.decode(c)), pillow_decode(part))


def test_opencv_agrees():
    cv2 = pytest.importorskip("cv2")
    data = pillow_file(photo(37, 53), quality=80, progressive=True)
    for part in every_cut(data)[:3]:
        bgr = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
        assert_identical(to_uint8(diffjpeg.decode(diffjpeg.read(part))), bgr[..., ::-1])


@pytest.mark.slow
def test_large_cut_file_decodes_like_pillow():
    data = pillow_file(skimage_crop("astronaut"), quality=90, progressive=True)
    for part in every_cut(data)[:-1]:
        assert_identical(to_uint8(diffjpeg.decode(diffjpeg.read(part))), pillow_decode(part))


# ---------------------------------------------------------------- the integer form
def literal_smoothing(blocks, q, bits, v, imcu_rows, padding):
    """decompress_smooth_data for one component, block by block as jdcoefct.c
    does it, in Python integers (sliding DC registers, C division, JCOEF)."""
    rows, cols = blocks.shape[:2]
    dc = [[int(blocks[r, c, 0, 0]) for c in range(cols)] for r in range(rows)] + [[int(p) for p in padding]]
    out = blocks.copy()
    interpolate = all(b == -1 for b in bits[1:10])
    zz = (0, 1, 8, 16, 9, 2, 3, 10, 17, 24)
    table = [int(q.flatten()[p]) for p in zz]

    def estimate(num, k, al):
        qk = table[k]
        pred = (qk * 128 + abs(num)) // (qk * 256)
        if al > 0 and pred >= (1 << al):
            pred = (1 << al) - 1
        pred = -pred if num < 0 else pred
        return (pred + 32768) % 65536 - 32768

    weights = smoothing.INTERPOLATION if interpolate else smoothing.ESTIMATION
    for r, window_rows in enumerate(smoothing.window_rows(rows, v, imcu_rows)):
        for c in range(cols):
            window = [dc[wr][min(max(c + d, 0), cols - 1)] for wr in window_rows for d in range(-2, 3)]
            for k, w in weights.items():
                num = table[0] * sum(a * b for a, b in zip(w, window))
                y, x = divmod(zz[k], 8)
                if k == 0:
                    out[r, c, 0, 0] = estimate(num, 0, 0)
                elif bits[k] != 0 and blocks[r, c, y, x] == 0:
                    out[r, c, y, x] = estimate(num, k, bits[k])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_form_equals_the_literal_one(seed):
    g = torch.Generator().manual_seed(seed)
    rows, cols = (int(t) for t in torch.randint(1, 8, (2,), generator=g))
    v = int(torch.randint(1, 4, (), generator=g))
    imcu_rows = -(-rows // v)
    height = rows * 8 if rows % v == 0 else imcu_rows * 8 * v - 8 * (v - rows % v)
    scale = 30000 if seed % 2 else 60  # large values: the int16 wrap of an estimate
    blocks = torch.randint(-scale, scale + 1, (1, rows, cols, 8, 8), generator=g).double()
    blocks[..., 0:4, 0:4] *= torch.rand(1, rows, cols, 4, 4, generator=g) < 0.3
    q = torch.randint(1, 40, (1, 1, 8, 8), generator=g).double()
    bits = [0] + [-1] * 63 if seed % 3 == 0 else [1] + [int(b) for b in torch.randint(-1, 4, (63,), generator=g)]
    padding = torch.randint(-scale, scale + 1, (1, cols), generator=g).double()
    geometry = diffjpeg.core.geometry.component_geometry((height, cols * 8), (1, v), (1, v))
    assert geometry.blocks == (rows, cols)
    progression = diffjpeg.Progression((tuple(bits),), (padding,))
    got = smoothing.smooth([blocks], q, progression, [geometry], (height, cols * 8), "exact")[0]
    want = literal_smoothing(blocks[0].long().numpy(), q[0, 0].long().numpy(), bits, v, imcu_rows, padding[0].long().numpy())
    assert np.array_equal(got[0].long().numpy(), want)


@pytest.mark.paths
def test_tap_sums_off_the_cpu_equal_the_matrix_product():
    """CUDA and MPS sum the 25 taps one by one (no integer matmul there): the
    same integers, down to the extremes of 16-bit DCs."""
    g = torch.Generator().manual_seed(0)
    window = torch.randint(-32768, 32768, (3, 5, 7, 25), generator=g)
    window[0, 0, 0] = -32768
    window[0, 0, 1] = 32767
    for table in (smoothing.INTERPOLATION, smoothing.ESTIMATION):
        weights = torch.tensor(list(table.values())).T
        assert torch.equal(smoothing.tap_sums(window, weights), window @ weights)


def test_window_rows_read_only_the_first_padding_row():
    for v in (1, 2, 3, 4):
        for rows in range(1, 30):
            imcu_rows = -(-rows // v)
            table = smoothing.window_rows(rows, v, imcu_rows)
            assert len(table) == rows and max(max(t) for t in table) <= rows and min(min(t) for t in table) >= 0
            uses_padding = any(rows in t for t in table)
            assert uses_padding == (v > 1 and imcu_rows > 1 and rows % v == 1)


# ---------------------------------------------------------------- gradients and the container
def test_gradient_reaches_the_neighbours_dc():
    """A block's pixels depend on its neighbours' DC through the estimates."""
    data = cut(pillow_file(photo(24, 40, gray=True), quality=80, progressive=True), 1)
    c = diffjpeg.read(data)
    for smoothed in (True, False):
        y = c.y.clone().requires_grad_(True)
        d = dataclasses.replace(c, y=y, progression=c.progression if smoothed else None)
        diffjpeg.decode(d)[..., :8, :8].sum().backward()
        assert (y.grad[0, 2, 0, 0] != 0) == smoothed
        assert torch.isfinite(y.grad).all()


def test_soft_estimates_have_their_true_gradient():
    bits = ((1,) + (-1,) * 63,)
    geometry = diffjpeg.core.geometry.component_geometry((24, 24), (1, 1), (1, 1))
    q = torch.randint(1, 30, (1, 1, 8, 8)).double().requires_grad_(True)

    def smoothed(dc, q):
        blocks = torch.nn.functional.pad(dc[None, :, :, None, None], (0, 7, 0, 7))  # DC only: AC 0, to estimate
        progression = diffjpeg.Progression(bits, (None,))
        return smoothing.smooth([blocks], q, progression, [geometry], (24, 24), "soft")[0]

    dc = (torch.randn(3, 3, dtype=torch.float64) * 20).requires_grad_(True)
    assert torch.autograd.gradcheck(smoothed, (dc, q), fast_mode=True)


@pytest.mark.paths
def test_progression_survives_indexing_moving_and_batching():
    parts = [cut(pillow_file(photo(24, 40)[:, ::s], progressive=True), 2) for s in (1, -1)]
    batch = diffjpeg.read_batch(parts)
    assert batch.progression.padding_dc[0].shape == (2, 5)
    assert batch[1].progression.padding_dc[0].shape == (5,)
    assert batch.to(torch.float64).progression.padding_dc[0].dtype == torch.float64
    assert batch.detach().progression.bits == batch.progression.bits
    for i, part in enumerate(parts):
        assert_identical(to_uint8(diffjpeg.decode(batch[i])), pillow_decode(part))
    decoded = diffjpeg.decode(batch)
    assert all(np.array_equal(to_uint8(decoded[i]), pillow_decode(p)) for i, p in enumerate(parts))
    with pytest.raises(ValueError, match="incomplete"):
        diffjpeg.read_batch([parts[0], cut(pillow_file(photo(24, 40), progressive=True), 3)])


def test_bad_progression_is_refused():
    c = diffjpeg.read(cut(pillow_file(photo(24, 40), progressive=True), 1))
    with pytest.raises(ValueError, match="64 values"):
        diffjpeg.Progression(((0,) * 10,), (None,))
    with pytest.raises(ValueError, match="64 values"):
        diffjpeg.Progression(((14,) * 64,), (None,))
    with pytest.raises(ValueError, match="tensor or None"):
        diffjpeg.Progression(((0,) * 64,), ([1, 2],))
    with pytest.raises(TypeError, match="Progression"):
        dataclasses.replace(c, progression=((0,) * 64,))
    with pytest.raises(ValueError, match="components"):
        dataclasses.replace(c, progression=diffjpeg.Progression(((0,) * 64,), (None,)))
    wrong = diffjpeg.Progression(c.progression.bits, (torch.zeros(4),) + c.progression.padding_dc[1:])
    with pytest.raises(ValueError, match="padding_dc"):
        diffjpeg.decode(dataclasses.replace(c, progression=wrong))
    nan = diffjpeg.Progression(c.progression.bits, (torch.full((5,), float("nan")),) + c.progression.padding_dc[1:])
    with pytest.raises(ValueError, match="NaN"):
        diffjpeg.decode(dataclasses.replace(c, progression=nan))


def test_zero_table_entries_turn_smoothing_off():
    """smoothing_ok: a zero in the DC or zigzag 1..9 of any table, no smoothing."""
    c = diffjpeg.read(cut(pillow_file(photo(24, 40), progressive=True), 1))
    tables = c.qtables.clone()
    tables[1, 0, 1] = 0
    zeroed = dataclasses.replace(c, qtables=tables)
    plain = dataclasses.replace(zeroed, progression=None)
    assert torch.equal(diffjpeg.decode(zeroed), diffjpeg.decode(plain))


def test_written_back_file_is_complete():
    part = cut(pillow_file(photo(24, 40), progressive=True), 2)
    again = diffjpeg.read(diffjpeg.write(diffjpeg.read(part), progressive=True))
    assert again.progression is None
    assert Image.open(io.BytesIO(diffjpeg.write(diffjpeg.read(part)))).size == (40, 24)
