"""ApiFunction: the HTTP API's routes (HttpApi payload 2.0) and its generated OpenAPI document.

The resolver, the one answer to every refusal (an ApiError) and the checks before the resolver are in
reimagine.handlers.api_app; the HTML pages are in reimagine.web. Routes that return a bare Response
carry no return annotation: Powertools validates bodies against it.
"""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients, deletion
from reimagine.body_guard import MAX_BODY_BYTES
from reimagine.capability import DeleteKeyRequired, may_delete
from reimagine.config import require_settings, settings
from reimagine.confirmation import Confirmations, resume, unsubscribed_digest
from reimagine.handlers.api_app import JSON, NO_STORE, error_doc, resolve, resolver
from reimagine.models import CreateRequestResponse, RequestRecord, RequestView, StylesView, utcnow
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.quota import DailyQuota, hashing_key
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.styles import catalogue
from reimagine.suppression import SuppressionList
from reimagine.web import opt_in, responses

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "uploads_bucket", "results_bucket")
require_settings(*REQUIRED_SETTINGS)
catalogue(settings().styles)  # a STYLES setting that does not parse stops the init, saying why

app = resolver()


@app.post(
    "/requests",
    summary="Create a request and get its presigned upload",
    description="Returns a presigned S3 POST bound to this request's key, content type and size range.",
    responses={
        201: {"description": "Created", "content": {JSON: {"model": CreateRequestResponse}}},
        400: error_doc("The body is not UTF-8 JSON"),
        413: error_doc(
            f"The declared size is over the upload limit (details.max_bytes), or the body over {MAX_BODY_BYTES} bytes"
        ),
        415: error_doc("The body is not labelled application/json (a missing Content-Type included)"),
        422: error_doc("The body is not valid, or the address gets no more mail (ADDRESS_SUPPRESSED)"),
        429: error_doc(
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
        content_type=JSON,
        body=created,
        headers={**NO_STORE, "Location": created.links.self_},
    )


def _record_or_404(request_id: str) -> RequestRecord:
    record = api_steps.get_request(request_id, store=clients.store())
    logger.set_correlation_id(record.id)
    return record


@app.get(
    "/requests/<request_id>",
    summary="Read a request's status",
    description="The email is masked; a fresh presigned result URL is included once COMPLETED.",
    responses={
        200: {"description": "The request", "content": {JSON: {"model": RequestView}}},
        404: error_doc("Unknown id"),
    },
    tags=["requests"],
)
def get_request(request_id: str) -> Response[RequestView]:
    record = _record_or_404(request_id)
    view = api_steps.view_request(record, s3=clients.s3(), settings=settings())
    return Response(status_code=200, content_type=JSON, body=view, headers=NO_STORE)


@app.get(
    "/requests/<request_id>/result",
    summary="Redirect to the result image",
    description="A stable link: 302 to a fresh presigned URL once COMPLETED, 409 before that.",
    responses={
        302: {"description": "Redirect to the image"},
        404: error_doc("Unknown id"),
        409: error_doc("No result (yet)"),
    },
    tags=["requests"],
)
def get_result(request_id: str):
    record = _record_or_404(request_id)
    link = api_steps.result_link(record, s3=clients.s3(), settings=settings())
    return Response(status_code=302, headers={**NO_STORE, "Location": link.url}, body="")


@app.get(
    "/styles",
    summary="The styles a request may choose",
    description="`default` is used when `POST /requests` names no style.",
    responses={200: {"description": "The styles on offer", "content": {JSON: {"model": StylesView}}}},
    tags=["styles"],
)
def list_styles() -> Response[StylesView]:
    return Response(status_code=200, content_type=JSON, body=api_steps.list_styles(settings()))


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
        200: {"description": "Deleted (or already deleted)", "content": {JSON: {"model": RequestView}}},
        403: error_doc("No delete key, or not this request's"),
        404: error_doc("Unknown id"),
        409: error_doc("The request has not finished yet"),
    },
    tags=["requests"],
)
def delete_request(request_id: str):
    cfg = settings()
    record = _record_or_404(request_id)
    if not may_delete(record.id, _bearer(), hashing_key(cfg)):
        raise DeleteKeyRequired
    tombstone = deletion.delete_request(record, store=clients.store(), s3=clients.s3(), settings=cfg)
    logger.info("request deleted by its owner")
    metrics.add_metric(name="RequestsDeleted", unit=MetricUnit.Count, value=1)
    view = api_steps.view_request(tombstone, s3=clients.s3(), settings=cfg)
    return Response(status_code=200, content_type=JSON, body=view, headers=NO_STORE)


@app.get("/results/<request_id>", summary="The result page a person opens from the email", include_in_schema=False)
def result_page_route(request_id: str):
    record = api_steps.find_request(request_id, store=clients.store())
    return responses.result(record, s3=clients.s3(), settings=settings())


@app.get(
    "/confirm/<token>",
    summary="The confirmation link's page: one button, confirms nothing",
    description="Mail scanners and previews fetch links with GET, so this only shows the button that POSTs.",
    responses=responses.LINK_PAGE_RESPONSES,
    tags=["addresses"],
)
def confirm_page(token: str):
    verdict = Confirmations.from_settings(clients.dynamodb(), settings()).check(token)
    if verdict != "confirmed":
        return responses.link_page(responses.REFUSED_STATUS[verdict], opt_in.CONFIRM_REFUSED[verdict])
    return responses.link_page(200, opt_in.CONFIRM_ASK)


@app.post(
    "/confirm/<token>",
    summary="Confirm the address (the page's button)",
    description="Single use; the mailbox's requests in AWAITING_CONFIRMATION resume at once.",
    responses=responses.LINK_PAGE_RESPONSES,
    tags=["addresses"],
)
def confirm_address(token: str):
    cfg = settings()
    confirmations = Confirmations.from_settings(clients.dynamodb(), cfg)
    done = confirmations.confirm(token)
    if done.verdict != "confirmed":
        return responses.link_page(responses.REFUSED_STATUS[done.verdict], opt_in.CONFIRM_REFUSED[done.verdict])
    moved = resume(done.waiting, confirmations=confirmations, s3=clients.s3(), uploads_bucket=cfg.uploads_bucket)
    logger.info("address confirmed", extra={"resumed": moved})
    metrics.add_metric(name="AddressConfirmed", unit=MetricUnit.Count, value=1)
    return responses.link_page(200, opt_in.CONFIRMED)


@app.get(
    "/unsubscribe/<token>",
    summary="The unsubscribe link's page: one button, changes nothing",
    responses={200: responses.LINK_PAGE_RESPONSES[200], 404: responses.LINK_PAGE_RESPONSES[404]},
    tags=["addresses"],
)
def unsubscribe_page(token: str):
    if unsubscribed_digest(token, SuppressionList.from_settings(clients.dynamodb(), settings()).key) is None:
        return responses.link_page(404, opt_in.UNSUBSCRIBE_UNKNOWN)
    return responses.link_page(200, opt_in.UNSUBSCRIBE_ASK)


@app.post(
    "/unsubscribe/<token>",
    summary="One-click unsubscribe (RFC 8058) and the page's button",
    description="Mail clients POST `List-Unsubscribe=One-Click`; the mailbox gets no more mail (ADDRESS_SUPPRESSED).",
    responses={200: responses.LINK_PAGE_RESPONSES[200], 404: responses.LINK_PAGE_RESPONSES[404]},
    tags=["addresses"],
)
def unsubscribe(token: str):
    suppressions = SuppressionList.from_settings(clients.dynamodb(), settings())
    digest = unsubscribed_digest(token, suppressions.key)
    if digest is None:
        return responses.link_page(404, opt_in.UNSUBSCRIBE_UNKNOWN)
    suppressions.unsubscribe(digest, at=utcnow())
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    return responses.link_page(200, opt_in.UNSUBSCRIBED)


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi():
    return Response(
        status_code=200,
        content_type=JSON,
        body=app.get_openapi_json_schema(title="reimagine", version="1.0.0"),
    )


@app.get("/", summary="The web page", include_in_schema=False)
def page():
    return responses.web_page(settings(), clients.s3())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> dict:
    return resolve(app, event, context)
