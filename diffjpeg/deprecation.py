"""Old spellings of the public API, accepted for one release with a
``DeprecationWarning`` (removed in 0.3).

Before 0.2 every parameter could be passed by position, the forward pass was
chosen with ``forward=`` (which reads like ``nn.Module.forward``), and the
surrogate's parameters travelled as ``fourier_order=`` and ``temperature=``
beside ``rounding=`` through a dozen signatures. Now every parameter after
the image (and after ``quality`` where there is one) is keyword-only, the
forward pass is ``mode=`` (the word the stage functions already used), and
``rounding=`` takes a name or a :class:`diffjpeg.rounding.Rounding` that
carries its own parameters. :func:`keyword_only` maps the old spellings onto
the new ones, so each function body sees only the new signature.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType

RENAMED = {"forward": "mode"}
REMOVAL = "0.3"


def _warn(message: str) -> None:
    # stacklevel 3: the caller of the decorated function
    warnings.warn(f"{message} (deprecated since 0.2, removed in {REMOVAL})", DeprecationWarning, stacklevel=3)


def keyword_only(positional: int, legacy: tuple[str, ...] = (), renamed: Mapping[str, str] = RENAMED) -> Callable:
    """Decorate a function whose parameters after the first ``positional``
    are keyword-only, accepting the old spellings with a warning:

    * further positional arguments, taken in the old order ``legacy`` (old names);
    * ``renamed`` keywords (``forward=`` for ``mode=``);
    * ``fourier_order=`` and ``temperature=``, folded into ``rounding=``, when
      the function has a ``rounding`` parameter.

    ``positional`` counts ``self`` for methods.
    """

    def decorate(fn: Callable) -> Callable:
        name = fn.__qualname__.replace(".__init__", "")
        parameters = inspect.signature(fn).parameters
        takes_rounding = "rounding" in parameters
        default_rounding = parameters["rounding"].default if takes_rounding else None
        positional_names = [p.name for p in parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        rounding_at = positional_names.index("rounding") if "rounding" in positional_names else None

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(legacy):
                    raise TypeError(f"{name}() takes at most {positional + len(legacy)} positional arguments, got {len(args)}")
                names = legacy[: len(extra)]
                _warn(f"passing {', '.join(names)} to {name}() by position is deprecated; pass {names[0]}=... by name")
                for key, value in zip(names, extra):
                    if key in kwargs:
                        raise TypeError(f"{name}() got multiple values for argument {key!r}")
                    kwargs[key] = value
                args = args[:positional]
            for old, new in renamed.items():
                if old in kwargs:
                    _warn(f"{name}({old}=...) is deprecated; use {new}=...")
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= and {new}=; pass only {new}=")
                    kwargs[new] = kwargs.pop(old)
            if takes_rounding and ("fourier_order" in kwargs or "temperature" in kwargs):
                from .rounding import as_rounding  # here: rounding.py itself uses this decorator

                order, temperature = kwargs.pop("fourier_order", None), kwargs.pop("temperature", None)
                _warn(f"{name}(fourier_order=..., temperature=...) is deprecated; pass rounding=diffjpeg.rounding.Fourier(order=...) or Sigmoid(temperature=...)")

                def folded(given):
                    # None is the mode's default, a Sigmoid in every mode (diffjpeg.rounding.DEFAULT_ROUNDINGS):
                    # temperature replaces any of them alike; without it, None stays the mode's own
                    spec = as_rounding(given, order, temperature, mode="exact")
                    return spec if given is not None or temperature is not None else None

                if rounding_at is not None and len(args) > rounding_at:  # rounding itself given by position
                    args = (*args[:rounding_at], folded(args[rounding_at]), *args[rounding_at + 1 :])
                else:
                    kwargs["rounding"] = folded(kwargs.get("rounding", default_rounding))
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def deprecated_alias(old: str, new: str) -> property:
    """A read-only attribute under its old name (``forward_mode`` for ``mode``)."""

    def get(self):
        _warn(f"{type(self).__name__}.{old} is deprecated; use .{new}")
        return getattr(self, new)

    return property(get, doc=f"Deprecated: use ``{new}``.")


def moved_module(old: str, module: ModuleType) -> ModuleType:
    """A stand-in for a module that moved: ``from old import name`` still
    works, with a warning, and gives ``module``'s ``name``."""
    stand_in = ModuleType(old, f"Deprecated: moved to {module.__name__}.")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        _warn(f"module {old} is deprecated; import from {module.__name__}")
        return getattr(module, name)

    stand_in.__getattr__ = __getattr__
    return stand_in
