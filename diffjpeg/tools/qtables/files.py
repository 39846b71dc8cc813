"""Quantization table files and forms: ``.json``/``.pt`` files, Pillow's ``qtables=``, libjpeg's quality scaling.

Tables are ``(2, 8, 8)`` integers 1..255 (luma, chroma), natural (row-major)
order, as :func:`diffjpeg.jpeg` and Pillow's ``qtables=`` take them.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from ...stages.quality import quality_tables, standard_tables  # noqa: F401 - standard_tables: the doctests
from ...stages.rounding import round_ste


def check_qtables(tables) -> Tensor:
    """``tables`` as ``(2, 8, 8)`` int64 baseline tables (integers 1..255), or ValueError."""
    t = torch.as_tensor(tables)
    if t.shape != (2, 8, 8):
        raise ValueError(f"qtables must have shape (2, 8, 8) (luma, chroma), got {tuple(t.shape)}")
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise ValueError("qtables must be integers (round them first)")
    t = t.to(torch.int64)
    if bool((t < 1).any()) or bool((t > 255).any()):
        raise ValueError(f"qtables entries must be in 1..255 (baseline JPEG), got {int(t.min())}..{int(t.max())}")
    return t


def pillow_qtables(tables) -> list[list[int]]:
    """Tables as Pillow's ``Image.save(..., qtables=...)`` takes them: ``[luma, chroma]``,
    64 integers each in natural (row-major) order (checked against Pillow's files).

    Example:
        >>> pillow_qtables(standard_tables())[0][:4]
        [16, 11, 10, 16]
    """
    t = check_qtables(tables)
    return [t[0].flatten().tolist(), t[1].flatten().tolist()]


def save_qtables(tables, path, **metadata) -> None:
    """Write tables to ``.json`` (``{"luma": 8x8, "chroma": 8x8, "order": "natural", ...}``) or ``.pt``.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "t.json")
        >>> save_qtables(standard_tables(), p); load_qtables(p)[1, 0, 0].item()
        17
    """
    t = check_qtables(tables)
    path = Path(path)
    record = {"luma": t[0].tolist(), "chroma": t[1].tolist(), "order": "natural", **metadata}
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(record, indent=1) + "\n")
    elif path.suffix.lower() == ".pt":
        torch.save({**record, "luma": t[0], "chroma": t[1]}, path)
    else:
        raise ValueError(f"tables file must end in .json or .pt, got {str(path)!r}")


def load_qtables(path) -> Tensor:
    """Read tables written by :func:`save_qtables` (and ``diffjpeg optimize-tables``): ``(2, 8, 8)`` int64, natural order.

    Raises:
        ValueError: the name does not end in .json or .pt, or the file is not such a
            tables file (the message names the file and what is wrong).
        OSError: the file cannot be read.

    Example:
        >>> import tempfile, os; p = os.path.join(tempfile.mkdtemp(), "t.json")
        >>> _ = open(p, "w").write('{"luma": [[1]]}')
        >>> load_qtables(p)
        Traceback (most recent call last):
        ...
        ValueError: ...t.json' is not a tables file: it has no "chroma" table
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".pt"):
        raise ValueError(f"tables file must end in .json or .pt, got {str(path)!r}")
    try:
        record = json.loads(path.read_text()) if suffix == ".json" else torch.load(path, map_location="cpu", weights_only=True)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not a tables file: not JSON ({e})") from None
    except OSError if suffix == ".json" else (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # torch.load's many ways to refuse a file (weights_only refuses pickled objects), in a few words
        raise ValueError(f"{str(path)!r} is not a tables file: torch.load cannot read it ({type(e).__name__})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{str(path)!r} is not a tables file: expected an object with \"luma\" and \"chroma\", got {type(record).__name__}")
    for key in ("luma", "chroma"):
        if key not in record:
            raise ValueError(f"{str(path)!r} is not a tables file: it has no \"{key}\" table")
    if record.get("order", "natural") != "natural":
        raise ValueError(f"{str(path)!r}: only natural-order tables are supported")
    try:
        tables = torch.stack([torch.as_tensor(record["luma"]), torch.as_tensor(record["chroma"])])
        return check_qtables(tables)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"{str(path)!r}: {e}") from None


def scaled_qtables(base, quality: float) -> Tensor:
    """Base tables scaled as libjpeg's ``jpeg_set_quality`` scales Annex K (integers 1..255).

    Example:
        >>> scaled_qtables(standard_tables(), 50)[0, 0, :3].tolist()
        [16, 11, 10]
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise ValueError(f"quality must be a number in [0, 100], got {quality!r}")
    base = torch.as_tensor(base, dtype=torch.float32)
    if base.shape != (2, 8, 8) or bool((base <= 0).any()):
        raise ValueError("base must be (2, 8, 8) tables with entries > 0")
    return quality_tables(torch.tensor(float(quality)), round_ste(base), exact=True).round().to(torch.int64)
