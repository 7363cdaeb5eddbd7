"""Text a provider wrote (an error body, a refusal reason), made fit for a log line.

Users never read it (they read reimagine.errors.PROVIDER_MESSAGES); operators do, in the logs, so it
is kept but made inert: control characters become spaces, invisible format characters (zero-width,
bidi overrides such as U+202E and U+2066) are dropped, email addresses are masked, credentials a
provider echoes back are replaced, and the length is capped.
"""

from __future__ import annotations

import re
import unicodedata

from reimagine.models import mask_email

MAX_LOGGED_CHARS = 200
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
# Credentials some services quote back: a bearer value, Hugging Face and OpenAI-style keys.
_CREDENTIAL = re.compile(r"(?i)\bbearer\s+\S+|\b(?:hf|sk)[_-][A-Za-z0-9_-]{12,}")


def for_log(text: object, *, secret: str = "", limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` as one inert line of at most `limit` characters."""
    value = str(text)
    if secret:
        value = value.replace(secret, "***")
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            kept.append(" ")
        elif not category.startswith("C"):
            kept.append(char)
    line = " ".join("".join(kept).split())
    line = _CREDENTIAL.sub("***", line)
    line = _EMAIL.sub(lambda match: mask_email(match.group(0)), line)
    return line[:limit]
