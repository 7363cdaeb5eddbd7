"""The one cleaning every caption gets before it is stored, shown, mailed and turned into a prompt.

Model output is untrusted text: it may carry newlines, control characters, zero-width and other
format characters (U+200B, U+2060, bidi overrides), or nothing else at all. A caption of only
invisible characters would be stored as if a model had described the picture; it is refused as
PROVIDER_BAD_RESPONSE instead, like an empty one.
"""

from __future__ import annotations

import unicodedata

from reimagine.errors import ProviderError

MAX_CAPTION_CHARS = 300


def clean_caption(text: object) -> str:
    """`text` with control characters as spaces, format characters removed, whitespace collapsed and
    the length capped; raises ProviderError (PROVIDER_BAD_RESPONSE) when no visible text remains."""
    if not isinstance(text, str):
        raise ProviderError(f"the caption is a {type(text).__name__}, not text", code="PROVIDER_BAD_RESPONSE")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":  # newlines, tabs and other controls separate words
            kept.append(" ")
        elif not category.startswith("C"):  # Cf format, Cs surrogates, Co private use, Cn unassigned
            kept.append(char)
    caption = " ".join("".join(kept).split())[:MAX_CAPTION_CHARS].rstrip()
    if not caption:
        raise ProviderError("the caption has no visible text", code="PROVIDER_BAD_RESPONSE")
    return caption
