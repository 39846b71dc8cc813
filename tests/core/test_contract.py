"""The numeric contract (diffjpeg.core.precision): the one tolerance for paths that
float rounding may set apart, and the fixed-order DCT (diffjpeg.stages.dct.block_transform,
diffjpeg/backends/_dct.c) and color conversion (diffjpeg.stages.color.color_product, diffjpeg/backends/_color.c) that make
the CPU's paths equal by construction."""
import numpy as np
import pytest
import torch

from diffjpeg.backends import cpu, exact
from diffjpeg.core.precision import ROUNDING_UNITS, rounding_tolerance
from diffjpeg.stages import color, dct
from tests.helpers import assert_close_to_rounding, both_paths


# ---------------------------------------------------------------- the tolerance
def ulps_away(x: torch.Tensor, steps: int, direction: float) -> torch.Tensor:
    """``x`` moved ``steps`` units in the last place (of its own dtype) towards ``direction``."""
    for _ in range(steps):
        x = torch.nextafter(x, torch.full_like(x, direction))
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_one_unit_per_operation_passes(dtype):
    """Every value off by one unit of the working dtype for each of the k
    operations of the bound's chain (precision.rounding_tolerance), either way."""
    g = torch.Generator().manual_seed(0)
    working = torch.float64 if dtype == torch.float64 else torch.float32
    reference = torch.rand(4096, generator=g, dtype=working)
    reference[:8] = torch.tensor([0.0, 1.0, 1e-30, 0.5, 1 / 255, 254 / 255, 0.25, 2.0**-20])
    up, down = ulps_away(reference, ROUNDING_UNITS, 2.0), ulps_away(reference, ROUNDING_UNITS, -1.0)
    for moved in (up, down):
        # a half-precision result: the working values, then each rounded once to the output dtype
        assert_close_to_rounding(moved.to(dtype), reference.to(dtype), scale=1.0)
    gradient = (reference - 0.5) * 37.0  # a gradient's scale is its own largest magnitude
    assert_close_to_rounding(ulps_away(gradient, ROUNDING_UNITS, 1e9).to(dtype), gradient.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("where", [0, 100, 4095])
def test_one_8bit_level_fails(dtype, where):
    """One value off by one 8-bit level (1/255) is caught, in [0, 1]; not for
    bfloat16, whose unit in the last place near 1 (2**-7) is two levels."""
    reference = torch.rand(4096, generator=torch.Generator().manual_seed(1), dtype=dtype)
    reference[where] = 0.9
    wrong = reference.clone()
    wrong[where] += 1 / 255
    with pytest.raises(AssertionError, match="1 of 4096 values differ"):
        assert_close_to_rounding(wrong, reference, scale=1.0)


def test_nan_and_shape_must_match():
    x = torch.tensor([0.5, float("nan")])
    assert_close_to_rounding(x.clone(), x)
    with pytest.raises(AssertionError, match="NaN"):
        assert_close_to_rounding(torch.tensor([0.5, 0.5]), x)
    with pytest.raises(AssertionError):
        assert_close_to_rounding(torch.tensor([0.5, float("inf")]), torch.tensor([0.5, 1.0]))
    with pytest.raises(AssertionError):
        assert_close_to_rounding(x.double(), x)


def test_tolerance_states_its_parts():
    assert rounding_tolerance(torch.float32, 2.0) == ROUNDING_UNITS * 2.0**-23 * 2.0
    assert rounding_tolerance(torch.float64, 1.0) == ROUNDING_UNITS * 2.0**-52
    assert rounding_tolerance(torch.bfloat16, 1.0) == ROUNDING_UNITS * 2.0**-23 + 2.0**-7


# ---------------------------------------------------------------- the DCT's fixed order
def blocks(n: int, dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 8, 8, generator=g, dtype=torch.float64) - 0.5) * 255
    x[: n // 4] *= torch.rand(n // 4, 1, 1, generator=g, dtype=torch.float64) ** 8  # small values too
    return x.to(dtype)


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["orthonormal", "orthonormal_inverse"])
def test_compiled_loop_is_the_tensor_form(dtype, kind, set_threads):
    """diffjpeg/backends/_dct.c performs block_transform's operations: the same bits,
    at any thread count (the loop shares blocks among threads)."""
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    matrix = dct._matrices(kind, dtype, torch.device("cpu"))
    x = blocks(5000, dtype)
    x[7, 3, 4], x[9, 0, 0], x[11, 7, 7] = float("nan"), float("inf"), -float("inf")
    reference = dct.block_transform(x, matrix)
    for threads in (1, 2, 3, 4):
        set_threads(threads)
        out = cpu.block_transform(x, matrix)
        assert torch.equal(torch.isnan(out), torch.isnan(reference))
        assert torch.equal(out.nan_to_num(), reference.nan_to_num())


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_blocks_result_depends_on_the_block_only(dtype, set_threads):
    """Whatever batch, slice, position or thread count a block comes in, the
    same bits, on both paths: what a GEMM did not give."""
    x = blocks(3000, dtype, seed=2)
    whole = {k: dct._separable(x, k) for k in dct._FACTOR}
    for compiled in (True, False):
        with cpu.enabled(compiled):
            for threads in (1, 3):
                set_threads(threads)
                for start, stop in [(0, 1), (5, 6), (17, 1234), (1234, 3000), (2999, 3000)]:
                    for kind, full in whole.items():
                        assert torch.equal(dct._separable(x[start:stop], kind), full[start:stop])
    fast, slow = both_paths(lambda: [dct._separable(x, k) for k in dct._FACTOR])
    assert all(torch.equal(a, b) for a, b in zip(fast, slow))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_transform_is_the_dct(dtype):
    """The fixed order computes C X C^T (and its inverse) to float rounding."""
    x = blocks(500, dtype, seed=3)
    c = dct.dct_matrix(torch.float64)
    exact = c @ x.double() @ c.T
    coefficients = dct._separable(x, "orthonormal_2d")
    assert_close_to_rounding(coefficients, exact.to(dtype))
    assert_close_to_rounding(dct._separable(coefficients, "orthonormal_2d_inverse"), x)


def test_gradients_are_the_adjoints_bit_for_bit():
    """Autograd's backward of the forward transforms is fdct_adjoint and
    idct_adjoint, and <T x, g> = <x, T^T g> (float64)."""
    x = blocks(200, torch.float64, seed=4).requires_grad_()
    g = blocks(200, torch.float64, seed=5)
    for kind, adjoint in (("orthonormal_2d", dct.fdct_adjoint), ("orthonormal_2d_inverse", dct.idct_adjoint)):
        y = dct._separable(x, kind)
        (grad,) = torch.autograd.grad(y, x, g)
        assert torch.equal(grad, adjoint(g))
        assert abs((y * g).sum().item() - (x * grad).sum().item()) < 1e-9 * (y * g).abs().sum().item()


def test_second_order_goes_through_the_transforms():
    x = blocks(50, torch.float64, seed=6).requires_grad_()
    (g,) = torch.autograd.grad(dct._separable(x, "orthonormal_2d").pow(2).sum(), x, create_graph=True)
    assert_close_to_rounding(g, 2 * x.detach())  # orthonormal: d/dx |T x|^2 = 2 x
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert_close_to_rounding(gg, torch.full_like(gg, 2.0))


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_are_read_and_written_in_their_plane(dtype, set_threads):
    """The loop reads a plane's blocks at their strides, level shift
    included, and writes into another plane's: the tensor form's values
    (shift, transform, merge into the plane), bit for bit."""
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    g = torch.Generator().manual_seed(12)
    planes = (torch.rand(2, 3, 48, 72, generator=g, dtype=torch.float64) * 255).round().to(dtype)
    source = blocks_of(planes[:, 1])  # the middle plane of three: strided blocks
    for kind in dct._FACTOR:
        matrix = dct._matrices(dct._FACTOR[kind], dtype, torch.device("cpu"))
        reference = dct.block_transform(source - 128.0, matrix)
        for threads in (1, 3):
            set_threads(threads)
            target = torch.full((2, 3, 48, 72), float("nan"), dtype=dtype)
            assert cpu.block_transform(source, matrix, 128.0, out=blocks_of(target[:, 2])) is not None
            assert torch.equal(blocks_of(target[:, 2]), reference) and target[:, :2].isnan().all()
            assert torch.equal(cpu.block_transform(source, matrix, 128.0), reference)


def blocks_of(plane: torch.Tensor) -> torch.Tensor:
    *lead, h, w = plane.shape
    return plane.view(*lead, h // 8, 8, w // 8, 8).transpose(-3, -2)


@pytest.mark.parametrize("bad", ["shape", "dtype", "matrix", "range", "overlap"])
def test_compiled_loop_refuses_bad_arguments(bad):
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    src = blocks(4, torch.float32).reshape(1, 1, 4, 8, 8).numpy()
    dst = src.copy()
    matrix = dct._matrices("orthonormal", torch.float32, torch.device("cpu")).numpy()
    args = [src, dst, matrix, 0, 4]
    assert cpu._dct_kernel.block_transform(*args) is None
    if bad == "shape":
        args[0] = src.reshape(1, 1, 8, 8, 4)
    elif bad == "dtype":
        args[1] = dst.astype("float64")
    elif bad == "matrix":
        args[2] = matrix[:4]
    elif bad == "range":
        args[4] = 5
    else:
        args[1] = src
    with pytest.raises(ValueError, match="_dct: bad arguments"):
        cpu._dct_kernel.block_transform(*args)


# ---------------------------------------------------------------- the color conversion's fixed order
def pixels(b: int, p: int, dtype, seed: int = 0) -> torch.Tensor:
    return (torch.rand(b, 3, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 255).to(dtype)


def some_matrices(b: int, dtype) -> torch.Tensor:
    return (color.rgb_to_ycbcr_matrix(torch.float64) + 0.01 * torch.randn(b, 3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)).to(dtype)


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offset", [True, False])
def test_compiled_color_loop_is_the_tensor_form(dtype, offset, set_threads):
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    x = pixels(3, 70001, dtype)
    x[1, 2, 5], x[0, 0, 9] = float("nan"), float("inf")
    m = some_matrices(3, dtype)
    o = torch.tensor([[0.0, 128.0, 128.0]], dtype=dtype).expand(3, 3) if offset else None
    reference = color.color_product(m, x, o)
    for threads in (1, 2, 3, 4):
        set_threads(threads)
        for matrix in (m, m.transpose(1, 2), m[:1].expand(3, 3, 3)):  # any strides, a matrix shared by the batch
            out = cpu.color_apply(x, matrix, o)
            expected = reference if matrix is m else color.color_product(matrix, x, o)
            assert torch.equal(out.isnan(), expected.isnan()) and torch.equal(out.nan_to_num(), expected.nan_to_num())


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounded", [True, False])
@pytest.mark.parametrize("divisor", [255.0, None])
def test_compiled_color_loop_takes_the_decoders_last_steps(dtype, rounded, divisor, set_threads):
    """post: the product, then rounding, the clamp and the division by 255
    in the same pass, the tensor operations' values bit for bit (ties, values
    beyond the range, NaN)."""
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    x = pixels(3, 70001, dtype, seed=5) - 40.0
    x[:, 0, :600] = torch.arange(600, dtype=dtype).reshape(1, -1) / 2 - 20  # products on ties
    x[1, 2, 5], x[0, 0, 9] = float("nan"), float("inf")
    m, o = torch.eye(3, dtype=dtype).expand(3, 3, 3), torch.tensor([[0.0, 128.0, -128.0]], dtype=dtype).expand(3, 3)
    product = color.color_product(m, x, o)
    expected = (product.round() if rounded else product).clamp(0.0, 255.0)
    expected = expected if divisor is None else expected / divisor
    for threads in (1, 3):
        set_threads(threads)
        out = cpu.color_apply(x, m, o, (rounded, 0.0, 255.0, divisor))
        assert torch.equal(out.isnan(), expected.isnan()) and torch.equal(out.nan_to_num(), expected.nan_to_num())
    with pytest.raises(ValueError, match="divisor other than 0"):
        cpu.color_apply(x, m, o, (rounded, 0.0, 255.0, 0.0))


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_pixels_color_depends_on_the_pixel_only(dtype, set_threads):
    x = pixels(2, 5000, dtype, seed=1).reshape(2, 3, 50, 100)
    m, o = color.rgb_to_ycbcr_matrix(dtype), torch.tensor([0.0, 128.0, 128.0], dtype=dtype)
    whole = color._apply(m, x, o)
    for compiled in (True, False):
        with cpu.enabled(compiled):
            for threads in (1, 3):
                set_threads(threads)
                for rows in [(0, 1), (7, 8), (3, 41), (41, 50)]:
                    assert torch.equal(color._apply(m, x[1:, :, rows[0] : rows[1]], o), whole[1:, :, rows[0] : rows[1]])


def test_color_gradients_are_the_adjoints_and_the_matrix_sums():
    """The image's gradient is _apply_transpose bit for bit; the matrix's and
    offset's are the sums over pixels (as a batched GEMM's backward), to float rounding."""
    x = pixels(2, 300, torch.float64, seed=2).reshape(2, 3, 15, 20).requires_grad_()
    m = some_matrices(2, torch.float64).requires_grad_()
    o = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64, requires_grad=True)
    g = pixels(2, 300, torch.float64, seed=3).reshape(2, 3, 15, 20)
    grads = torch.autograd.grad(color._apply(m, x, o), (x, m, o), g)
    assert torch.equal(grads[0], color._apply_transpose(m.detach(), g))
    x_, m_, o_ = (t.detach().clone().requires_grad_() for t in (x, m, o))
    reference = torch.autograd.grad(torch.baddbmm(o_.expand(2, 3).unsqueeze(-1), m_, x_.reshape(2, 3, -1)).reshape(g.shape), (x_, m_, o_), g)
    for ours, theirs in zip(grads, reference):
        assert_close_to_rounding(ours, theirs)


@pytest.mark.parametrize("bad", ["channels", "dtype", "matrix", "offset", "range", "overlap"])
def test_compiled_color_loop_refuses_bad_arguments(bad):
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    src = pixels(2, 10, torch.float32).numpy()
    dst, m, o = src.copy(), some_matrices(2, torch.float32).numpy(), torch.zeros(2, 3).numpy()
    args = [src, dst, m, o, 0, 10]
    if bad == "channels":
        args[0] = src[:, :2]
    elif bad == "dtype":
        args[1] = dst.astype("float64")
    elif bad == "matrix":
        args[2] = m[:, :2]
    elif bad == "offset":
        args[3] = o[:1]
    elif bad == "range":
        args[5] = 11
    else:  # dst overlapping src, not src itself (in place is allowed)
        both = np.zeros((2, 3, 11), np.float32)
        args[0], args[1] = both[:, :, :10], both[:, :, 1:]
    with pytest.raises(ValueError, match="_color: bad arguments"):
        cpu._color_kernel.apply(*args)


@pytest.mark.paths
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_color_loop_in_place(dtype, set_threads):
    """out=x: the values written into x are those of a separate output, bit
    for bit, with and without the decoder's last steps, on any threads."""
    if not exact.available():
        pytest.skip("the compiled loops are not built")
    x0 = pixels(3, 70001, dtype, seed=7)
    m, o = some_matrices(3, dtype), torch.tensor([[0.0, 128.0, 128.0]], dtype=dtype).expand(3, 3)
    for post in (None, (True, 0.0, 255.0, 255.0)):
        expected = cpu.color_apply(x0, m, o, post)
        for threads in (1, 3):
            set_threads(threads)
            x = x0.clone()
            assert cpu.color_apply(x, m, o, post, out=x) is x and torch.equal(x, expected)
    planes = torch.zeros(2, 3, 4, 5, dtype=dtype)  # channels of a plane each: rows of one view
    with pytest.raises(ValueError, match="_color: bad arguments"):  # channels overlapping one another, in place
        flat = planes.view(2, 60).as_strided((2, 3, 20), (60, 10, 1))
        cpu.color_apply(flat, m[:2], None, out=flat)


def test_a_learned_color_matrix_gets_a_full_precision_gradient_under_autocast():
    """A backward called under the caller's autocast: the matrix's gradient is
    float32's, as outside it (the sum over pixels is no bfloat16 product)."""
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(7))
    grads = []
    for autocast in (False, True):
        m = color.rgb_to_ycbcr_matrix().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            import diffjpeg

            diffjpeg.jpeg(x, 50, mode="float", rgb_to_ycbcr=m).sum().backward()
        grads.append(m.grad)
    assert grads[1].dtype == torch.float32
    assert_close_to_rounding(grads[1], grads[0])
