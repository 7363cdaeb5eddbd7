"""ApiFunction: the HTTP API (HttpApi payload 2.0), request validation and the generated OpenAPI document.

Routes that return a bare Response carry no return annotation: Powertools validates bodies against it.
"""

import base64
import functools
import re
from importlib import resources
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients, deletion, storage, validation_words
from reimagine.body_guard import MAX_BODY_BYTES, check_json_body
from reimagine.capability import may_delete
from reimagine.config import require_settings, settings
from reimagine.confirmation import Confirmations, resume, unsubscribed_digest
from reimagine.models import (
    CreateRequestResponse,
    ErrorBody,
    ErrorDetail,
    RequestRecord,
    RequestView,
    Status,
    StylesView,
    utcnow,
)
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.quota import DailyQuota, QuotaExceeded, hashing_key
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.styles import catalogue
from reimagine.suppression import AddressSuppressed, SuppressionList
from reimagine.web import opt_in, result_page
from reimagine.web.policy import content_security_policy

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "uploads_bucket", "results_bucket")
require_settings(*REQUIRED_SETTINGS)
catalogue(settings().styles)  # a STYLES setting that does not parse stops the init, saying why

app = APIGatewayHttpResolver(enable_validation=True)

_JSON = content_types.APPLICATION_JSON
_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, code: str, message: str, details: Any = None, headers: dict | None = None) -> Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return Response(
        status_code=status,
        content_type=_JSON,
        body=body.model_dump(mode="json", exclude_none=True),
        headers={**_NO_STORE, **(headers or {})},
    )


def _error_doc(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {_JSON: {"model": ErrorBody}}}


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response:
    # Only where and what, in our words (reimagine.validation_words): never echo the submitted values.
    errors = list(exc.errors())
    details = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "message": validation_words.plain_message(err),
            "type": err.get("type"),
        }
        for err in errors
    ]
    return _error(422, "VALIDATION_ERROR", validation_words.summary(errors), details)


class UnknownRequest(Exception):
    """No request has this id (Powertools' own NotFoundError means "no such route")."""


@app.exception_handler(UnknownRequest)
def _unknown_request(exc: UnknownRequest) -> Response:
    return _error(404, "NOT_FOUND", "no request with that id")


@app.exception_handler(QuotaExceeded)
def _over_quota(exc: QuotaExceeded) -> Response:
    # One handler for the address, source-IP and stack-wide limits: each has its own code and message.
    metrics.add_metric(name="QuotaExceeded", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Refused{exc.code.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    return _error(
        429,
        exc.code,
        exc.message,
        {"limit": exc.limit, "retry_after_seconds": exc.retry_after},
        headers={"Retry-After": str(exc.retry_after)},
    )


@app.exception_handler(AddressSuppressed)
def _suppressed(exc: AddressSuppressed) -> Response:
    metrics.add_metric(name="SuppressedAddressRefused", unit=MetricUnit.Count, value=1)
    return _error(
        422,
        "ADDRESS_SUPPRESSED",
        "mail to this address bounced permanently, was reported as unwanted or was unsubscribed, so no more is "
        "sent to it; "
        "use another address",
    )


@app.exception_handler(api_steps.UploadTooLarge)
def _upload_too_large(exc: api_steps.UploadTooLarge) -> Response:
    return _error(
        413,
        "UPLOAD_TOO_LARGE",
        f"the image may be at most {exc.limit} bytes ({exc.limit / 2**20:.0f} MiB); this one is {exc.size}",
        {"max_bytes": exc.limit},
    )


@app.exception_handler(api_steps.UnknownStyle)
def _unknown_style(exc: api_steps.UnknownStyle) -> Response:
    return _error(
        422,
        "UNKNOWN_STYLE",
        f"there is no such style; choose one of: {', '.join(exc.allowed)}",
        {"allowed": exc.allowed},
    )


@app.not_found
def _no_route(exc: NotFoundError) -> Response:
    return _error(404, "ROUTE_NOT_FOUND", "no such route")


@app.post(
    "/requests",
    summary="Create a request and get its presigned upload",
    description="Returns a presigned S3 POST bound to this request's key, content type and size range.",
    responses={
        201: {"description": "Created", "content": {_JSON: {"model": CreateRequestResponse}}},
        400: _error_doc("The body is not UTF-8 JSON"),
        413: _error_doc(
            f"The declared size is over the upload limit (details.max_bytes), or the body over {MAX_BODY_BYTES} bytes"
        ),
        415: _error_doc("The body is not labelled application/json (a missing Content-Type included)"),
        422: _error_doc("The body is not valid, or the address gets no more mail (ADDRESS_SUPPRESSED)"),
        429: _error_doc(
            "A daily limit is used up (QUOTA_EXCEEDED: this address; IP_QUOTA_EXCEEDED: this network "
            "address; DAILY_BUDGET_EXHAUSTED: the whole service); see Retry-After"
        ),
    },
    tags=["requests"],
)
def create_request(body: CreateRequestBody) -> Response[CreateRequestResponse]:
    cfg = settings()
    created = api_steps.create_request(
        body,
        store=clients.store(),
        s3=clients.s3(),
        settings=cfg,
        quota=DailyQuota.from_settings(clients.dynamodb(), cfg),
        source_ip=app.current_event.request_context.http.source_ip,
        suppressions=SuppressionList.from_settings(clients.dynamodb(), cfg),
    )
    logger.set_correlation_id(created.id)
    logger.info("request created", extra={"content_type": body.content_type})
    metrics.add_metric(name="RequestsCreated", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=201,
        content_type=_JSON,
        body=created,
        headers={**_NO_STORE, "Location": created.links.self_},
    )


def _record_or_404(request_id: str) -> RequestRecord:
    record = api_steps.find_request(request_id, store=clients.store())
    if record is None:
        raise UnknownRequest
    logger.set_correlation_id(record.id)
    return record


@app.get(
    "/requests/<request_id>",
    summary="Read a request's status",
    description="The email is masked; a fresh presigned result URL is included once COMPLETED.",
    responses={
        200: {"description": "The request", "content": {_JSON: {"model": RequestView}}},
        404: _error_doc("Unknown id"),
    },
    tags=["requests"],
)
def get_request(request_id: str) -> Response[RequestView]:
    record = _record_or_404(request_id)
    view = api_steps.view_request(record, s3=clients.s3(), settings=settings())
    return Response(status_code=200, content_type=_JSON, body=view, headers=_NO_STORE)


@app.get(
    "/requests/<request_id>/result",
    summary="Redirect to the result image",
    description="A stable link: 302 to a fresh presigned URL once COMPLETED, 409 before that.",
    responses={
        302: {"description": "Redirect to the image"},
        404: _error_doc("Unknown id"),
        409: _error_doc("No result (yet)"),
    },
    tags=["requests"],
)
def get_result(request_id: str):
    record = _record_or_404(request_id)
    try:
        link = api_steps.result_link(record, s3=clients.s3(), settings=settings())
    except api_steps.NotReady:
        return _error(409, "RESULT_NOT_READY", _NO_RESULT.get(record.status, _NOT_YET), {"status": record.status})
    return Response(status_code=302, headers={**_NO_STORE, "Location": link.url}, body="")


@app.get(
    "/styles",
    summary="The styles a request may choose",
    description="`default` is used when `POST /requests` names no style.",
    responses={200: {"description": "The styles on offer", "content": {_JSON: {"model": StylesView}}}},
    tags=["styles"],
)
def list_styles() -> Response[StylesView]:
    return Response(status_code=200, content_type=_JSON, body=api_steps.list_styles(settings()))


def _bearer() -> str | None:
    value = app.current_event.headers.get("authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@app.delete(
    "/requests/<request_id>",
    summary="Delete a finished request now: its photo, its picture, its address and caption",
    description="Needs `Authorization: Bearer <key>`, the delete key the request's email carries (the "
    "`key` in its result page link). The record stays as a tombstone reading DELETED until it expires. "
    "Deleting again is fine.",
    responses={
        200: {"description": "Deleted (or already deleted)", "content": {_JSON: {"model": RequestView}}},
        403: _error_doc("No delete key, or not this request's"),
        404: _error_doc("Unknown id"),
        409: _error_doc("The request has not finished yet"),
    },
    tags=["requests"],
)
def delete_request(request_id: str):
    cfg = settings()
    record = _record_or_404(request_id)
    if not may_delete(record.id, _bearer(), hashing_key(cfg)):
        return _error(
            403,
            "DELETE_KEY_REQUIRED",
            "only the link in the email can delete this request: open the result page from that email",
        )
    try:
        tombstone = deletion.delete_request(record, store=clients.store(), s3=clients.s3(), settings=cfg)
    except deletion.NotFinished:
        return _error(409, "NOT_FINISHED", "the request is still being worked on; delete it once it has finished")
    logger.info("request deleted by its owner")
    metrics.add_metric(name="RequestsDeleted", unit=MetricUnit.Count, value=1)
    view = api_steps.view_request(tombstone, s3=clients.s3(), settings=cfg)
    return Response(status_code=200, content_type=_JSON, body=view, headers=_NO_STORE)


@app.get("/results/<request_id>", summary="The result page a person opens from the email", include_in_schema=False)
def result_page_route(request_id: str):
    cfg = settings()
    record = api_steps.find_request(request_id, store=clients.store())
    page = result_page.render(record, s3=clients.s3(), settings=cfg)
    return Response(
        status_code=200 if record is not None else 404,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers={**_NO_STORE, **page.headers},
    )


_NOT_YET = "the new picture is not ready yet; try again in a moment"
_NO_RESULT = {
    Status.FAILED: "this request failed, so it has no picture; see its error",
    Status.DELETED: "the pictures were deleted at their owner's request",
}


def _html(status: int, body: str) -> Response:
    return Response(status_code=status, content_type=opt_in.CONTENT_TYPE, body=body, headers=opt_in.HEADERS)


# A refused token: 404 when it was never issued, 410 when it was but cannot be used any more.
_REFUSED_STATUS = {"unknown": 404, "used": 410, "expired": 410}
_HTML_DOC: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    "text/html": {"schema": {"type": "string"}}
}
_PAGE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "An HTML page", "content": _HTML_DOC},
    404: {"description": "Unknown link (an HTML page)", "content": _HTML_DOC},
    410: {"description": "Used or expired link (an HTML page)", "content": _HTML_DOC},
}


@app.get(
    "/confirm/<token>",
    summary="The confirmation link's page: one button, confirms nothing",
    description="Mail scanners and previews fetch links with GET, so this only shows the button that POSTs.",
    responses=_PAGE_RESPONSES,
    tags=["addresses"],
)
def confirm_page(token: str):
    verdict = Confirmations.from_settings(clients.dynamodb(), settings()).check(token)
    if verdict != "confirmed":
        return _html(_REFUSED_STATUS[verdict], opt_in.CONFIRM_REFUSED[verdict])
    return _html(200, opt_in.CONFIRM_ASK)


@app.post(
    "/confirm/<token>",
    summary="Confirm the address (the page's button)",
    description="Single use; the mailbox's requests in AWAITING_CONFIRMATION resume at once.",
    responses=_PAGE_RESPONSES,
    tags=["addresses"],
)
def confirm_address(token: str):
    cfg = settings()
    confirmations = Confirmations.from_settings(clients.dynamodb(), cfg)
    done = confirmations.confirm(token)
    if done.verdict != "confirmed":
        return _html(_REFUSED_STATUS[done.verdict], opt_in.CONFIRM_REFUSED[done.verdict])
    moved = resume(done.waiting, confirmations=confirmations, s3=clients.s3(), uploads_bucket=cfg.uploads_bucket)
    logger.info("address confirmed", extra={"resumed": moved})
    metrics.add_metric(name="AddressConfirmed", unit=MetricUnit.Count, value=1)
    return _html(200, opt_in.CONFIRMED)


@app.get(
    "/unsubscribe/<token>",
    summary="The unsubscribe link's page: one button, changes nothing",
    responses={200: _PAGE_RESPONSES[200], 404: _PAGE_RESPONSES[404]},
    tags=["addresses"],
)
def unsubscribe_page(token: str):
    if unsubscribed_digest(token, SuppressionList.from_settings(clients.dynamodb(), settings()).key) is None:
        return _html(404, opt_in.UNSUBSCRIBE_UNKNOWN)
    return _html(200, opt_in.UNSUBSCRIBE_ASK)


@app.post(
    "/unsubscribe/<token>",
    summary="One-click unsubscribe (RFC 8058) and the page's button",
    description="Mail clients POST `List-Unsubscribe=One-Click`; the mailbox gets no more mail (ADDRESS_SUPPRESSED).",
    responses={200: _PAGE_RESPONSES[200], 404: _PAGE_RESPONSES[404]},
    tags=["addresses"],
)
def unsubscribe(token: str):
    suppressions = SuppressionList.from_settings(clients.dynamodb(), settings())
    digest = unsubscribed_digest(token, suppressions.key)
    if digest is None:
        return _html(404, opt_in.UNSUBSCRIBE_UNKNOWN)
    suppressions.unsubscribe(digest, at=utcnow())
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    return _html(200, opt_in.UNSUBSCRIBED)


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi():
    return Response(
        status_code=200,
        content_type=_JSON,
        body=app.get_openapi_json_schema(title="reimagine", version="1.0.0"),
    )


@functools.cache
def _page_html(max_upload_bytes: int, styles_setting: str = "") -> str:
    """The page, built once per container: this stack's upload limit in the tag it checks files against,
    and this stack's styles as a group of radio buttons (markup only: the hashed script and style stay)."""
    html = resources.files("reimagine.web").joinpath("index.html").read_text(encoding="utf-8")
    html = re.sub(r'(<meta name="max-upload-bytes" content=")\d+(">)', rf"\g<1>{max_upload_bytes}\g<2>", html, count=1)
    return html.replace("<!--styles-->", result_page.style_choices(catalogue(styles_setting)), 1)


def _page_policy(max_upload_bytes: int, uploads_bucket: str, results_bucket: str) -> str:
    return _policy_for(max_upload_bytes, uploads_bucket, results_bucket, clients.s3().meta.endpoint_url)


@functools.cache
def _policy_for(max_upload_bytes: int, uploads_bucket: str, results_bucket: str, s3_endpoint: str) -> str:
    """Computed once per container (and S3 endpoint): the buckets' origins are those of URLs signed here."""
    s3 = clients.s3()
    return content_security_policy(
        _page_html(max_upload_bytes, settings().styles),
        upload_origin=storage.upload_origin(s3, bucket=uploads_bucket),
        result_origin=storage.result_origin(s3, bucket=results_bucket),
    )


@app.get("/", summary="The web page", include_in_schema=False)
def page():
    cfg = settings()
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=_page_html(cfg.max_upload_bytes, cfg.styles),
        headers={
            # The page talks to this API and posts straight to S3; nothing else is loaded or run.
            "Content-Security-Policy": _page_policy(cfg.max_upload_bytes, cfg.uploads_bucket, cfg.results_bucket),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> dict:
    return _unparseable_body(event) or app.resolve(_json_type_in_lower_case(event), context)


_FORM_PATHS = ("/confirm/", "/unsubscribe/")


def _media_type(event: dict) -> str:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _unparseable_body(event: dict) -> dict | None:
    """Bodies the validator would choke on (not JSON, not UTF-8, too big, nested too deep, numbers too
    long) are the client's error: 415, 400, 413 or 422 in the error shape, never a 500."""
    is_post = (event.get("requestContext") or {}).get("http", {}).get("method", "").upper() == "POST"
    if str(event.get("rawPath", "")).startswith(_FORM_PATHS):
        return None  # the pages' buttons and mail clients' one-click POST forms, not JSON; the body is unused
    if not event.get("body") and not is_post:
        return None
    # A POST must say it is JSON: without a media type the validator would parse it as JSON anyway.
    if _media_type(event) != "application/json":
        return _raw_error(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    if not event.get("body"):
        return None  # an empty JSON POST: the validator says the body is missing
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(event["body"])
        except ValueError:  # binascii.Error
            return _raw_error(400, "INVALID_BODY", "the body is not UTF-8 JSON")
    else:
        body = str(event["body"]).encode("utf-8")
    problem = check_json_body(body)
    return _raw_error(problem.status, problem.code, problem.message, problem.details) if problem else None


def _json_type_in_lower_case(event: dict) -> dict:
    """Media types are case-insensitive (RFC 9110); the validator matches `application/json` exactly."""
    if _media_type(event) != "application/json":
        return event
    headers = {
        k: ("application/json" + v.strip()[len("application/json") :] if k.lower() == "content-type" else v)
        for k, v in event["headers"].items()
    }
    return {**event, "headers": headers}


def _raw_error(status: int, code: str, message: str, details: Any = None) -> dict:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return {
        "statusCode": status,
        "headers": {"Content-Type": _JSON, **_NO_STORE},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }
