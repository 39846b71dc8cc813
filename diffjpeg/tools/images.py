"""The one image loader of the tools: files as JPEG takes them, the bundled and scikit-image photos, image sets.

Every tool reads images through :func:`load_image` (``compress``, ``compare``,
``demo --image``, ``optimize-tables`` and :func:`~diffjpeg.tools.qtables.learn_qtables`
through :class:`ImageSet`): EXIF orientation applied, transparency composited
onto white, palette, 1-bit, 16-bit, float and CMYK images converted to 8-bit
grayscale or RGB; an image larger than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a
guard against decompression bombs) is refused from its header, before its
pixels are allocated (Pillow warns first, as for any such file: a library call
leaves the process's warnings filters alone; the ``diffjpeg`` command silences
that warning).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffjpeg.core.check import check_image

SAMPLE = "chelsea.png"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp", ".gif")
ORIENTATION = 0x0112  # EXIF tag
TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height


class ImageError(ValueError):
    """An image file that cannot be read; the message names the file."""


@contextmanager
def _reading(path):
    """Pillow's many exceptions as one :class:`ImageError` each, naming ``path``."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image") from None
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # the warning where a filter raises it
        raise ImageError(f"{path}: {e} (Pillow's Image.MAX_IMAGE_PIXELS)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt files
        raise ImageError(f"cannot read {path}: {e}") from None


def _check_pixels(path, image) -> None:
    """Refuse, from the header alone, an image larger than Pillow's ``Image.MAX_IMAGE_PIXELS``."""
    from PIL import Image

    limit, (width, height) = Image.MAX_IMAGE_PIXELS, image.size
    if limit is not None and width * height > limit:
        raise ImageError(f"{path}: {width}x{height} is {width * height:,} pixels, more than the {int(limit):,} allowed "
                         "(Pillow's Image.MAX_IMAGE_PIXELS, a guard against decompression bombs)")


def load_image(path) -> tuple:
    """Pixels of any image Pillow opens, as JPEG takes them.

    Returns:
        ``(H, W)`` uint8 (grayscale) or ``(H, W, 3)`` uint8 (RGB), and notes on
        what was converted: EXIF orientation applied, transparency composited
        onto white, palette, 1-bit, 16-bit, float, CMYK and other color modes
        converted, first frame of an animation.

    Raises:
        ImageError: missing, unreadable, not an image, or larger than Pillow's
            ``Image.MAX_IMAGE_PIXELS`` (checked before the pixels are read).

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("RGBA", (4, 2), (0, 0, 0, 0)).save(path)
        >>> a, notes = load_image(path)
        >>> a.shape, a.dtype, int(a.min()), notes
        ((2, 4, 3), dtype('uint8'), 255, ['transparency composited onto white (JPEG has no alpha channel)'])
    """
    from PIL import Image, ImageOps

    notes = []
    with _reading(path), Image.open(path) as image:
        _check_pixels(path, image)
        if getattr(image, "n_frames", 1) > 1:
            notes.append(f"{image.n_frames} frames: the first one is used")
        image.load()
        if image.getexif().get(ORIENTATION, 1) not in (1, None):  # the JPEG written carries no EXIF: bake it in
            image = ImageOps.exif_transpose(image)
            notes.append("EXIF orientation applied")
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("PA", "LA", "La", "RGBa"):
            image = image.convert("RGBA")
        if image.mode == "RGBA":
            notes.append("transparency composited onto white (JPEG has no alpha channel)")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image).convert("L" if mode in ("LA", "La") else "RGB")
        if mode == "1":
            image = image.convert("L")
            notes.append("1-bit image converted to 8-bit grayscale")
        if image.mode in ("RGB", "L"):
            return np.array(image), notes
        if image.mode.startswith("I") or image.mode == "F":
            return _to_8_bit(np.array(image), image.mode, notes), notes
        notes.append(f"{image.mode} converted to RGB")
        return np.array(image.convert("RGB")), notes


def image_size(path) -> tuple[int, int]:
    """``(H, W)`` of what :func:`load_image` returns, from the file's header alone."""
    from PIL import Image

    with _reading(path), Image.open(path) as image:
        _check_pixels(path, image)
        width, height = image.size
        if image.getexif().get(ORIENTATION, 1) in TRANSPOSED:
            width, height = height, width
    return height, width


def _to_8_bit(a, mode: str, notes: list[str]):
    """16- and 32-bit integer or float grayscale to 8 bits.

    A 16-bit mode (``I;16``: 16-bit PNG and TIFF) is scaled by 255 / 65535 whatever
    values it holds, so a dark 16-bit image stays dark; 32-bit ``I`` and ``F`` carry
    no bit depth, so their values decide: 0..1 (float), 0..255, 0..65535, else the
    range they use.
    """
    a = a.astype(np.float64)
    if mode.startswith("I;16"):
        a, how = a / 257, f"{mode} (16-bit) image scaled to 8 bits"
    elif mode == "F" and a.size and a.min() >= 0 and a.max() <= 1:
        a, how = a * 255, "float in [0, 1] scaled to 8 bits"
    elif a.size and a.min() >= 0 and a.max() <= 255:
        how = f"{mode} image with values in 0..255 taken as 8-bit"
    elif a.size and a.min() >= 0 and a.max() <= 65535:
        a, how = a / 257, f"{mode} (16-bit) image scaled to 8 bits"
    else:
        low, high = float(a.min()), float(a.max())
        a, how = (a - low) * (255 / max(high - low, 1e-12)), f"{mode} image stretched from {low:g}..{high:g} to 0..255"
    notes.append(how)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- photos
def sample_image() -> np.ndarray:
    """The bundled sample photo (``diffjpeg/data/chelsea.png``, 320x213, CC0).

    Returns:
        ``(213, 320, 3)`` uint8 RGB array.

    Example:
        >>> sample_image().shape
        (213, 320, 3)
    """
    from PIL import Image

    with resources.files("diffjpeg").joinpath("data", SAMPLE).open("rb") as f:
        return np.array(Image.open(f).convert("RGB"))


def skimage_photo(name: str) -> np.ndarray:
    """A scikit-image photo by name: ``(H, W, 3)`` RGB (alpha dropped) or ``(H, W)`` grayscale uint8;
    of a stereo pair, the left view."""
    from skimage import data

    a = getattr(data, name)()
    a = a[0] if isinstance(a, tuple) else a
    return np.ascontiguousarray(a[..., :3] if a.ndim == 3 else a)


# ---------------------------------------------------------------- arrays and tensors
def to_tensor(a: np.ndarray) -> Tensor:
    """``(H, W)`` or ``(H, W, 3)`` uint8 array to a ``(C, H, W)`` uint8 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def to_array(t: Tensor) -> np.ndarray:
    """``(C, H, W)`` uint8 tensor back to an ``(H, W)`` or ``(H, W, 3)`` array."""
    a = t.detach().cpu().numpy()
    return a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))


# ---------------------------------------------------------------- sets of images
def image_paths(directory) -> list[Path]:
    """The image files directly in ``directory`` (by suffix), sorted by name.

    Example:
        >>> import tempfile; image_paths(tempfile.mkdtemp())
        []
    """
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"images directory {str(d)!r} does not exist or is not a directory")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _rgb_tensor(x, name: str) -> Tensor:
    """A ``(3, H, W)`` uint8 image from a tensor or array (grayscale is replicated)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
        if x.dim() == 3 and x.shape[-1] in (1, 3, 4):  # (H, W, C) arrays
            x = x.permute(2, 0, 1)
        elif x.dim() == 2:
            x = x[None]
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a directory, image paths or (C, H, W) tensors, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4) or x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name} must have shape (C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    x = x[:3]
    check_image(x, name)  # the library's rules: uint8, or float in [0, 1] (a [0, 255] float image is refused, not clipped)
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x.contiguous()


class ImageSet:
    """Images to learn from or score: a directory, a list of paths, a tensor or a list of tensors.

    Files are read lazily with :func:`load_image` (their sizes from the
    headers) and a few are kept in memory, so a large folder costs only what
    each step reads. Every image is used as 8-bit RGB; grayscale is replicated
    to three channels.
    """

    def __init__(self, images, cache: int = 32):
        if isinstance(images, (str, os.PathLike)):
            paths = image_paths(images)
            if not paths:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in directory {str(images)!r}")
            items = paths
        elif isinstance(images, Tensor) and images.dim() == 4:
            items = list(images)
        elif isinstance(images, (Tensor, np.ndarray)):
            items = [images]
        elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
            items = list(images)
        else:
            raise TypeError(f"images must be a directory, a list of image paths or tensors, or a tensor, got {type(images).__name__}")
        if not items:
            raise ValueError("images is empty")
        self._tensors: dict[int, Tensor] = {}
        self._paths: dict[int, Path] = {}
        self.sizes: list[tuple[int, int]] = []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                path = Path(item)
                self.sizes.append(image_size(path))
                self._paths[i] = path
            else:
                t = _rgb_tensor(item, f"images[{i}]")
                self._tensors[i] = t
                self.sizes.append((t.shape[1], t.shape[2]))
        self._cache: dict[int, Tensor] = {}
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> Tensor:
        if i in self._tensors:
            return self._tensors[i]
        if i not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = _rgb_tensor(load_image(self._paths[i])[0], str(self._paths[i]))
        return self._cache[i]
