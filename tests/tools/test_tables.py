"""Learned quantization tables: the learner, real files, BD-rate, checkpoints, the command, two processes."""
import io
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import diffjpeg
from diffjpeg.tools import cli
from diffjpeg.tools import qtables as T
from tests.helpers import centred_crop, skimage_crop


def photo(name, h=64, w=64, top=None, left=None):
    return centred_crop(name, h, w) if top is None and left is None else skimage_crop(name, h, w, top, left)


@pytest.fixture(scope="module")
def small_images():
    return [photo("astronaut", 96, 96, 40, 180), photo("coffee", 96, 96), photo("rocket", 80, 112)]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory, small_images):
    d = tmp_path_factory.mktemp("images")
    for i, a in enumerate(small_images):
        Image.fromarray(a).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


def objective(images, tables, lam):
    """The full-image objective bits/pixel + lam * MSE, exact forward."""
    total_bits = total_sse = pixels = 0.0
    criterion = diffjpeg.RateDistortionLoss(lam)
    for a in images:
        x = torch.from_numpy(a).permute(2, 0, 1).float().div(255)[None]
        r = T.encode_and_score(x, tables.float(), criterion)
        n = a.shape[0] * a.shape[1]
        total_bits += float(r.bits)
        total_sse += float(r.distortion) * n
        pixels += n
    return total_bits / pixels + lam * total_sse / pixels


def test_learner_reduces_the_objective_and_gives_baseline_integer_tables(small_images):
    lam = 0.005  # here the IJG tables of quality ~20 score best
    start = T.scaled_qtables(diffjpeg.standard_tables(), 90)  # far too fine for this lambda
    history = []
    learned = T.learn_qtables(small_images, lam=lam, steps=12, batch_size=2, crop=64, lr=0.3, init=start.float(), history=history)
    assert learned.shape == (2, 8, 8) and learned.dtype == torch.int64
    assert int(learned.min()) >= 1 and int(learned.max()) <= 255
    before, after = objective(small_images, start, lam), objective(small_images, learned, lam)
    assert after < 0.8 * before, (before, after)
    assert len(history) == 12 and history[-1]["step"] == 12


def test_learned_tables_in_pillow_equal_our_exact_codec(small_images):
    learned = T.learn_qtables(small_images[:2], lam=0.01, steps=3, crop=48, init=40)
    learned[0, 0, 1], learned[0, 1, 0] = 3, 200  # asymmetric: catches a transposed (or zigzag) order
    a = small_images[0]
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", qtables=T.pillow_qtables(learned), subsampling="4:2:0")
    stored = diffjpeg.read(buf.getvalue())
    assert torch.equal(stored.qtables.to(torch.int64), learned)  # the file's DQT, natural order
    pillow = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    ours = diffjpeg.jpeg(torch.from_numpy(a).permute(2, 0, 1).contiguous(), qtables=learned.float())
    assert np.array_equal(ours.permute(1, 2, 0).numpy(), pillow)


def test_evaluate_qtables_measures_real_files(small_images):
    standard75 = T.scaled_qtables(diffjpeg.standard_tables(), 75)
    by_quality = T.evaluate_qtables(small_images, quality=75)
    by_tables = T.evaluate_qtables(small_images, qtables=standard75)
    assert by_quality["bytes"] == by_tables["bytes"]  # jpeg_set_quality's tables, reproduced
    assert by_quality["psnr"] == by_tables["psnr"]
    coarse = T.evaluate_qtables(small_images, quality=30)
    assert coarse["bpp"] < by_quality["bpp"] and coarse["mean_psnr"] < by_quality["mean_psnr"]


def test_bd_rate_on_known_cases():
    psnr = [30.0, 33.0, 36.0, 39.0]
    rates = [1.0, 2.1, 4.0, 8.5]
    assert T.bd_rate(rates, psnr, [0.9 * r for r in rates], psnr) == pytest.approx(-10.0, abs=1e-9)
    assert T.bd_rate(rates, psnr, [1.25 * r for r in rates], psnr) == pytest.approx(25.0, abs=1e-9)
    # a curve shifted by +1 dB with log-rate linear in PSNR (slope s): exactly 10**(-s) - 1
    slope = 0.1
    r = [10 ** (slope * p) for p in psnr]
    assert T.bd_rate(r, psnr, r, [p + 1 for p in psnr]) == pytest.approx((10 ** (-slope) - 1) * 100, abs=1e-9)
    # against SciPy's PCHIP on uneven curves
    from scipy.interpolate import PchipInterpolator

    ra, pa = np.array([0.4, 0.9, 1.7, 3.1, 5.0]), np.array([29.1, 32.4, 35.2, 38.9, 41.3])
    rb, pb = np.array([0.35, 0.8, 1.6, 2.7, 4.1]), np.array([28.7, 32.9, 35.5, 38.1, 42.0])
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    ia = PchipInterpolator(pa, np.log10(ra)).integrate(lo, hi)
    ib = PchipInterpolator(pb, np.log10(rb)).integrate(lo, hi)
    assert T.bd_rate(ra, pa, rb, pb) == pytest.approx((10 ** ((ib - ia) / (hi - lo)) - 1) * 100, abs=1e-9)
    with pytest.raises(ValueError, match="overlap"):
        T.bd_rate([1, 2], [30, 31], [1, 2], [40, 41])
    with pytest.raises(ValueError, match="length"):
        T.bd_rate([1, 2, 3], [30, 31], [1, 2], [30, 31])


class _Crash(list):
    """A history that raises after ``n`` records: an interrupted run."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def append(self, item):
        super().append(item)
        if len(self) == self.n:
            raise KeyboardInterrupt


def test_checkpoint_and_resume_equal_an_uninterrupted_run(small_images, tmp_path):
    options = dict(lam=0.02, steps=6, batch_size=2, crop=48, lr=0.1, init=60, seed=3, checkpoint_every=2)
    whole = tmp_path / "whole.pt"
    straight = T.learn_qtables(small_images, checkpoint=whole, **options)
    resumed = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        T.learn_qtables(small_images, checkpoint=resumed, history=_Crash(5), **options)
    assert T.load_checkpoint(resumed)["step"] == 4  # the last checkpoint before the crash
    again = T.learn_qtables(small_images, checkpoint=resumed, resume=True, **options)
    assert torch.equal(again, straight)
    a, b = T.load_checkpoint(whole), T.load_checkpoint(resumed)
    assert torch.equal(a["log_tables"], b["log_tables"])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    with pytest.raises(ValueError, match="other settings"):
        T.learn_qtables(small_images, checkpoint=resumed, resume=True, **{**options, "lam": 0.5})


def test_tables_files_round_trip(tmp_path):
    t = T.scaled_qtables(diffjpeg.standard_tables(), 83)
    for name in ("t.json", "t.pt"):
        T.save_qtables(t, tmp_path / name, note="x")
        assert torch.equal(T.load_qtables(tmp_path / name), t)
    with pytest.raises(ValueError, match="1..255"):
        T.save_qtables(t * 0, tmp_path / "bad.json")
    with pytest.raises(ValueError, match=".json or .pt"):
        T.save_qtables(t, tmp_path / "t.txt")


@pytest.mark.parametrize("kwargs, match", [
    ({"lam": 0}, "lam"),
    ({"lam": float("nan")}, "lam"),
    ({"steps": -1}, "steps"),
    ({"crop": 4}, "crop"),
    ({"mode": "fast"}, "mode"),
    ({"rounding": "cubic"}, "rounding"),
    ({"distortion": "psnr"}, "distortion"),
    ({"huffman": "best"}, "huffman"),
    ({"init": 0}, "init"),
    ({"codec": "kornia"}, "codec"),
])
def test_learner_rejects_bad_arguments(small_images, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        T.learn_qtables(small_images, **{"steps": 1, **kwargs})


def test_codec_hook_with_our_codec_learns_what_the_default_path_learns(small_images):
    """codec= only swaps encode/decode: diffjpeg's own pair through it gives the default's tables, step for step."""
    def ours(x, tables):  # the learner's default layer
        c = diffjpeg.encode(x, qtables=tables, mode=T.DEFAULT_MODE, rounding=T.DEFAULT_ROUNDING)
        return diffjpeg.decode(c, mode=T.DEFAULT_MODE), c

    settings = dict(lam=0.03, steps=3, batch_size=2, crop=48, seed=1)
    a, b = [], []
    default = T.learn_qtables(small_images, history=a, **settings)
    through = T.learn_qtables(small_images, history=b, codec=ours, **settings)
    assert torch.equal(default, through) and a == b
    assert not torch.equal(default, T.scaled_qtables(diffjpeg.standard_tables(), 50))  # it learned something


def test_learner_rejects_bad_images(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        T.learn_qtables(tmp_path, steps=1)
    with pytest.raises(ValueError, match="does not exist"):
        T.learn_qtables(tmp_path / "missing", steps=1)
    with pytest.raises(ValueError, match="shape"):
        T.learn_qtables(torch.rand(2, 8, 8), steps=1)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        T.learn_qtables(tmp_path, steps=1)


@pytest.mark.parametrize("argv, match", [
    (["/no/such/dir"], "does not exist"),
    (["{empty}"], "no images"),
    (["{images}", "--lambda", "-1"], "--lambda"),
    (["{images}", "--lambda", "abc"], "--lambda"),
    (["{images}", "--steps", "0"], "--steps"),
    (["{images}", "--out", "tables.txt"], ".json or .pt"),
    (["{images}", "--resume"], "--checkpoint"),
    (["{images}", "--forward", "fast"], "--forward"),
    ([], "DIR"),
])
def test_command_reports_user_errors_in_one_line(argv, match, image_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(images=image_dir, empty=tmp_path / "empty") for a in argv]
    try:
        status = cli.main(["optimize-tables", *argv])
    except SystemExit as e:  # argparse's way
        status = e.code
    assert status not in (0, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("diffjpeg: error:"), err
    assert match in err or match.lower() in err.lower()


def test_command_writes_tables(image_dir, tmp_path, capsys):
    out = tmp_path / "tables.json"
    assert cli.main(["optimize-tables", str(image_dir), "--steps", "2", "--crop", "32", "--out", str(out), "--checkpoint", str(tmp_path / "c.pt")]) == 0
    tables = T.load_qtables(out)
    assert tables.shape == (2, 8, 8) and T.load_checkpoint(tmp_path / "c.pt")["step"] == 2
    assert "step 2/2" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 10 s: two processes start torch
def test_two_processes_learn_what_one_does(image_dir, tmp_path):
    """torchrun, 2 CPU processes (gloo), against one process with the same global batch.

    The ranks plan the same crops and split them; the summed gradients differ
    from one process's only in the order of float32 additions (relative
    ~1e-7). Adam's step is at most lr per entry and moves smoothly with the
    gradient, so over 4 steps the log tables may differ by ~1e-6 at most:
    we allow 1e-5, far below the 4e-3 that moves an entry of 255 by one
    integer, and require identical integer tables.
    """
    options = ["--steps", "4", "--batch-size", "4", "--crop", "40", "--lr", "0.1", "--init", "60", "--seed", "5", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, ckpt = tmp_path / "ddp.json", tmp_path / "ddp.pt"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "diffjpeg", "optimize-tables", str(image_dir), *options,
         "--out", str(out), "--checkpoint", str(ckpt)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    single = tmp_path / "single.pt"
    tables = T.learn_qtables(image_dir, steps=4, batch_size=4, crop=40, lr=0.1, init=60, seed=5, checkpoint=single, lam=T.DEFAULT_LAMBDA)
    assert torch.equal(T.load_qtables(out), tables)
    two, one = T.load_checkpoint(ckpt), T.load_checkpoint(single)
    torch.testing.assert_close(two["log_tables"], one["log_tables"], rtol=0, atol=1e-5)
    assert [h["step"] for h in two["history"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in two["history"]], [h["loss"] for h in one["history"]], rtol=1e-5)


def test_ssim_distortion_learns(small_images):
    pytest.importorskip("kornia")
    history = []
    tables = T.learn_qtables(small_images[:1], lam=2.0, steps=2, crop=32, distortion="ssim", history=history)
    assert tables.shape == (2, 8, 8) and 0 < history[-1]["distortion"] < 1


class _Payload:
    """Stands for any pickled object: loading it would run code from the file."""

    def __reduce__(self):
        return (os.system, ("echo pickled code ran",))


def test_checkpoints_never_unpickle_code(tmp_path):
    path = tmp_path / "hostile.pt"
    torch.save({"format": T.CHECKPOINT_FORMAT, "step": 1, "x": _Payload()}, path)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        T.load_checkpoint(path)
