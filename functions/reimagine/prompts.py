"""The one place the text-to-image prompt is built from a caption."""

from __future__ import annotations

import unicodedata

# Titan Image Generator v2 accepts at most 512 characters; the other models are at least as lenient.
MAX_PROMPT_CHARS = 480


def build_prompt(caption: str, style: str) -> str:
    """Combine the house style and the caption into one clean, bounded line."""
    caption = _clean(caption).strip("\"'")
    style = _clean(style).rstrip(".,;: ")
    prompt = f"{style}, based on this description: {caption}" if caption and style else caption or style
    return _cap(prompt, MAX_PROMPT_CHARS)


def _clean(text: str) -> str:
    """Drop control characters (model output may carry newlines or tabs) and collapse whitespace."""
    visible = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return " ".join(visible.split())


def _cap(text: str, limit: int) -> str:
    """Cut at a word boundary so the prompt never ends mid-word."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:")
