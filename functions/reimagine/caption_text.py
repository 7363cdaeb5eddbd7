"""The one cleaning every caption gets before it is stored, shown, mailed and turned into a prompt.

Model output is untrusted text: it may carry newlines, control characters, zero-width and other
format characters (U+200B, U+2060, bidi overrides), or nothing else at all. A caption of only
invisible characters would be stored as if a model had described the picture; it is refused as
PROVIDER_BAD_RESPONSE instead, like an empty one.

A caption describes a picture, so it never holds a link: text written inside an uploaded photo can
steer a vision model into repeating "visit https://evil.example/reset", and mail clients turn URLs,
email addresses and bare domains into links. All three are removed before the caption is stored.
"""

from __future__ import annotations

import re
import unicodedata

from reimagine.errors import ProviderError

MAX_CAPTION_CHARS = 300

# Dots a mail client or browser may read as one: ASCII, fullwidth, ideographic, halfwidth ideographic.
_DOT = r"[.\uff0e\u3002\uff61]"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"  # letters and digits of any script, hyphens inside
_LINKS = re.compile(
    "|".join(
        (
            r"[a-z][a-z0-9+.-]*://\S*",  # any scheme://...
            r"\b(?:mailto|tel|sms|data|javascript):\S+",
            r"[\w.+%-]+@" + _LABEL + rf"(?:{_DOT}{_LABEL})*",  # email addresses (and user@host)
            r"\bwww" + rf"{_DOT}\S+",
            # domain-like: label(.label)*.tld (two letters or more, or punycode), with any path after it
            rf"\b{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}(?:xn--[\w-]+|[^\W\d_]{{2,63}})\b(?:[/:?#\uff0f]\S*)?",
        )
    ),
    re.IGNORECASE,
)


def clean_caption(text: object) -> str:
    """`text` with control characters as spaces, format characters removed, links (URLs, email
    addresses, domain names) removed, whitespace collapsed and the length capped; raises
    ProviderError (PROVIDER_BAD_RESPONSE) when no visible text remains."""
    if not isinstance(text, str):
        raise ProviderError(f"the caption is a {type(text).__name__}, not text", code="PROVIDER_BAD_RESPONSE")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":  # newlines, tabs and other controls separate words
            kept.append(" ")
        elif not category.startswith("C"):  # Cf format, Cs surrogates, Co private use, Cn unassigned
            kept.append(char)
    # Links are removed after the invisible characters, which could otherwise split one in two.
    unlinked = _LINKS.sub(" ", "".join(kept))
    caption = " ".join(unlinked.split())[:MAX_CAPTION_CHARS].rstrip()
    if not caption:
        raise ProviderError("the caption has no visible text", code="PROVIDER_BAD_RESPONSE")
    return caption
