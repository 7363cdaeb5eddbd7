"""The ApiFunction's plumbing: the resolver, the one way a refusal is answered, and the checks that run
before the resolver. The routes are in reimagine.handlers.api.

Every refusal is an ApiError (reimagine.errors): raised by a step or a route, by the validator (mapped
here) or by the body checks below, it is answered by `refuse`, as `{"error": {"code", "message",
"details"?}}` with its status and headers.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine.body_guard import InvalidBody, UnsupportedMediaType, check_json_body
from reimagine.errors import ApiError
from reimagine.models import ErrorBody, ErrorDetail
from reimagine.observability import metrics
from reimagine.validation_words import InvalidRequest

JSON = content_types.APPLICATION_JSON
NO_STORE = {"Cache-Control": "no-store"}


class RouteNotFound(ApiError):
    """No route has this method and path (an unknown request id is UnknownRequest: NOT_FOUND)."""

    def __init__(self) -> None:
        super().__init__(404, "ROUTE_NOT_FOUND", "no such route")


def error_response(error: ApiError) -> Response:
    """The one shape of every refusal; `details` only when the error has some."""
    body = ErrorBody(error=ErrorDetail(code=error.code, message=error.message, details=error.details))
    return Response(
        status_code=error.status,
        content_type=JSON,
        body=body.model_dump_json(exclude_none=True),
        headers={**NO_STORE, **error.headers},
    )


def error_doc(description: str) -> OpenAPIResponse:
    """A refusal in the OpenAPI document."""
    return {"description": description, "content": {JSON: {"model": ErrorBody}}}


def refuse(error: ApiError) -> Response:
    """The answer to every refusal: counted when it has metrics, then rendered in the one shape."""
    for name in error.counted_as:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return error_response(error)


def _invalid(exc: RequestValidationError) -> Response:
    return refuse(InvalidRequest.from_errors(list(exc.errors())))


def _no_route(exc: NotFoundError) -> Response:
    return refuse(RouteNotFound())


def resolver() -> APIGatewayHttpResolver:
    """A resolver that validates requests and answers every refusal with `refuse`: one per import of
    the routes' module, so a reloaded module registers its routes on a resolver of its own."""
    app = APIGatewayHttpResolver(enable_validation=True)
    app.exception_handler(ApiError)(refuse)
    app.exception_handler(RequestValidationError)(_invalid)
    app.not_found(_no_route)
    return app


def resolve(app: APIGatewayHttpResolver, event: dict, context: LambdaContext) -> dict:
    """Answer one HttpApi event: a body the validator would choke on is refused before it runs."""
    refused = _unparseable_body(event)
    if refused is not None:
        return _proxy_result(refuse(refused))
    return app.resolve(_json_type_in_lower_case(event), context)


def _proxy_result(response: Response) -> dict[str, Any]:
    """A Response as the HttpApi (payload 2.0) result, for answers given without the resolver."""
    return {
        "statusCode": response.status_code,
        "headers": response.headers,
        "body": response.body,
        "isBase64Encoded": False,
    }


_FORM_PATHS = ("/confirm/", "/unsubscribe/")


def _media_type(event: dict) -> str:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _unparseable_body(event: dict) -> ApiError | None:
    """Bodies the validator would choke on (not JSON, not UTF-8, too big, nested too deep, numbers too
    long) are the client's error: 415, 400, 413 or 422 in the error shape, never a 500."""
    is_post = (event.get("requestContext") or {}).get("http", {}).get("method", "").upper() == "POST"
    if str(event.get("rawPath", "")).startswith(_FORM_PATHS):
        return None  # the pages' buttons and mail clients' one-click POST forms, not JSON; the body is unused
    if not event.get("body") and not is_post:
        return None
    # A POST must say it is JSON: without a media type the validator would parse it as JSON anyway.
    if _media_type(event) != "application/json":
        return UnsupportedMediaType()
    if not event.get("body"):
        return None  # an empty JSON POST: the validator says the body is missing
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(event["body"])
        except ValueError:  # binascii.Error
            return InvalidBody()
    else:
        body = str(event["body"]).encode("utf-8")
    return check_json_body(body)


def _json_type_in_lower_case(event: dict) -> dict:
    """Media types are case-insensitive (RFC 9110); the validator matches `application/json` exactly."""
    if _media_type(event) != "application/json":
        return event
    headers = {
        k: ("application/json" + v.strip()[len("application/json") :] if k.lower() == "content-type" else v)
        for k, v in event["headers"].items()
    }
    return {**event, "headers": headers}
