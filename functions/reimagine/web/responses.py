"""The API's HTML answers: the web page, the result page and the pages behind the links in mail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)

from reimagine.web import opt_in, page, result_page

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings
    from reimagine.models import RequestRecord

_NO_STORE = {"Cache-Control": "no-store"}

# A refused token: 404 when it was never issued, 410 when it was but cannot be used any more.
REFUSED_STATUS = {"unknown": 404, "used": 410, "expired": 410}

_HTML_DOC: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    "text/html": {"schema": {"type": "string"}}
}
# What the OpenAPI document says the link pages answer.
LINK_PAGE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "An HTML page", "content": _HTML_DOC},
    404: {"description": "Unknown link (an HTML page)", "content": _HTML_DOC},
    410: {"description": "Used or expired link (an HTML page)", "content": _HTML_DOC},
}


def web_page(settings: Settings, s3: S3Client) -> Response:
    return Response(
        status_code=200,
        content_type=page.CONTENT_TYPE,
        body=page.html(settings.max_upload_bytes, settings.styles),
        headers=page.headers(settings, s3),
    )


def result(record: RequestRecord | None, *, s3: S3Client, settings: Settings) -> Response:
    """The result page, or (404) the page saying the picture is no longer here."""
    rendered = result_page.render(record, s3=s3, settings=settings)
    return Response(
        status_code=200 if record is not None else 404,
        content_type=page.CONTENT_TYPE,
        body=rendered.html,
        headers={**_NO_STORE, **rendered.headers},
    )


def link_page(status: int, body: str) -> Response:
    """A page behind a link in mail (confirm, unsubscribe)."""
    return Response(status_code=status, content_type=opt_in.CONTENT_TYPE, body=body, headers=opt_in.HEADERS)
