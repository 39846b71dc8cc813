"""diffjpeg.stages.quantize against libjpeg-turbo's jcdctmgr.c, written out here in integers.

The reference is ``compute_reciprocal`` and the 8-bit ``quantize`` of
jcdctmgr.c (16-bit ``DCTELEM``, the SIMD builds' layout): for a divisor ``d``,
``b = floor(log2 d)``, ``r = 16 + b``, ``q = 2**r // d``, ``c = d // 2``; a power
of two halves ``q`` and takes one from ``r``; otherwise a remainder of at most
``d // 2`` adds one to ``c``, a larger one adds one to ``q``. A value ``x`` is
quantized to ``sign(x) * (((|x| + c) * q) >> r)``.
"""
import numpy as np
import pytest
import torch

from diffjpeg.stages.quantize import dequantize_integers, quantize, reciprocal, reciprocal_divide

ISLOW_LIMIT = (1 << 14) - 1  # |ISLOW output| of 8-bit samples stays below this


def compute_reciprocal(divisor: int) -> tuple[int, int, int]:
    """jcdctmgr.c's compute_reciprocal for divisor >= 2: (reciprocal, correction, shift r)."""
    b = divisor.bit_length() - 1  # flss(divisor) - 1
    r = 16 + b  # sizeof(DCTELEM) * 8 + b
    fq, fr = (1 << r) // divisor, (1 << r) % divisor
    c = divisor // 2
    if fr == 0:  # a power of two
        fq >>= 1
        r -= 1
    elif fr <= divisor // 2:
        c += 1
    else:
        fq += 1
    return fq, c, r


def reference_quotients(values: np.ndarray, divisors: list[int]) -> np.ndarray:
    """jcdctmgr.c's quantize: one row per divisor, ``values`` along each row (int64)."""
    table = np.array([compute_reciprocal(d) for d in divisors], dtype=np.int64)
    q, c, r = (table[:, k : k + 1] for k in range(3))
    magnitude = ((np.abs(values)[None, :] + c) * q) >> r
    return np.where(values[None, :] < 0, -magnitude, magnitude)


def symmetric(nonnegative: np.ndarray) -> np.ndarray:
    """Columns for x = 0..L to columns for x = -L..L: libjpeg quantizes |x| and restores the sign."""
    return np.concatenate([-nonnegative[:, :0:-1], nonnegative], axis=1)


def test_compute_reciprocal_written_out_is_the_known_one():
    """Spot values of the reference itself: 16 (a power of two), 8*16 and 8*99."""
    assert compute_reciprocal(16) == (1 << 15, 8, 19)
    assert compute_reciprocal(128) == (1 << 15, 64, 22)
    # 2**25 = 42366 * 792 + 608, 608 > 396: the reciprocal rounds up
    assert compute_reciprocal(792) == (42367, 396, 25)


def test_reciprocal_equals_compute_reciprocal_for_every_divisor():
    """Every divisor the exact path can see: 8 Q for Q in [1, 2047], and the
    whole documented domain [2, 2**14)."""
    divisors = list(range(2, 1 << 14))
    q, c, r = (t.tolist() for t in reciprocal(torch.tensor(divisors)))
    mine = list(zip(q, c, r))
    expected = [compute_reciprocal(d) for d in divisors]
    wrong = [(d, m, e) for d, m, e in zip(divisors, mine, expected) if m != e]
    assert not wrong, f"{len(wrong)} divisors differ, first {wrong[:3]}"


@pytest.fixture(scope="module")
def encoder_grid():
    """8 Q for every baseline Q in 1..255 (rows) by every |x| <= 2**14 - 1
    (columns): 8.4 million quotients, libjpeg's and diffjpeg's."""
    divisors = np.array([8 * q for q in range(1, 256)], dtype=np.int64)
    magnitudes = np.arange(0, ISLOW_LIMIT + 1, dtype=np.int64)
    expected = reference_quotients(magnitudes, divisors.tolist())  # the sign restored below
    values = np.arange(-ISLOW_LIMIT, ISLOW_LIMIT + 1, dtype=np.int64)
    mine = reciprocal_divide(torch.from_numpy(values)[None, :], torch.from_numpy(divisors)[:, None])
    return magnitudes, divisors, expected, mine


def test_reciprocal_divide_every_encoder_divisor_and_every_islow_value(encoder_grid):
    _, _, expected, mine = encoder_grid
    assert mine.dtype == torch.int32
    differ = mine.numpy() != symmetric(expected)
    assert not differ.any(), f"{differ.sum()} quotients differ, first at (divisor, value) index {np.argwhere(differ)[0]}"


def test_reciprocal_divide_extended_tables_sampled():
    """Exact mode's tables go up to 2047 (8 Q < 2**14): a dense sample of values per divisor."""
    rng = np.random.default_rng(11)
    divisors = [8 * q for q in range(256, 2048)]
    values = np.concatenate([rng.integers(-ISLOW_LIMIT, ISLOW_LIMIT + 1, 2000), [0, 1, -1, ISLOW_LIMIT, -ISLOW_LIMIT]])
    expected = reference_quotients(values, divisors)
    mine = reciprocal_divide(torch.from_numpy(values)[None, :], torch.tensor(divisors)[:, None])
    assert np.array_equal(mine.numpy(), expected)


def test_reciprocal_divide_is_round_half_away_on_the_islow_range(encoder_grid):
    """On this domain libjpeg's reciprocal never errs: ``((|x| + c) q) >> r`` is
    ``round(x / d)`` with halves away from zero for every divisor 8 Q and every
    ISLOW output (checked here for the reference too; with ``|x| + c`` beyond
    16 bits it would not be, which the saturation at 2**14 - 1 rules out).
    It differs from round-half-to-even (``torch.round``, float mode) exactly at
    the halves ``x = (k + 1/2) d`` with ``k`` even."""
    magnitudes, divisors, libjpeg, mine = encoder_grid
    a, d = magnitudes[None, :], divisors[:, None]
    away = (2 * a + d) // (2 * d)  # x >= 0 here; the sign is checked by the test above
    assert np.array_equal(libjpeg, away)
    mine = mine[:, ISLOW_LIMIT:].numpy()  # x >= 0
    assert np.array_equal(mine, away)
    # against half to even: the quotients of float mode's rounding
    even = torch.round(torch.from_numpy(a).double() / torch.from_numpy(d).double()).numpy()
    differ = mine != even
    even_halves = (a % d == d // 2) & ((a // d) % 2 == 0)
    assert np.array_equal(differ, even_halves)
    assert np.abs(mine - even).max() == 1


def test_reciprocal_divide_halves_go_away_from_zero():
    """Exact halves (x = k d + d / 2) round away from zero: libjpeg's rounding rule."""
    for q in (1, 2, 3, 16, 99, 255):
        d = 8 * q
        halves = np.array([k * d + d // 2 for k in range(0, ISLOW_LIMIT // d)], dtype=np.int64)
        halves = halves[halves <= ISLOW_LIMIT]
        x = np.concatenate([halves, -halves])
        mine = reciprocal_divide(torch.from_numpy(x), torch.tensor(d)).numpy()
        expected = np.concatenate([halves // d + 1, -(halves // d + 1)])
        assert np.array_equal(mine, expected), q


def test_reciprocal_divide_saturates_beyond_islow_range():
    """The documented limit: magnitudes above 2**14 - 1 act as 2**14 - 1."""
    big = torch.tensor([ISLOW_LIMIT, ISLOW_LIMIT + 1, 10**6, -(10**6)])
    out = reciprocal_divide(big, torch.tensor(16)).tolist()
    top = reference_quotients(np.array([ISLOW_LIMIT]), [16])[0, 0]
    assert out == [top, top, top, -top]


def test_exact_quantize_is_reciprocal_divide_of_8f_by_8q():
    """quantize(F, Q, "exact") with F in multiples of 1/8 (fdct's exact output)."""
    g = torch.Generator().manual_seed(5)
    dct_out = torch.randint(-8192, 8193, (64, 8, 8), generator=g)
    table = torch.randint(1, 256, (64, 8, 8), generator=g)
    q = np.array([compute_reciprocal(int(8 * t)) for t in table.flatten().tolist()], dtype=np.int64)
    x = dct_out.flatten().numpy()
    magnitude = ((np.abs(x) + q[:, 1]) * q[:, 0]) >> q[:, 2]
    expected = np.where(x < 0, -magnitude, magnitude).reshape(64, 8, 8)
    for dtype in (torch.float32, torch.float64):
        out = quantize(dct_out.to(dtype) / 8, table.to(dtype), "exact")
        assert out.dtype == dtype
        assert np.array_equal(out.numpy().astype(np.int64), expected)


def test_dequantize_integers_is_the_integer_product():
    g = torch.Generator().manual_seed(6)
    q = torch.randint(-2047, 2048, (4, 8, 8), generator=g).to(torch.float32)
    t = torch.randint(1, 17, (4, 8, 8), generator=g).to(torch.float32)
    out = dequantize_integers(q, t)
    assert out.dtype == torch.int32  # |q t| <= 2047 * 16 < 2**15
    assert out.tolist() == [[[[int(a) * int(b) for a, b in zip(r1, r2)] for r1, r2 in zip(p1, p2)] for p1, p2 in zip(b1, b2)] for b1, b2 in [(q.tolist(), t.tolist())]][0]


def test_dequantize_integers_beyond_int16_keep_the_low_16_bits():
    """As libjpeg-turbo's SIMD dequantization (pmullw) keeps them: the
    product modulo 2**16, exact for any factors up to 2**40."""
    q = torch.tensor([32767.0, -32768.0, 40000.0, 2.0**30, -(2.0**30), 1023.0, -(2.0**39) - 5])
    t = torch.tensor([1.0, 1.0, 3.0, 2.0**10, 2.0**10, 65535.0, 65521.0])
    out = dequantize_integers(q, t)
    assert out.dtype == torch.int32
    exact = [int(a) * int(b) for a, b in zip(q.tolist(), t.tolist())]
    assert out.tolist() == [(v + 32768) % 65536 - 32768 for v in exact]


@pytest.mark.parametrize("rounding", ["linear", "polynomial", "fourier", "sigmoid"])
def test_every_mode_has_the_soft_forms_gradient(rounding):
    """Exact and float put their rounded value forward; backward, all three
    modes are the surrogate ``r(F / Q)``'s gradient, in F and in Q."""
    g = torch.Generator().manual_seed(7)
    f = (torch.randn(2, 8, 8, generator=g, dtype=torch.float64) * 40).round() / 8
    table = torch.randint(1, 60, (8, 8), generator=g).to(torch.float64)
    weights = torch.randn(2, 8, 8, generator=g, dtype=torch.float64)
    grads = {}
    for mode in ("exact", "float", "soft"):
        x, t = f.clone().requires_grad_(), table.clone().requires_grad_()
        (quantize(x, t, mode, rounding) * weights).sum().backward()
        grads[mode] = (x.grad, t.grad)
    for mode in ("exact", "float"):
        torch.testing.assert_close(grads[mode][0], grads["soft"][0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grads[mode][1], grads["soft"][1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rounding", ["linear", "polynomial", "fourier", "sigmoid"])
def test_soft_quantize_gradcheck(rounding):
    g = torch.Generator().manual_seed(8)
    # away from the surrogates' kinks at integers and halves
    f = (torch.randint(-50, 50, (8, 8), generator=g) + 0.2 + 0.3 * torch.rand(8, 8, generator=g)).double() * 3
    table = torch.full((8, 8), 3.0, dtype=torch.float64)
    x, t = f.requires_grad_(), table.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: quantize(a, b, "soft", rounding), (x, t))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        quantize(torch.zeros(8, 8), torch.ones(8, 8), "bogus")
