"""Real files: read, decode, write and count bits, against libjpeg itself."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.bitstream.huffman import STANDARD_TABLES, HuffmanTable, huffman_tables
from diffjpeg.bitstream.markers import parse_structure
from tests.helpers import PIL_SUBSAMPLING, assert_identical, pillow_decode, pillow_file, skimage_crop

QUALITIES = (1, 5, 20, 50, 75, 90, 100)


def photo(name="astronaut", h=61, w=83, top=100, left=150):
    return skimage_crop(name, h, w, top, left)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    a = torch.round(x * 255).to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def assert_decodes_like_pillow(data: bytes):
    assert_identical(to_uint8(diffjpeg.decode(diffjpeg.read(data))), pillow_decode(data))


def scan_bits(data: bytes) -> int:
    """8 x the length of the file's entropy-coded data (one scan)."""
    scans = parse_structure(data).scans
    assert len(scans) == 1
    start, end = scans[0].data
    return 8 * (end - start)


def same_coefficients(a: diffjpeg.Coefficients, b: diffjpeg.Coefficients) -> bool:
    return (
        all(torch.equal(x, y) for x, y in zip(a.components, b.components))
        and torch.equal(a.component_qtables(), b.component_qtables())
        and a.sampling == b.sampling
        and a.size == b.size
    )


# ---------------------------------------------------------------- decoding files
@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("subsampling", tuple(PIL_SUBSAMPLING))
@pytest.mark.parametrize("optimize,progressive", [(False, False), (True, False), (False, True), (True, True)])
def test_pillow_files_decode_identically(quality, subsampling, optimize, progressive):
    data = pillow_file(photo(), quality=quality, subsampling=PIL_SUBSAMPLING[subsampling], optimize=optimize, progressive=progressive)
    assert_decodes_like_pillow(data)


@pytest.mark.parametrize("quality", (10, 75, 100))
@pytest.mark.parametrize("progressive", (False, True))
def test_pillow_grayscale_files_decode_identically(quality, progressive):
    assert_decodes_like_pillow(pillow_file(photo("camera", 45, 77), quality=quality, progressive=progressive))


@pytest.mark.parametrize("quality", (15, 85))
@pytest.mark.parametrize("flags", [(0x221111, 0, 0), (0x211111, 1, 0), (0x111111, 0, 1)])
def test_opencv_files_decode_identically(quality, flags):
    cv2 = pytest.importorskip("cv2")
    sampling, optimize, progressive = flags
    ok, encoded = cv2.imencode(
        ".jpg",
        photo("coffee")[..., ::-1],
        [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling,
         cv2.IMWRITE_JPEG_OPTIMIZE, optimize, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive],
    )
    assert ok
    assert_decodes_like_pillow(encoded.tobytes())


@pytest.mark.parametrize("version", ["6b", "9f", "mozjpeg403", "turbo210"])
def test_other_libjpeg_builds_decode_identically(version, tmp_path):
    """Files written by other encoders (mozjpeg: progressive, trellis quantization)."""
    jpeglib = pytest.importorskip("jpeglib")
    path = tmp_path / "x.jpg"
    with jpeglib.version(version):
        jpeglib.from_spatial(photo("chelsea")).write_spatial(str(path), qt=70)
    assert_decodes_like_pillow(path.read_bytes())


SAMPLINGS = {
    "h1v2 (4:4:0)": ((1, 2), (1, 1), (1, 1)),
    "h4v1 (4:1:1)": ((4, 1), (1, 1), (1, 1)),
    "mixed h2v1 and h1v2 chroma": ((2, 2), (1, 2), (2, 1)),
    "luma upsampled": ((1, 1), (2, 2), (2, 2)),
    "ratio 3": ((3, 1), (1, 1), (1, 1)),
    "h4v2 (4:1:0)": ((4, 2), (1, 1), (1, 1)),
}


def handmade(sampling, size=(37, 53), seed=0) -> diffjpeg.Coefficients:
    """Smooth random coefficients for any sampling factors."""
    rng = np.random.default_rng(seed)
    c = diffjpeg.Coefficients(
        y=torch.zeros(1, 1, 8, 8), cb=torch.zeros(1, 1, 8, 8), cr=torch.zeros(1, 1, 8, 8),
        qtables=torch.full((2, 8, 8), 4.0), sampling=sampling, size=size,
    )
    blocks = []
    for geometry in c.geometries():
        b = rng.normal(0, 1, geometry.blocks + (8, 8)) * 24 / (1 + np.add.outer(np.arange(8), np.arange(8)))[None, None] ** 1.5
        b[..., 0, 0] = rng.integers(-25, 25, geometry.blocks)
        blocks.append(torch.tensor(np.round(b), dtype=torch.float32))
    return diffjpeg.Coefficients(*blocks, qtables=c.qtables, sampling=sampling, size=size)


@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_any_sampling_factors(name):
    """Written by libjpeg, decoded by Pillow and by us; bits match the file."""
    c = handmade(SAMPLINGS[name])
    data = diffjpeg.write(c)
    assert same_coefficients(diffjpeg.read(data), c)
    assert_decodes_like_pillow(data)
    progressive = diffjpeg.write(c, progressive=True)
    assert same_coefficients(diffjpeg.read(progressive), c)
    assert_decodes_like_pillow(progressive)
    assert int(diffjpeg.bits(c)) == scan_bits(data)
    assert int(diffjpeg.bits(c, "optimized")) == scan_bits(diffjpeg.write(c, optimize=True))


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize("kind", ["baseline", "optimized", "progressive", "grayscale", "4:2:2"])
def test_write_read_keeps_every_coefficient(kind):
    options = {"optimized": {"optimize": True}, "progressive": {"progressive": True}, "4:2:2": {"subsampling": 1}}.get(kind, {})
    a = photo("camera") if kind == "grayscale" else photo()
    original = diffjpeg.read(pillow_file(a, quality=65, **options))
    for written in ({"optimize": False}, {"optimize": True}, {"progressive": True}):
        again = diffjpeg.read(diffjpeg.write(original, **written))
        assert same_coefficients(again, original), written


@pytest.mark.parametrize("subsampling", tuple(PIL_SUBSAMPLING))
@pytest.mark.parametrize("written", [{"optimize": False}, {"optimize": True}, {"progressive": True}])
def test_encode_write_equals_exact_jpeg(subsampling, written):
    x = torch.from_numpy(photo("rocket")).permute(2, 0, 1).contiguous()
    c = diffjpeg.encode(x, quality=40, subsampling=subsampling)
    decoded_by_pillow = pillow_decode(diffjpeg.write(c, **written))
    ours = diffjpeg.jpeg(x, quality=40, subsampling=subsampling).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(decoded_by_pillow, ours)


@pytest.mark.parametrize("quality", (1, 10, 50, 90, 100))
@pytest.mark.parametrize("subsampling", tuple(PIL_SUBSAMPLING))
def test_progressive_files_are_byte_identical_to_libjpegs(quality, subsampling):
    """Same scan script, same Huffman tables, same bits as Pillow's progressive=True."""
    reference = pillow_file(photo(), quality=quality, subsampling=PIL_SUBSAMPLING[subsampling], progressive=True)
    assert diffjpeg.write(diffjpeg.read(reference), progressive=True) == reference
    gray = pillow_file(photo("camera"), quality=quality, progressive=True)
    assert diffjpeg.write(diffjpeg.read(gray), progressive=True) == gray


@pytest.mark.parametrize("quality", (1, 50, 95))
@pytest.mark.parametrize("subsampling", tuple(PIL_SUBSAMPLING))
@pytest.mark.parametrize("optimize", (False, True))
def test_baseline_files_are_byte_identical_to_libjpegs(quality, subsampling, optimize):
    """encode + write gives the very file Pillow writes (same headers, component ids 1, 2, 3, same scan)."""
    a = photo()
    x = torch.from_numpy(a).permute(2, 0, 1).contiguous()
    c = diffjpeg.encode(x, quality=quality, subsampling=subsampling)
    reference = pillow_file(a, quality=quality, subsampling=PIL_SUBSAMPLING[subsampling], optimize=optimize)
    assert diffjpeg.write(c, optimize=optimize) == reference
    gray = photo("camera")
    reference = pillow_file(gray, quality=quality, optimize=optimize)  # Pillow writes gray as 1x1 at its default
    assert diffjpeg.write(diffjpeg.encode(torch.from_numpy(gray)[None], quality=quality), optimize=optimize) == reference


def test_progressive_stress():
    """Noise at quality 100 (long EOB runs, many correction bits) and a huge image of zeros (EOB runs over 32767)."""
    noise = np.random.default_rng(5).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    reference = pillow_file(noise, quality=100, subsampling=0, progressive=True)
    assert diffjpeg.write(diffjpeg.read(reference), progressive=True) == reference
    flat = pillow_file(np.full((8 * 200, 8 * 200), 77, np.uint8), quality=90, progressive=True)
    assert diffjpeg.write(diffjpeg.read(flat), progressive=True) == flat


def test_encode_matches_pillows_coefficients():
    a = photo("coffee")
    for quality, subsampling in ((30, "4:2:0"), (92, "4:4:4")):
        mine = diffjpeg.encode(torch.from_numpy(a).permute(2, 0, 1).contiguous(), quality=quality, subsampling=subsampling)
        theirs = diffjpeg.read(pillow_file(a, quality=quality, subsampling=PIL_SUBSAMPLING[subsampling]))
        assert same_coefficients(mine, theirs)


def test_write_batch_to_pattern_list_and_file_objects(tmp_path):
    c = diffjpeg.encode(torch.rand(2, 3, 3, 20, 12), quality=50)
    written = diffjpeg.write(c, str(tmp_path / "img_{:02d}.jpg"))
    assert len(written) == 6 and (tmp_path / "img_05.jpg").read_bytes() == written[5]
    buffers = [io.BytesIO() for _ in range(6)]
    diffjpeg.write(c, buffers, optimize=True)
    batch = diffjpeg.read_batch([b.getvalue() for b in buffers])
    assert torch.equal(batch.y, c.y.reshape(6, *c.y.shape[2:]))
    assert diffjpeg.write(c, optimize=True) == [b.getvalue() for b in buffers]  # None: only the bytes
    path = tmp_path / "one.jpg"
    single = diffjpeg.encode(torch.rand(3, 9, 9))
    diffjpeg.write(single, path)
    with open(path, "rb") as f:
        assert same_coefficients(diffjpeg.read(f), diffjpeg.read(str(path)))


def test_read_gives_the_files_tables():
    data = pillow_file(photo(), quality=37)
    c = diffjpeg.read(data)
    zigzag = parse_structure(data).qtables
    natural = torch.zeros(2, 64)
    for slot in (0, 1):
        natural[slot, list(diffjpeg.core.scan.ZIGZAG)] = torch.tensor(zigzag[slot], dtype=torch.float32)
    assert torch.equal(c.qtables, natural.reshape(2, 8, 8))
    assert torch.equal(c.qtables, diffjpeg.quality_tables(torch.tensor(37.0), diffjpeg.standard_tables(), exact=True))


def test_coefficients_carry_gradients_from_a_file():
    c = diffjpeg.read(pillow_file(photo(), quality=50))
    c.y.requires_grad_()
    diffjpeg.decode(c, mode="float").mean().backward()
    assert c.y.grad is not None and torch.isfinite(c.y.grad).all() and c.y.grad.abs().sum() > 0


# ---------------------------------------------------------------- bits
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("subsampling", tuple(PIL_SUBSAMPLING))
def test_bits_equal_libjpeg_scan_length(name, subsampling):
    """For Pillow's own files: standard tables and optimize=True, every quality in a spread."""
    a = photo(name, 96, 131, 40, 60)
    for quality in (1, 5, 25, 50, 75, 95, 100):
        for optimize, huffman in ((False, "standard"), (True, "optimized")):
            data = pillow_file(a, quality=quality, subsampling=PIL_SUBSAMPLING[subsampling], optimize=optimize)
            assert int(diffjpeg.bits(diffjpeg.read(data), huffman)) == scan_bits(data), (quality, huffman)


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (9, 17), (16, 16), (33, 47)])
def test_bits_at_edge_sizes(size):
    """MCU padding (dummy blocks) at every edge configuration, and grayscale."""
    x = torch.rand(3, *size, generator=torch.Generator().manual_seed(1))
    for subsampling in PIL_SUBSAMPLING:
        c = diffjpeg.encode(x, quality=80, subsampling=subsampling)
        for optimize, huffman in ((False, "standard"), (True, "optimized")):
            assert int(diffjpeg.bits(c, huffman)) == scan_bits(diffjpeg.write(c, optimize=optimize))
    gray = diffjpeg.encode(x[:1], quality=80)
    assert int(diffjpeg.bits(gray)) == scan_bits(diffjpeg.write(gray))


def test_bits_count_byte_stuffing():
    """Noise at quality 100 puts many FF bytes in the scan."""
    noise = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    data = pillow_file(noise, quality=100, subsampling=0)
    start, end = parse_structure(data).scans[0].data
    assert data[start:end].count(b"\xff\x00") > 10
    assert int(diffjpeg.bits(diffjpeg.read(data))) == scan_bits(data)


@pytest.mark.paths
def test_bits_batched_and_per_image():
    x = torch.rand(2, 3, 3, 24, 40)
    qualities = [[10, 50, 90], [20, 60, 95]]
    n = diffjpeg.bits(diffjpeg.encode(x, quality=torch.tensor(qualities, dtype=torch.float32)))
    assert n.shape == (2, 3)
    assert n[0, 0] < n[0, 1] < n[0, 2]
    for i in range(2):
        for j in range(3):
            assert int(diffjpeg.bits(diffjpeg.encode(x[i, j], quality=qualities[i][j]))) == int(n[i, j])


def test_standard_and_optimized_tables_are_libjpegs():
    """The DHT segments libjpeg writes hold the same tables."""
    a = photo()
    for optimize, huffman in ((False, "standard"), (True, "optimized")):
        data = pillow_file(a, quality=70, optimize=optimize)
        written = dht_tables(data)
        ours = huffman_tables(diffjpeg.read(data), huffman)[0]
        assert ours == written
    assert {("dc", 0): STANDARD_TABLES[0][0], ("ac", 0): STANDARD_TABLES[0][1],
            ("dc", 1): STANDARD_TABLES[1][0], ("ac", 1): STANDARD_TABLES[1][1]} == dht_tables(pillow_file(a))


def dht_tables(data: bytes) -> dict:
    tables, position = {}, 2
    while data[position + 1] != 0xDA:  # up to SOS
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if data[position + 1] == 0xC4:
            body = data[position + 4 : position + 2 + length]
            while body:
                counts = tuple(body[1:17])
                values = tuple(body[17 : 17 + sum(counts)])
                tables[("ac" if body[0] >> 4 else "dc", body[0] & 15)] = HuffmanTable(counts, values)
                body = body[17 + sum(counts) :]
        position += 2 + length
    return tables


# ---------------------------------------------------------------- arguments
def test_argument_errors():
    c = diffjpeg.encode(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="huffman"):
        diffjpeg.bits(c, "fast")
    with pytest.raises(TypeError, match="progressive"):
        diffjpeg.write(c, progressive=1)
    with pytest.raises(TypeError, match="source"):
        diffjpeg.read(123)
    with pytest.raises(ValueError, match="max_pixels"):
        diffjpeg.read(b"\xff\xd8", max_pixels=0)
    with pytest.raises(ValueError, match="pattern"):
        diffjpeg.write(diffjpeg.encode(torch.rand(2, 3, 8, 8)), "no_placeholder.jpg")
    big = diffjpeg.Coefficients(c.y * 0 + 2000, c.cb, c.cr, c.qtables, c.sampling, c.size)
    with pytest.raises(ValueError, match="1023"):
        diffjpeg.write(big)
    with pytest.raises(ValueError, match="1023"):
        diffjpeg.bits(big)
    with pytest.raises(ValueError, match="sampling"):
        diffjpeg.Coefficients(c.y, c.cb, c.cr, c.qtables, ((3, 1), (2, 1), (1, 1)), c.size)
    with pytest.raises(ValueError, match="MCU"):
        diffjpeg.Coefficients(c.y, c.cb, c.cr, c.qtables, ((4, 2), (2, 1), (2, 2)), c.size)
    with pytest.raises(ValueError, match="read them one by one"):
        diffjpeg.read_batch([pillow_file(photo(h=16, w=16)), pillow_file(photo(h=16, w=24))])


# ---------------------------------------------------------------- threads
THREADED_READS = r"""
import io, os, sys, threading, time
import numpy as np, torch
from PIL import Image
import diffjpeg
from diffjpeg.codec import files

if sys.argv[1] == "jpeglib":
    files._reader = lambda: None  # the fallback without the compiled reader
threads, reads = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
sources = []
for options in ({"subsampling": 2}, {"subsampling": 0, "progressive": True}, {"optimize": True}):
    buf = io.BytesIO(); Image.fromarray(a).save(buf, "JPEG", quality=80, **options); sources.append(buf.getvalue())
buf = io.BytesIO(); Image.fromarray(a[..., 0]).save(buf, "JPEG", quality=60); sources.append(buf.getvalue())
expected = [diffjpeg.read(s) for s in sources]
for s, c in zip(sources, expected):  # the reference itself decodes like Pillow
    pixels = torch.round(diffjpeg.decode(c) * 255).to(torch.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.permute(1, 2, 0)
    assert np.array_equal(pixels.numpy(), np.asarray(Image.open(io.BytesIO(s))))

done = threading.Event()
failures, good = [], [0] * threads
def reader(t):
    try:
        for i in range(reads):
            k = (t + i) % len(sources)
            c = diffjpeg.read(sources[k])
            ref = expected[k]
            if not (all(torch.equal(x, y) for x, y in zip(c.components, ref.components)) and torch.equal(c.qtables, ref.qtables)):
                failures.append(f"thread {t} read {i}: wrong coefficients")
            else:
                good[t] += 1
    except Exception as e:
        failures.append(f"thread {t}: {type(e).__name__}: {e}")

lines = 0
def talker():
    global lines
    while not done.is_set() or lines < 50:
        if lines % 2:
            os.write(2, b"C-level line %d\n" % lines)
        else:
            print(f"Python line {lines}", file=sys.stderr, flush=True)
        lines += 1
        time.sleep(0.0002)

workers = [threading.Thread(target=reader, args=(t,)) for t in range(threads)]
voice = threading.Thread(target=talker)
voice.start()
for w in workers: w.start()
for w in workers: w.join()
done.set(); voice.join()
print(sum(good), lines, len(failures))
print("\n".join(failures[:5]))
"""


@pytest.mark.parametrize("mode,threads,reads", [("compiled", 8, 200), ("jpeglib", 4, 10)])
def test_reads_from_threads_are_right_and_leave_stderr_alone(mode, threads, reads):
    """Reads from many threads while another thread writes to stderr (fd 2,
    from Python and from C): every read gives the file's coefficients and
    every line written to stderr is there, in order."""
    import subprocess
    import sys

    from diffjpeg.codec import files

    if mode == "compiled" and files._reader() is None:
        pytest.skip("diffjpeg.backends._libjpeg is not built")
    run = subprocess.run([sys.executable, "-c", THREADED_READS, mode, str(threads), str(reads)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = run.stdout.splitlines()
    good, lines, failures = map(int, summary[0].split())
    assert failures == 0 and good == threads * reads, run.stdout
    expected = [f"Python line {i}" if i % 2 == 0 else f"C-level line {i}" for i in range(lines)]
    assert run.stderr.splitlines() == expected


def test_compiled_reader_checks_the_librarys_layout():
    """jpeg_CreateDecompress refuses another version or struct size, so a
    library whose layout differs from diffjpeg/backends/_libjpeg.c's is refused at load."""
    pytest.importorskip("diffjpeg.backends._libjpeg")
    from diffjpeg.backends import _libjpeg
    from diffjpeg.codec import files

    assert files._reader() is not None  # built, loaded, and it read back its own file
    library = _libjpeg.load(files._library_file())
    assert _libjpeg.probe(library, 70, 0) is None
    assert "library is 70, caller expects 80" in _libjpeg.probe(library, 80, 0)
    for delta in (-8, 8):
        assert "struct mismatch" in _libjpeg.probe(library, 70, delta)
    with pytest.raises(OSError):
        _libjpeg.load("/nonexistent/libjpeg.so")


def test_coefficients_keep_the_readers_arrays_alive(monkeypatch):
    """The compiled reader hands its float32 arrays over without a copy: the
    tensors own them (they outlive everything else of the read), may be
    written, and hold libjpeg's coefficients (jpeglib's, through the fallback)."""
    import gc

    pytest.importorskip("diffjpeg.backends._libjpeg")
    from diffjpeg.backends import _libjpeg
    from diffjpeg.codec import files

    data = pillow_file(photo(), quality=80)
    _, refused, components, _, _ = _libjpeg.read(_libjpeg.load(files._library_file()), data)
    assert refused is None and memoryview(components[0][5]).format == "f"
    y = diffjpeg.read(data).y
    gc.collect()
    reference = diffjpeg.read(data).y.clone()
    assert torch.equal(y, reference) and y.dtype == torch.float32
    y[0, 0, 0, 0] += 1  # its own memory: writable, and only this tensor changes
    assert not torch.equal(y, reference) and torch.equal(diffjpeg.read(data).y, reference)
    monkeypatch.setattr(files, "_reader", lambda: None)
    assert torch.equal(diffjpeg.read(data).y, reference)


def test_fallback_through_jpeglib(monkeypatch, capfd):
    """Without the compiled reader: the same coefficients and errors, but
    libjpeg's warnings go to stderr and strict=True cannot see them."""
    from diffjpeg.codec import files

    data = pillow_file(photo(), quality=70)
    compiled = diffjpeg.read(data)
    start, end = parse_structure(data).scans[0].data
    cut = data[: end - 40] + b"\xff\xd9"
    lenient = diffjpeg.read(cut, strict=False)
    monkeypatch.setattr(files, "_reader", lambda: None)
    assert same_coefficients(diffjpeg.read(data), compiled)
    assert same_coefficients(diffjpeg.read(cut), lenient)
    assert "premature end of data segment" in capfd.readouterr().err
    sos = data.find(b"\xff\xda")
    undefined = data[: sos + 6] + b"\x33" + data[sos + 7 :]  # Y's Huffman tables: slot 3, never defined
    with pytest.raises(diffjpeg.JPEGError, match="libjpeg cannot decode"):
        diffjpeg.read(undefined)
    monkeypatch.undo()
    with pytest.raises(diffjpeg.JPEGError, match="Huffman table 0x03 was not defined"):
        diffjpeg.read(undefined)


def test_extended_files_for_tables_over_255():
    """16-bit tables make an SOF1 file with 16-bit DQT entries, read back exactly."""
    c = handmade(((2, 2), (1, 1), (1, 1)))
    tables = torch.tensor(np.random.default_rng(2).integers(1, 65536, (2, 8, 8)), dtype=torch.float32)
    tables[1] = torch.clamp(tables[1], max=255)  # one table stays 8-bit
    c = diffjpeg.Coefficients(c.y, c.cb, c.cr, tables, c.sampling, c.size)
    for optimize in (False, True):
        data = diffjpeg.write(c, optimize=optimize)
        assert b"\xff\xc1" in data and b"\xff\xc0" not in data
        assert data.count(b"\xff\xdb\x00\x83\x10") == 1 and data.count(b"\xff\xdb\x00\x43\x01") == 1
        back = diffjpeg.read(data)
        assert same_coefficients(back, c) and torch.equal(back.qtables, c.qtables)
        Image.open(io.BytesIO(data)).load()
    with pytest.raises(ValueError, match="slots 0..3"):
        five = torch.ones(5, 8, 8)
        diffjpeg.write(diffjpeg.Coefficients(c.y, c.cb, c.cr, five, c.sampling, c.size, qtable_index=(0, 4, 4)))


def test_read_batch_on_threads_equals_reading_one_by_one():
    """read_batch reads on torch's threads: the batch is the files read one
    by one, in order, and the first bad file in order raises."""
    files_ = [pillow_file(photo(top=100 + 7 * i), quality=30 + 9 * i, progressive=i % 2 == 1) for i in range(7)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        batch = diffjpeg.read_batch(files_)
        with pytest.raises(diffjpeg.JPEGError, match="not a JPEG file"):
            diffjpeg.read_batch(files_[:2] + [b"GIF89a", files_[3], b"\xff\xd8\xff"])
    finally:
        torch.set_num_threads(threads)
    for i, data in enumerate(files_):
        assert same_coefficients(batch[i], diffjpeg.read(data)) and torch.equal(batch.qtables[i], diffjpeg.read(data).qtables)
    assert_identical(to_uint8(diffjpeg.decode(batch)[4]), pillow_decode(files_[4]))
    wide = diffjpeg.read_batch(files_, dtype=torch.float64, device="cpu")  # read as float32, converted once
    assert wide.y.dtype == wide.qtables.dtype == torch.float64 and torch.equal(wide.y, batch.y.double())
    with pytest.raises(ValueError, match="dtype"):
        diffjpeg.read_batch(files_, dtype=torch.float16)
    with pytest.raises(TypeError, match="qualty"):
        diffjpeg.read_batch(files_, qualty=3)


@pytest.mark.parametrize("options", [{}, {"subsampling": 0}, {"subsampling": 1, "progressive": True}, {"gray": True},
                                     {"optimize": True, "quality": 20}])
def test_read_image_is_pillows_pixels(options):
    """read_image: Pillow's np.asarray(Image.open(f)), channels first, uint8,
    for sources of each kind; a cut file only with strict=False, as Pillow
    with LOAD_TRUNCATED_IMAGES."""
    options = dict(options)
    a = photo(h=37, w=53)
    data = pillow_file(a[..., 0] if options.pop("gray", False) else a, **options)
    reference = pillow_decode(data)
    image = diffjpeg.read_image(io.BytesIO(data), device="cpu")
    assert image.dtype == torch.uint8 and image.shape[0] == (1 if reference.ndim == 2 else 3)
    assert_identical(image[0].numpy() if reference.ndim == 2 else image.permute(1, 2, 0).numpy(), reference)
    start, end = parse_structure(data).scans[0].data
    cut = data[: (start + end) // 2]  # halfway through the first scan's data
    with pytest.raises(diffjpeg.JPEGError, match="strict=False"):
        diffjpeg.read_image(cut)
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        reference = pillow_decode(cut)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    image = diffjpeg.read_image(cut, strict=False)
    assert_identical(image[0].numpy() if reference.ndim == 2 else image.permute(1, 2, 0).numpy(), reference)
    with pytest.raises(ValueError, match="max_pixels"):
        diffjpeg.read_image(data, max_pixels=0)


@pytest.mark.parametrize("mode", ["exact", "float", "soft"])
def test_decode_to_uint8_is_the_rounded_float_decode(mode):
    """decode(dtype=torch.uint8): exact mode's 8-bit samples from the kernel
    and from the tensor stages, float and soft rounded; no gradient."""
    c = diffjpeg.encode(torch.rand(2, 3, 19, 27), quality=60)
    c.y.requires_grad_(True)
    samples = diffjpeg.decode(c, mode=mode, dtype=torch.uint8)
    assert samples.dtype == torch.uint8 and not samples.requires_grad
    assert torch.equal(samples, torch.round(diffjpeg.decode(c, mode=mode).detach() * 255).to(torch.uint8))
    if mode == "exact":
        from diffjpeg.backends import cpu

        with cpu.enabled(False):
            assert torch.equal(diffjpeg.decode(c, dtype=torch.uint8), samples)
    for bad in (torch.float16, torch.int32, "uint8"):
        with pytest.raises(ValueError, match="dtype must be None"):
            diffjpeg.decode(c, mode=mode, dtype=bad)


def test_read_batch_checks_each_file_against_the_first_before_libjpeg_reads_it():
    """The batch is sized from the first file's frame header; a file of
    another sampling or color space is refused by name, not written out of
    bounds, and the fallback without the compiled reader gives the same batch."""
    a = photo(h=24, w=40)
    with pytest.raises(ValueError, match="file 1 has .*sampling.*read them one by one"):
        diffjpeg.read_batch([pillow_file(a, subsampling=2), pillow_file(a, subsampling=0)])
    gray = io.BytesIO()
    Image.fromarray(a[..., 0]).save(gray, "JPEG")
    with pytest.raises(ValueError, match="file 2 has"):
        diffjpeg.read_batch([pillow_file(a), pillow_file(a, quality=20), gray.getvalue()])
    from diffjpeg.codec import files

    sources = [pillow_file(a, quality=q) for q in (20, 60, 95)]
    compiled = diffjpeg.read_batch(sources)
    assert compiled.y.is_contiguous() and compiled.y.shape == (3, 3, 5, 8, 8)
    saved = files._reader
    try:
        files._reader = lambda: None
        fallback = diffjpeg.read_batch(sources)
    finally:
        files._reader = saved
    assert same_coefficients(compiled, fallback) and torch.equal(compiled.qtables, fallback.qtables)


def test_scan_data_ends_at_the_first_marker():
    """The end of a scan's data (markers.scan_data_end, a regular
    expression) is where a plain walk over the bytes finds the first marker:
    past stuffed 00s and restart markers, at the last FF of a run of fill bytes."""
    import random

    from diffjpeg.bitstream.markers import scan_data_end

    def walk(data, position):
        while True:
            position = data.find(b"\xff", position)
            if position < 0 or position + 1 >= len(data):
                return len(data)
            following = data[position + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                position += 2
            elif following == 0xFF:
                position += 1
            else:
                return position

    rng = random.Random(12)
    alphabet = [0xFF, 0x00, 0xD0, 0xD7, 0xD8, 0xD9, 0xCF, 0x12]
    for _ in range(20000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        start = rng.randint(0, len(data))
        assert scan_data_end(data, start) == walk(data, start), (data, start)
