"""Registry of feature extractors: small builder functions registered by name (timm style)."""

from __future__ import annotations

from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TRAINABLE: dict[str, bool] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, trainable: bool = True):
    """Decorator: register ``fn`` under its ``__name__``. Usable as ``@register_model`` or
    ``@register_model(trainable=False)`` (fixed, parameter-free extractors such as NCC patches)."""

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = f.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = f
        _TRAINABLE[name] = trainable
        return f

    return deco(fn) if fn is not None else deco


def list_models(*, trainable: bool | None = None) -> list[str]:
    """Sorted names of the registered feature extractors (optionally only (non-)trainable)."""
    return sorted(n for n in _MODELS if trainable is None or _TRAINABLE[n] == trainable)


def is_trainable(name: str) -> bool:
    _check(name)
    return _TRAINABLE[name]


def _check(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(list_models())}")


def build_feature_extractor(name: str, **kwargs) -> nn.Module:
    """Build the registered feature extractor ``name`` (keyword options go to its builder)."""
    _check(name)
    return _MODELS[name](**kwargs)
