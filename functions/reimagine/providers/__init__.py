"""Captioning and generation providers, chosen by configuration and imported only when used."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.providers.base import Captioner, ImageGenerator
    from reimagine.providers.chain import CaptionChain, PictureChain

# provider name -> module under reimagine.providers exposing build_captioner / build_generator
_MODULES = {"offline": "offline", "huggingface": "huggingface", "bedrock": "bedrock", "openai": "openai"}


def _module(name: str):
    try:
        return import_module(f"reimagine.providers.{_MODULES[name]}")
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; choose one of {sorted(_MODULES)}") from None


def build_captioner(settings: Settings) -> Captioner | CaptionChain:
    return _module(settings.provider).build_captioner(settings)


def build_generator(settings: Settings) -> ImageGenerator | PictureChain:
    return _module(settings.provider).build_generator(settings)
