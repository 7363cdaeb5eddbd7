"""HTTP requests as API Gateway HTTP API (payload format 2.0) events, and Lambda results back as HTTP.

Routes come from the HttpApi as SAM translates it (its OpenAPI paths). Matching follows HttpApi's
precedence: an exact path wins over one with `{param}` segments, which wins over a greedy `{proxy+}`;
`ANY` matches every method.
`Gateway` puts routing, CORS, events and responses together, as HttpApi does in front of the functions.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, unquote

from reimagine_emulator.throttling import RouteThrottles
from reimagine_tools.template import LOCAL_API_ID, ApiThrottling, Cors, HttpRoute

T = TypeVar("T")

log = logging.getLogger("reimagine_emulator")

NOT_FOUND_BODY = b'{"message":"Not Found"}'

# Bodies of these types reach the function as text; anything else is base64, as HttpApi does.
_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|[\w.+-]+\+(json|xml)))", re.IGNORECASE
)


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route: HttpRoute
    target: T
    path_parameters: dict[str, str]


class Router(Generic[T]):
    """Matches (method, path) against the declared routes; each route carries a target (the function)."""

    def __init__(self, routes: Sequence[tuple[HttpRoute, T]]) -> None:
        compiled = [(_compile(route.path), route, target) for route, target in routes]
        # Most specific first: exact before {param} before {proxy+} before $default, longer paths first.
        self._routes = sorted(
            compiled,
            key=lambda item: (
                2 if item[1].path == "/$default" else int("+}" in item[1].path),
                item[1].path.count("{"),
                -item[1].path.count("/"),
                item[1].method == "ANY",
            ),
        )

    def match(self, method: str, path: str) -> RouteMatch[T] | None:
        for pattern, route, target in self._routes:
            if route.method not in ("ANY", method.upper()):
                continue
            found = pattern.fullmatch(path)
            if found:
                params = {name: unquote(value) for name, value in found.groupdict().items()}
                return RouteMatch(route, target, params)
        return None


def _compile(path: str) -> re.Pattern[str]:
    if path == "/$default":
        return re.compile(r"/.*")
    parts = []
    for segment in path.strip("/").split("/") if path != "/" else []:
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif param:
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts))


def build_event(
    *,
    route: HttpRoute,
    path_parameters: Mapping[str, str],
    method: str,
    raw_path: str,
    raw_query: str = "",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes | None = None,
    source_ip: str = "127.0.0.1",
    domain_name: str = "localhost",
    account_id: str = "123456789012",
    api_id: str = LOCAL_API_ID,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for this request and route."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":  # cookies move to their own list, the header is dropped
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    joined.setdefault("host", domain_name)
    now = now or datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": joined["host"],
            "domainPrefix": joined["host"].split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": _request_id(),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if _is_text(joined.get("content-type", ""), body):
            event["body"] = body.decode("utf-8")
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def _request_id() -> str:
    # API Gateway's ids look like "JKJaXmPLvHcESHA="; a short random one serves the same purpose.
    return base64.b64encode(uuid.uuid4().bytes[:10]).decode("ascii")


def _is_text(content_type: str, body: bytes) -> bool:
    if content_type and not _TEXT_TYPES.match(content_type.strip()):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class HttpResponse:
    """A Lambda result as HTTP. Unpacks as `status, headers, body`; cookies become Set-Cookie lines."""

    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.headers, self.body))

    def header_lines(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), *(("Set-Cookie", cookie) for cookie in self.cookies)]

    def json(self) -> Any:
        return json.loads(self.body)


def to_http_response(result: Any) -> HttpResponse:
    """Interpret a function's return value by the payload 2.0 rules."""
    if isinstance(result, Mapping) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        # multiValueHeaders belong to payload 1.0; HttpApi 2.0 ignores them, so do we.
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = (raw if isinstance(raw, str) else json.dumps(raw)).encode("utf-8")
        return HttpResponse(int(result["statusCode"]), headers, body, list(result.get("cookies") or []))
    # No statusCode: HttpApi assumes 200, JSON, and the whole result as the body.
    body = (result if isinstance(result, str) else json.dumps(result)).encode("utf-8")
    return HttpResponse(200, {"content-type": "application/json"}, body)


def not_found() -> HttpResponse:
    return HttpResponse(404, {"content-type": "application/json"}, NOT_FOUND_BODY)


MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HttpApi's request payload limit


def payload_too_large() -> HttpResponse:
    return HttpResponse(413, {"content-type": "application/json"}, b'{"message":"Request too long"}')


def too_many_requests() -> HttpResponse:
    """API Gateway's answer to a request over its route's throttling limits."""
    return HttpResponse(429, {"content-type": "application/json"}, b'{"message":"Too Many Requests"}')


def bad_request() -> HttpResponse:
    """A request HttpApi cannot read (a Content-Length that is not a length): its 400, not a dropped connection."""
    return HttpResponse(400, {"content-type": "application/json"}, b'{"message":"Bad Request"}')


def _allowed_origin(cors: Cors, origin: str) -> str | None:
    if "*" in cors.allow_origins and not cors.allow_credentials:
        return "*"
    return origin if origin in cors.allow_origins or "*" in cors.allow_origins else None


def preflight(cors: Cors, headers: Mapping[str, str]) -> HttpResponse | None:
    """HttpApi's own answer to a CORS preflight (OPTIONS with Origin and a requested method)."""
    origin, method = headers.get("origin"), headers.get("access-control-request-method")
    if not origin or not method:
        return None
    allowed = _allowed_origin(cors, origin)
    if allowed is None or not ({"*", method.upper()} & set(cors.allow_methods)):
        return HttpResponse(204, {}, b"")
    out = {"access-control-allow-origin": allowed, "access-control-allow-methods": ",".join(cors.allow_methods)}
    if cors.allow_headers:
        out["access-control-allow-headers"] = ",".join(cors.allow_headers)
    if cors.max_age is not None:
        out["access-control-max-age"] = str(cors.max_age)
    if cors.allow_credentials:
        out["access-control-allow-credentials"] = "true"
    return HttpResponse(204, out, b"")


def add_cors_headers(cors: Cors, headers: Mapping[str, str], response: HttpResponse) -> HttpResponse:
    """The headers HttpApi adds to a response for an allowed Origin."""
    origin = headers.get("origin")
    allowed = _allowed_origin(cors, origin) if origin else None
    if allowed is not None:
        response.headers["access-control-allow-origin"] = allowed
        if cors.expose_headers:
            response.headers["access-control-expose-headers"] = ",".join(cors.expose_headers)
        if cors.allow_credentials:
            response.headers["access-control-allow-credentials"] = "true"
    return response


INTERNAL_ERROR_BODY = b'{"message":"Internal Server Error"}'


class Gateway(Generic[T]):
    """The HttpApi in front of the functions: preflight, route, event, invoke, response, CORS headers.

    `invoke(target, event)` runs the route's function and returns its result; a method or path no
    route has is HttpApi's 404, whatever the method (TRACE included), and a function that raises is
    its 500, so no request gets an answer HttpApi would not give. A request over its route's
    throttling (the stage's token buckets) is 429 without invoking anything.
    """

    def __init__(
        self,
        router: Router[T],
        invoke: Callable[[T, dict[str, Any]], Any],
        *,
        cors: Cors | None,
        host: str,
        account_id: str,
        name_of: Callable[[T], str] = str,
        throttling: ApiThrottling | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.router, self._invoke, self.cors = router, invoke, cors
        self.host, self.account_id, self._name_of = host, account_id, name_of
        self._throttles = RouteThrottles(throttling, clock)

    def handle(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] = (),
        *,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        pairs = list(headers)
        raw_path, _, raw_query = path.partition("?")
        lowered = {name.lower(): value for name, value in pairs}
        if self.cors and method.upper() == "OPTIONS":
            answer = preflight(self.cors, lowered)
            if answer is not None:
                return answer
        match = self.router.match(method, raw_path)
        if match is None:
            return not_found()
        if not self._throttles.allow(match.route.route_key):
            log.info("%s http %s %s 429 throttled", self._name_of(match.target), method.upper(), raw_path)
            refused = too_many_requests()
            return add_cors_headers(self.cors, lowered, refused) if self.cors else refused
        if "host" not in lowered:
            pairs.append(("host", self.host))
        event = build_event(
            route=match.route,
            path_parameters=match.path_parameters,
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=pairs,
            body=body,
            source_ip=source_ip,
            account_id=self.account_id,
        )
        name = self._name_of(match.target)
        started = time.perf_counter()
        try:
            response = to_http_response(self._invoke(match.target, event))
        except Exception:
            log.exception("%s http %s raised", name, match.route.route_key)
            response = HttpResponse(500, {"content-type": "application/json"}, INTERNAL_ERROR_BODY)
        if self.cors:
            response = add_cors_headers(self.cors, lowered, response)
        elapsed_ms = (time.perf_counter() - started) * 1000
        # The route template, as the stage's access log has it: a path may carry a token (/confirm/{token}).
        log.info("%s http %s %d %.0f ms", name, match.route.route_key, response.status, elapsed_ms)
        return response
