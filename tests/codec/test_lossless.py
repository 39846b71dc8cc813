"""Lossless JPEG (SOF3): diffjpeg.read_image and diffjpeg.codec.lossless against
Pillow (libjpeg-turbo 3.2), on files written by tests/lossless_writer.py
(T.81 Annex H, independent of the decoder), the compiled and the Python
decoders alike, damaged and hostile files included."""
import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

import diffjpeg
from diffjpeg.bitstream.markers import parse_structure
from diffjpeg.codec import lossless
from tests.lossless_writer import lossless_jpeg

PATHS = [True, False] if lossless.compiled() else [False]  # compiled, Python
RNG_SEED = 12


def pillow(data: bytes, truncated: bool = False) -> np.ndarray:
    """Pillow's pixels, channels first (with ``LOAD_TRUNCATED_IMAGES`` if asked)."""
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asarray(Image.open(io.BytesIO(data)))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def decoded(data: bytes, compiled: bool, strict: bool = True) -> np.ndarray:
    return lossless.decode_lossless(data, parse_structure(data), strict=strict, compiled=compiled)


def same_as_pillow(data: bytes, compiled: bool = True) -> np.ndarray:
    mine = decoded(data, compiled and lossless.compiled())
    reference = pillow(data)
    assert mine.dtype == np.uint8 and mine.shape == reference.shape
    np.testing.assert_array_equal(mine, reference)
    return mine


def planes(rng, count, size, sampling=None):
    """Random component planes of their sampled sizes (and smooth ones, so
    both short and long codes occur)."""
    height, width = size
    sampling = sampling or [(1, 1)] * count
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    out = []
    for i, (h, v) in enumerate(sampling):
        shape = (-(-height * v // vmax), -(-width * h // hmax))
        if i % 2:
            out.append(rng.integers(0, 256, shape, dtype=np.uint8))
        else:
            y, x = np.mgrid[: shape[0], : shape[1]]
            out.append(((x * 7 + y * 3 + rng.integers(0, 9, shape)) % 256).astype(np.uint8))
    return out


@pytest.mark.parametrize("predictor", range(1, 8))
@pytest.mark.parametrize("al", [0, 1, 3])
def test_predictors_and_point_transforms_equal_pillow(predictor, al):
    rng = np.random.default_rng(predictor * 10 + al)
    for size in [(1, 1), (5, 7), (17, 33)]:
        for count in (1, 3):
            p = planes(rng, count, size)
            data = lossless_jpeg(p, predictor=predictor, al=al)
            mine = same_as_pillow(data)
            np.testing.assert_array_equal(mine, (np.stack(p) >> al) << al)  # lossless up to the point transform
            same_as_pillow(lossless_jpeg(p, predictor=predictor, al=al, restart=size[1] * 2))  # every 2 lines
    big = planes(rng, 3, (64, 64))
    same_as_pillow(lossless_jpeg(big, predictor=predictor, al=al, restart=64))


@pytest.mark.paths
@pytest.mark.parametrize("predictor", [1, 4, 7])
def test_python_and_compiled_decoders_agree(predictor):
    rng = np.random.default_rng(predictor)
    p = planes(rng, 3, (9, 13), [(2, 1), (1, 1), (1, 1)])
    for options in [{}, {"restart": 7}, {"scans": [(0,), (1, 2)], "restart": 91}]:  # 91: whole rows of 13 and of 7
        data = lossless_jpeg(p, (9, 13), sampling=[(2, 1), (1, 1), (1, 1)], predictor=predictor, **options)
        reference = pillow(data)
        for compiled in PATHS:
            np.testing.assert_array_equal(decoded(data, compiled), reference)


@pytest.mark.parametrize("marker, ids, space", [
    (None, None, "RGB"),  # ids 1, 2, 3 without markers: RGB in a lossless file (YCbCr in a lossy one)
    (None, list(b"RGB"), "RGB"),
    (None, [7, 8, 9], "RGB"),
    ("adobe0", None, "RGB"),
    ("jfif", None, "YCbCr"),
    ("adobe1", None, "YCbCr"),
])
def test_color_spaces_as_libjpeg_turbo_decodes_them(marker, ids, space):
    """libjpeg-turbo converts no colors in lossless mode: RGB passes, a
    YCbCr file fails in Pillow (JERR_CONVERSION_NOTIMPL) and here."""
    p = planes(np.random.default_rng(1), 3, (6, 5))
    data = lossless_jpeg(p, marker=marker, ids=ids, predictor=5)
    assert parse_structure(data).color_space == space
    if space == "RGB":
        np.testing.assert_array_equal(same_as_pillow(data), np.stack(p))
        return
    with pytest.raises(OSError):
        pillow(data)
    with pytest.raises(diffjpeg.JPEGError, match="lossless JPEG in YCbCr: libjpeg-turbo does no color conversion"):
        diffjpeg.read_image(data)


def test_cmyk_is_pillows_and_ycck_is_refused():
    p = planes(np.random.default_rng(2), 4, (7, 6))
    for options in [{}, {"marker": "adobe0"}, {"scans": [(0, 1), (2,), (3,)]}]:
        mine = same_as_pillow(lossless_jpeg(p, predictor=3, **options))
        np.testing.assert_array_equal(mine, 255 - np.stack(p))  # Pillow's "CMYK;I"
    data = lossless_jpeg(p, marker="adobe2")
    with pytest.raises(OSError):
        pillow(data)
    with pytest.raises(diffjpeg.JPEGError, match="lossless JPEG in YCCK"):
        diffjpeg.read_image(data)


@pytest.mark.parametrize("sampling", [
    [(2, 2), (1, 1), (1, 1)], [(2, 1), (1, 1), (1, 1)], [(1, 2), (1, 1), (1, 1)],
    [(1, 1), (2, 2), (1, 2)], [(4, 1), (2, 1), (1, 1)], [(2, 2)],
])
def test_sampling_factors_upsample_by_repetition(sampling):
    """Samples past a component's edge in an interleaved MCU are dropped;
    the upsampling repeats samples (fancy upsampling is off in lossless)."""
    rng = np.random.default_rng(len(sampling))
    for size in [(1, 1), (5, 7), (17, 33)]:
        p = planes(rng, len(sampling), size, sampling)
        for scans in ([tuple(range(len(sampling)))], [(i,) for i in range(len(sampling))]):
            same_as_pillow(lossless_jpeg(p, size, sampling=sampling, scans=scans, predictor=6))


@pytest.mark.parametrize("compiled", PATHS)
def test_restart_within_an_imcu_row_resets_its_first_line(compiled):
    """libjpeg-turbo flags the predictor reset at a restart and applies it to
    the first line of the iMCU row: in a one-component scan with v = 2 and a
    restart every line, that is not the line the restart starts, so the
    file's pixels differ from the writer's (the standard's) and equal Pillow's."""
    g = planes(np.random.default_rng(3), 1, (7, 5))[0]
    data = lossless_jpeg([g], sampling=[(2, 2)], restart=5, predictor=4)
    reference = pillow(data)
    assert not np.array_equal(reference[0], g)
    np.testing.assert_array_equal(decoded(data, compiled), reference)


@pytest.mark.parametrize("compiled", PATHS)
def test_arbitrary_differences_wrap_at_16_bits(compiled):
    """Values are kept modulo 2**16 and predicted from those, output cut to
    8 bits; symbol 16 means 32768."""
    rng = np.random.default_rng(4)
    for predictor in range(1, 8):
        diffs = [rng.integers(-32767, 32769, (6, 9)) for _ in range(3)]
        diffs[0][0, 0] = diffs[1][3, 4] = 32768
        zeros = [np.zeros((6, 9), np.uint8)] * 3
        for options in [{"al": 0}, {"al": 2, "restart": 18, "scans": [(0,), (1,), (2,)]}]:
            data = lossless_jpeg(zeros, predictor=predictor, diffs=diffs, **options)
            np.testing.assert_array_equal(decoded(data, compiled), pillow(data))


def test_read_refuses_and_read_image_decodes():
    p = planes(np.random.default_rng(5), 3, (10, 12))
    data = lossless_jpeg(p, predictor=2, restart=24)
    with pytest.raises(diffjpeg.JPEGError, match="lossless JPEG file .SOF3. has no DCT coefficients.*read_image"):
        diffjpeg.read(data)
    image = diffjpeg.read_image(data)
    assert image.dtype == diffjpeg.read_image(io.BytesIO(data)).dtype
    np.testing.assert_array_equal(image.numpy(), pillow(data))


def test_invalid_scan_parameters_are_refused():
    data = lossless_jpeg([np.zeros((3, 4), np.uint8)], predictor=1)
    sos = data.index(b"\xff\xda")
    for predictor in (0, 8):
        bad = data[: sos + 7] + bytes([predictor]) + data[sos + 8 :]
        with pytest.raises(OSError):
            pillow(bad)
        for strict in (True, False):
            with pytest.raises(diffjpeg.JPEGError, match=f"lossless scan parameters are invalid: predictor Ss={predictor}"):
                diffjpeg.read_image(bad, strict=strict)
    with pytest.raises(diffjpeg.JPEGError, match="Se=5"):
        diffjpeg.read_image(data[: sos + 8] + b"\x05" + data[sos + 9 :])
    with pytest.raises(diffjpeg.JPEGError, match="Al=8"):
        diffjpeg.read_image(data[: sos + 9] + b"\x08" + data[sos + 10 :])


def test_restart_interval_must_cover_whole_rows():
    data = lossless_jpeg([np.zeros((3, 4), np.uint8)], restart=3)
    with pytest.raises(OSError):
        pillow(data)
    with pytest.raises(diffjpeg.JPEGError, match="restart interval 3 is not a multiple of the 4 MCUs in a row"):
        diffjpeg.read_image(data)


def test_missing_and_bad_huffman_tables_are_refused():
    data = lossless_jpeg([np.zeros((3, 4), np.uint8)])
    dht = data.index(b"\xff\xc4")
    length = int.from_bytes(data[dht + 2 : dht + 4], "big")
    with pytest.raises(diffjpeg.JPEGError, match="uses Huffman table 0, which the file does not define"):
        diffjpeg.read_image(data[:dht] + data[dht + 2 + length :])
    overfull = bytes([0, 3] + [0] * 15 + [0, 1, 2])  # three codes of one bit
    bad = data[:dht] + b"\xff\xc4" + (len(overfull) + 2).to_bytes(2, "big") + overfull + data[dht + 2 + length :]
    with pytest.raises(diffjpeg.JPEGError, match="more codes than its lengths allow"):
        diffjpeg.read_image(bad)


def test_other_precisions_hierarchical_and_arithmetic_stay_refused():
    data = lossless_jpeg([np.zeros((3, 4), np.uint8)])
    sof = data.index(b"\xff\xc3")
    with pytest.raises(diffjpeg.JPEGError, match="12-bit samples; only 8-bit samples are supported"):
        diffjpeg.read_image(data[: sof + 4] + b"\x0c" + data[sof + 5 :])
    for code, name in [(0xC7, "hierarchical lossless"), (0xCB, "arithmetic lossless")]:
        with pytest.raises(diffjpeg.JPEGError, match=f"^{name} JPEG .* is not supported"):
            diffjpeg.read_image(data[: sof + 1] + bytes([code]) + data[sof + 2 :])


def test_huge_dimensions_with_tiny_data_are_refused_at_once():
    data = bytearray(lossless_jpeg([np.zeros((2, 2), np.uint8)]))
    sof = data.index(b"\xff\xc3")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    with pytest.raises(diffjpeg.JPEGError, match="over the limit max_pixels"):
        diffjpeg.read_image(bytes(data))
    with pytest.raises(diffjpeg.JPEGError, match="codes 3600000000 samples in 2 bytes"):
        diffjpeg.read_image(bytes(data), max_pixels=None)


def damaged_files(seed: int = 6):
    """(kind, file) pairs: cuts, bit flips in the scans, dropped and wrong
    restart markers, of a gray file and two RGB files (interleaved with
    restarts, one scan per component)."""
    rng = np.random.default_rng(seed)
    gray = planes(rng, 1, (12, 20))
    rgb = planes(rng, 3, (12, 20))
    for f in [
        lossless_jpeg(gray, predictor=4),
        lossless_jpeg(rgb, predictor=7, restart=20),
        lossless_jpeg(rgb, predictor=2, restart=40, scans=[(0,), (1,), (2,)]),
    ]:
        last_data = parse_structure(f).scans[-1].data[0]
        for cut in range(last_data, len(f) - 2, 9):
            yield "cut", f[:cut]
        first = f.index(b"\xff\xda") + 10
        for _ in range(25):
            b = bytearray(f)
            at = int(rng.integers(first, len(f) - 2))
            b[at] ^= 1 << int(rng.integers(8))
            yield "flip", bytes(b)
        for at in [j for j in range(first, len(f) - 1) if f[j] == 0xFF and 0xD0 <= f[j + 1] <= 0xD7][:3]:
            yield "rst-dropped", f[:at] + f[at + 2 :]
            yield "rst-wrong", f[: at + 1] + bytes([0xD0 + (f[at + 1] + 3) % 8]) + f[at + 2 :]


def test_damaged_files_strict_refuse_and_lenient_equal_pillow():
    """strict=True: a JPEGError for each (Pillow refuses cut files too).
    strict=False: libjpeg-turbo's recovery, Pillow's pixels with
    LOAD_TRUNCATED_IMAGES, compiled and Python alike; refused only where the
    damage reaches the markers (a flip that makes one)."""
    decoded_count = refused = 0
    for kind, data in damaged_files():
        if kind == "flip":
            try:
                same_as_pillow(data)  # a flip may leave a valid file
                continue
            except diffjpeg.JPEGError:
                pass
        else:
            with pytest.raises(diffjpeg.JPEGError):
                diffjpeg.read_image(data)
        try:
            mine = diffjpeg.read_image(data, strict=False).numpy()
        except diffjpeg.JPEGError:  # damage to the markers (a cut scan header, a flip that makes a marker)
            refused += 1
            continue
        np.testing.assert_array_equal(mine, pillow(data, truncated=True), err_msg=kind)
        if lossless.compiled():
            padded = data if data.endswith(b"\xff\xd9") else data + b"\xff\xd9"
            structure = parse_structure(padded)
            np.testing.assert_array_equal(lossless.decode_lossless(padded, structure, strict=False, compiled=False), mine)
        decoded_count += 1
    assert decoded_count > 50 and refused < decoded_count / 5, (decoded_count, refused)


def test_strict_errors_say_what_and_where():
    p = planes(np.random.default_rng(7), 1, (8, 10))
    data = lossless_jpeg(p, restart=20)
    first_rst = data.index(b"\xff\xd0")
    wrong = data[: first_rst + 1] + b"\xd3" + data[first_rst + 2 :]
    with pytest.raises(diffjpeg.JPEGError, match=rf"restart marker FF D0 \(RST0\) expected, found FF D3 at byte {first_rst}"):
        diffjpeg.read_image(wrong)
    extra = data[:first_rst] + b"\x12\x34" + data[first_rst:]
    with pytest.raises(diffjpeg.JPEGError, match=rf"2 extraneous bytes before the marker at byte {first_rst + 2}"):
        diffjpeg.read_image(extra)
    end = data.rindex(b"\xff\xd9")
    cut = data[: end - 6] + data[end:]
    with pytest.raises(diffjpeg.JPEGError, match=rf"the data ends early, at the marker at byte {end - 6} \(scan 1, component 1, line 7\)"):
        diffjpeg.read_image(cut)


@pytest.mark.parametrize("compiled", PATHS)
def test_hostile_bytes_never_crash(compiled):
    """Random scan bytes under a valid header: a JPEGError or an image, never a crash or a hang."""
    rng = np.random.default_rng(8)
    header = lossless_jpeg(planes(rng, 3, (9, 11)), restart=22)
    start = header.index(b"\xff\xda") + 14
    structure = None
    for _ in range(30 if compiled else 5):
        noise = rng.integers(0, 256, int(rng.integers(0, 60)), dtype=np.uint8).tobytes()
        data = header[:start] + noise + b"\xff\xd9"
        for strict in (True, False):
            try:
                structure = parse_structure(data)
                out = lossless.decode_lossless(data, structure, strict=strict, compiled=compiled)
                assert out.shape == (3, 9, 11)
            except diffjpeg.JPEGError:
                pass


@pytest.mark.slow
def test_bigger_sweep_equals_pillow():
    rng = np.random.default_rng(9)
    for predictor in range(1, 8):
        for al in range(8):
            for sampling in ([(1, 1)] * 3, [(2, 2), (1, 1), (1, 1)], [(1, 2), (1, 1), (2, 2)]):
                p = planes(rng, 3, (37, 53), sampling)
                hmax = max(h for h, _ in sampling)
                same_as_pillow(lossless_jpeg(p, (37, 53), sampling=sampling, predictor=predictor, al=al, restart=-(-53 // hmax) * 3))
                same_as_pillow(lossless_jpeg(p, (37, 53), sampling=sampling, predictor=predictor, al=al, scans=[(2,), (0, 1)]), compiled=False)
