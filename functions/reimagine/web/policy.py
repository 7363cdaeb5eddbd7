"""The page's Content-Security-Policy: its own script and style by hash, S3 only where the page uses it.

No 'unsafe-inline': the page's one inline script and one style sheet are allowed by their SHA-256
(CSP Level 2 hash sources), computed from the page as served, so an injected script never runs.
Images may come from the results bucket (the finished picture), blob: (the preview of the picked
file) and data: (the icon); fetches go to this API and the uploads bucket (the presigned POST) only.
"""

from __future__ import annotations

import base64
import hashlib
import re

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _hash_sources(html: str, tag: str) -> str:
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii") + "'"
        for found, body in _INLINE.findall(html)
        if found == tag
    ]
    return " ".join(hashes) or "'none'"


def content_security_policy(html: str, *, upload_origin: str, result_origin: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hash_sources(html, 'script')}",
            f"style-src {_hash_sources(html, 'style')}",
            f"img-src 'self' blob: data: {result_origin}",
            f"connect-src 'self' {upload_origin}",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def result_page_policy(html: str, *, image_origins: list[str]) -> str:
    """The result page: its own script and style by hash, pictures from the buckets, fetches to this API
    only (the delete), and the download link leaves for S3 as a navigation, which needs no source."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hash_sources(html, 'script')}",
            f"style-src {_hash_sources(html, 'style')}",
            f"img-src data: {' '.join(sorted(set(image_origins)))}",
            "connect-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
