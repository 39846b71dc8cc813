"""Rate-distortion loss: the differentiable rate of :func:`diffjpeg.rate` plus a weighted distortion.

``loss = bits per pixel + lmbda * distortion``, as CompressAI's
``RateDistortionLoss``; the objective :mod:`diffjpeg.tools.qtables` learns
quantization tables with, usable in any training loop.
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple, get_args

from torch import Tensor, nn

from ..bitstream.huffman import Huffman, check_huffman
from ..bitstream.rate_model import rate
from ..core.check import check_choice
from ..core.coefficients import Coefficients

Distortion = Literal["mse", "ssim"]
DISTORTIONS: tuple[str, ...] = get_args(Distortion)
KORNIA_MISSING = 'distortion="ssim" needs kornia: pip install "diffjpeg[tables]" (or pip install kornia)'


class RateDistortion(NamedTuple):
    """What :class:`RateDistortionLoss` returns; every field a differentiable scalar."""

    loss: Tensor  # bpp + lmbda * distortion
    bpp: Tensor  # the rate: estimated scan bits per pixel over the batch
    distortion: Tensor  # MSE on the 0..255 scale, or 1 - SSIM
    bits: Tensor  # estimated scan bits of the whole batch


def _kornia_ssim():
    try:
        from kornia.metrics import ssim
    except ImportError as e:
        raise ImportError(KORNIA_MISSING) from e
    return ssim


class RateDistortionLoss(nn.Module):
    """``bpp + lmbda * distortion`` of a JPEG: its coefficients' rate and its decoded image's error.

    Args:
        lmbda: weight of the distortion, a finite number > 0; larger favours
            quality over size.
        distortion: ``"mse"`` (mean squared error on the 0..255 scale) or
            ``"ssim"`` (``1 - SSIM``, 11x11 Gaussian window; needs kornia).
        huffman: the Huffman tables the rate assumes, ``"standard"`` or
            ``"optimized"``, as in :func:`diffjpeg.rate`.

    ``forward(y, x, c)`` takes the decoded image ``y`` and the original ``x``
    (``(..., C, H, W)`` float in [0, 1]) and ``c``, the
    :class:`~diffjpeg.Coefficients` of ``x``; it returns a
    :class:`RateDistortion` (``loss``, ``bpp``, ``distortion``, ``bits``),
    pooled over the batch: bits over all pixels, distortion over all samples.

    Example:
        >>> import diffjpeg
        >>> criterion = diffjpeg.RateDistortionLoss(lmbda=0.03)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> tables = diffjpeg.standard_tables().requires_grad_()
        >>> c = diffjpeg.encode(x, qtables=tables)
        >>> out = criterion(diffjpeg.decode(c), x, c)
        >>> out.loss.backward()
        >>> bool(out.loss > out.bpp > 0), tables.grad.shape
        (True, torch.Size([2, 8, 8]))
    """

    def __init__(self, lmbda: float = 0.03, distortion: Distortion = "mse", huffman: Huffman = "optimized"):
        super().__init__()
        if isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not math.isfinite(lmbda) or lmbda <= 0:
            raise ValueError(f"lmbda (lambda, the distortion's weight) must be a finite number > 0, got {lmbda!r}")
        check_choice("distortion", distortion, DISTORTIONS)
        check_huffman(huffman)
        if distortion == "ssim":
            _kornia_ssim()  # fail here, before any work
        self.lmbda, self.distortion, self.huffman = float(lmbda), distortion, huffman

    def extra_repr(self) -> str:
        return f"lmbda={self.lmbda}, distortion={self.distortion!r}, huffman={self.huffman!r}"

    def forward(self, y: Tensor, x: Tensor, c: Coefficients) -> RateDistortion:
        if y.shape != x.shape:
            raise ValueError(f"y and x must have the same shape, got {tuple(y.shape)} and {tuple(x.shape)}")
        bits = rate(c, huffman=self.huffman).sum()
        pixels = math.prod(c.batch_shape) * c.size[0] * c.size[1]
        if self.distortion == "mse":
            d = ((y - x) * 255.0).pow(2).mean()
        else:
            ssim = _kornia_ssim()
            d = 1.0 - ssim(y.reshape(-1, *y.shape[-3:]), x.reshape(-1, *x.shape[-3:]), window_size=11, max_val=1.0).mean()
        bpp = bits / pixels
        return RateDistortion(loss=bpp + self.lmbda * d, bpp=bpp, distortion=d, bits=bits)
