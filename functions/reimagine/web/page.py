"""The web page at `/`: index.html with this stack's upload limit and styles, and its Content-Security-Policy."""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING

from reimagine import storage
from reimagine.styles import catalogue
from reimagine.web.policy import content_security_policy
from reimagine.web.result_page import style_choices

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings

CONTENT_TYPE = "text/html; charset=utf-8"


@functools.cache
def html(max_upload_bytes: int, styles_setting: str = "") -> str:
    """The page, built once per container: this stack's upload limit in the tag it checks files against,
    and this stack's styles as a group of radio buttons (markup only: the hashed script and style stay)."""
    page = resources.files("reimagine.web").joinpath("index.html").read_text(encoding="utf-8")
    page = re.sub(r'(<meta name="max-upload-bytes" content=")\d+(">)', rf"\g<1>{max_upload_bytes}\g<2>", page, count=1)
    return page.replace("<!--styles-->", style_choices(catalogue(styles_setting)), 1)


# Computed once per container (and S3 endpoint): the buckets' origins are those of URLs signed here.
_policies: dict[tuple[int, str, str, str, str | None], str] = {}


def headers(settings: Settings, s3: S3Client) -> dict[str, str]:
    cfg = settings
    cached = (cfg.max_upload_bytes, cfg.styles, cfg.uploads_bucket, cfg.results_bucket, s3.meta.endpoint_url)
    if cached not in _policies:
        _policies[cached] = content_security_policy(
            html(cfg.max_upload_bytes, cfg.styles),
            upload_origin=storage.upload_origin(s3, bucket=cfg.uploads_bucket),
            result_origin=storage.result_origin(s3, bucket=cfg.results_bucket),
        )
    return {
        # The page talks to this API and posts straight to S3; nothing else is loaded or run.
        "Content-Security-Policy": _policies[cached],
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
