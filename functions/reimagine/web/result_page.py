"""The result page a person opens from the email: the photo and the new picture, the caption, the style,
a download, "make another" and "delete now"; or, plainly, why there is nothing to show.

Rendered on the server (the record, fresh presigned links), with one static style sheet and script
allowed by hash as on `/`. Every value from the record is HTML-escaped; the delete key never reaches
this code (it stays in the link's fragment, read by the page's script).
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from reimagine.models import RequestRecord, Status, upload_key
from reimagine.styles import Catalogue, catalogue
from reimagine.web.policy import result_page_policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings


@dataclass(frozen=True)
class Page:
    html: str
    headers: dict[str, str] = field(default_factory=dict)


@functools.cache
def _template() -> str:
    return resources.files("reimagine.web").joinpath("result.html").read_text(encoding="utf-8")


def _fill(title: str, request_id: str, body: str) -> str:
    before, after = _template().split("$body", 1)
    before = before.replace("$title", html.escape(title)).replace("$request_id", html.escape(request_id))
    return before + body + after


def _exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "403"):
            return False
        raise
    return True


def _signed(s3: S3Client, bucket: str, key: str, expires_in: int, **params: str) -> str:
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires_in
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _headers(page: str, s3: S3Client, settings: Settings) -> dict[str, str]:
    origins = [
        _origin(_signed(s3, settings.uploads_bucket, "uploads/origin", 60)),
        _origin(_signed(s3, settings.results_bucket, "results/origin.png", 60)),
    ]
    return {
        "Content-Security-Policy": result_page_policy(page, image_origins=origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


_MAKE_ANOTHER = '<a class="button secondary" href="../">Make another</a>'


def _plain(title: str, *lines: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (
        f'<div class="card"><h1>{html.escape(title)}</h1>{paragraphs}<div class="actions">{_MAKE_ANOTHER}</div></div>'
    )


def render(record: RequestRecord | None, *, s3: S3Client, settings: Settings) -> Page:
    if record is None:
        body = _plain(
            "This picture is no longer here",
            "Pictures are kept for a limited time and then deleted, or the link is not complete.",
            "You can make a new one from the same photo.",
        )
        return _page("reimagine: picture not found", "", body, s3, settings)
    if record.status is Status.DELETED:
        body = _plain(
            "Deleted",
            "Your photo, the new picture, the caption and your address were deleted at your request.",
            "Nothing of this request is kept but its id, until the id itself expires.",
        )
        return _page("reimagine: deleted", record.id, body, s3, settings)
    if record.status is Status.FAILED:
        reason = record.error.message if record.error else "something went wrong"
        body = (
            _plain(
                "We could not make this picture",
                f"What happened: {reason}.",
                "You can try again with the same photo or another one.",
            )
            + _delete_card()
        )
        return _page("reimagine: not made", record.id, body, s3, settings)
    if record.status is not Status.COMPLETED or not record.result_key:
        body = _plain(
            "Still working on it",
            "The new picture is not ready yet. We will email you when it is; you can also reload this page.",
        )
        return _page("reimagine: in progress", record.id, body, s3, settings)
    if not _exists(s3, settings.results_bucket, record.result_key):
        body = _plain(
            "This picture has expired",
            "Pictures are kept for a limited time and then deleted. This one is no longer kept.",
            "You can make a new one from the same photo.",
        )
        return _page("reimagine: expired", record.id, body, s3, settings)
    return _page("reimagine: your new picture", record.id, _completed(record, s3, settings), s3, settings)


def _completed(record: RequestRecord, s3: S3Client, settings: Settings) -> str:
    e = html.escape
    ttl = settings.result_url_ttl_seconds
    assert record.result_key is not None
    picture = _signed(s3, settings.results_bucket, record.result_key, ttl, ResponseContentType="image/png")
    download = _signed(
        s3,
        settings.results_bucket,
        record.result_key,
        ttl,
        ResponseContentType="image/png",
        ResponseContentDisposition='attachment; filename="reimagined.png"',
    )
    if _exists(s3, settings.uploads_bucket, upload_key(record.id)):
        original_url = _signed(s3, settings.uploads_bucket, upload_key(record.id), ttl)
        original = f'<img src="{e(original_url)}" alt="Your photo">'
    else:
        original = '<div class="gone">Your photo is no longer kept (photos are deleted sooner than pictures).</div>'
    style = catalogue(settings.styles).for_record(record.style)
    style_name = style.name if not record.style or style.id == record.style else record.style
    return (
        '<div class="card">'
        "<h1>Your new picture</h1>"
        '<div class="pair">'
        f"<figure><div>{original}</div><figcaption>Your photo</figcaption></figure>"
        f'<figure class="new"><img src="{e(picture)}" alt="The new picture, painted from the caption below">'
        f"<figcaption>The new picture ({e(style_name)})</figcaption></figure>"
        "</div>"
        f"<p>Style: <strong>{e(style_name)}</strong></p>"
        f"<p>What we saw in your photo:</p><blockquote>{e(record.caption or '')}</blockquote>"
        '<div class="actions">'
        f'<a class="button" href="{e(download)}">Download the new picture</a>{_MAKE_ANOTHER}'
        "</div>"
        "</div>" + _delete_card()
    )


def _delete_card() -> str:
    return (
        '<div class="card">'
        "<h2>Delete now</h2>"
        "<p>Delete your photo, the new picture, the caption and your address now, instead of waiting for them "
        "to expire.</p>"
        '<div class="actions"><button type="button" class="danger" id="delete-now">Delete now</button></div>'
        '<p class="note" id="delete-hint" hidden>To delete, open this page from the link in your email: '
        "that link carries the key that allows it.</p>"
        '<p class="problem" id="delete-problem" role="alert"></p>'
        "</div>"
    )


def _page(title: str, request_id: str, body: str, s3: S3Client, settings: Settings) -> Page:
    page = _fill(title, request_id, body)
    return Page(html=page, headers=_headers(_template(), s3, settings))


def style_choices(styles: Catalogue) -> str:
    """The page's style picker: one radio button per style, its name and description, the default checked."""
    e = html.escape
    return "".join(
        f'<label class="style-card"><input type="radio" name="style" value="{e(style.id)}"'
        f"{' checked' if style.id == styles.default else ''}>"
        f"<span><strong>{e(style.name)}</strong><span>{e(style.description)}</span></span></label>"
        for style in styles.styles
    )
