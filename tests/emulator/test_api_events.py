"""HttpApi routes as payload 2.0 events, results back as HTTP, in-process and over a local port."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests

from reimagine_emulator.api_events import Gateway, Router, build_event, to_http_response
from reimagine_emulator.http_server import ApiServer, PortInUse
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import ApiThrottling, Cors, HttpRoute, Throttle, read_application
from tests.fixtures.template import TEMPLATE as PROJECT_TEMPLATE

ROUTES = [
    (HttpRoute("GET", "/requests/{id}"), "get"),
    (HttpRoute("GET", "/requests/{id}/result"), "result"),
    (HttpRoute("GET", "/requests/latest"), "latest"),
    (HttpRoute("POST", "/requests"), "create"),
    (HttpRoute("ANY", "/files/{proxy+}"), "files"),
    (HttpRoute("GET", "/"), "root"),
]


@pytest.mark.parametrize(
    ("method", "path", "target", "params"),
    [
        ("GET", "/requests/abc", "get", {"id": "abc"}),
        ("GET", "/requests/abc/result", "result", {"id": "abc"}),
        ("GET", "/requests/latest", "latest", {}),  # an exact path beats {id}
        ("POST", "/requests", "create", {}),
        ("DELETE", "/files/a/b/c.txt", "files", {"proxy": "a/b/c.txt"}),
        ("GET", "/", "root", {}),
        ("GET", "/requests/a%20b", "get", {"id": "a b"}),
    ],
)
def test_router_matches_the_most_specific_route(method, path, target, params):
    match = Router(ROUTES).match(method, path)
    assert match is not None
    assert (match.target, match.path_parameters) == (target, params)


@pytest.mark.parametrize(("method", "path"), [("POST", "/requests/abc"), ("GET", "/nothing"), ("GET", "/requests/")])
def test_router_has_no_match_for_undeclared_routes(method, path):
    assert Router(ROUTES).match(method, path) is None


def test_event_has_the_payload_2_0_shape():
    now = datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC)
    event = build_event(
        route=HttpRoute("GET", "/requests/{id}"),
        path_parameters={"id": "abc"},
        method="get",
        raw_path="/requests/abc",
        raw_query="a=1&b=2&a=3",
        headers=[
            ("Host", "localhost:3000"),
            ("User-Agent", "pytest"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("Cookie", "s=1; t=2"),
        ],
        body=None,
        source_ip="10.0.0.9",
        now=now,
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /requests/{id}"
    assert event["rawPath"] == "/requests/abc"
    assert event["rawQueryString"] == "a=1&b=2&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["pathParameters"] == {"id": "abc"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["headers"] == {"host": "localhost:3000", "user-agent": "pytest", "x-multi": "1,2"}
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/requests/abc",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.9",
        "userAgent": "pytest",
    }
    assert context["routeKey"] == "GET /requests/{id}"
    assert context["stage"] == "$default"
    assert context["domainName"] == "localhost:3000"
    assert context["time"] == "01/Mar/2024:12:30:05 +0000"
    assert context["timeEpoch"] == int(now.timestamp() * 1000)
    assert context["requestId"] and context["apiId"]


def test_text_bodies_stay_text_and_binary_bodies_are_base64():
    route = HttpRoute("POST", "/requests")
    text = build_event(
        route=route,
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={"Content-Type": "application/json"},
        body=b'{"a": 1}',
    )
    assert (text["body"], text["isBase64Encoded"]) == ('{"a": 1}', False)
    binary = build_event(
        route=route,
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={"Content-Type": "image/png"},
        body=b"\x89PNG\x00",
    )
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x89PNG\x00"


def test_results_become_http_responses():
    full = to_http_response({"statusCode": 302, "headers": {"Location": "https://x"}, "body": "", "cookies": ["a=1"]})
    assert (full.status, full.headers, full.body, full.cookies) == (302, {"Location": "https://x"}, b"", ["a=1"])
    assert ("Set-Cookie", "a=1") in full.header_lines()
    encoded = to_http_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert encoded.body == b"\x00\x01"
    # Without a statusCode, HttpApi answers 200 with the result as JSON
    bare = to_http_response({"hello": "world"})
    assert (bare.status, bare.headers["content-type"], json.loads(bare.body)) == (
        200,
        "application/json",
        {"hello": "world"},
    )
    status, _, body = to_http_response("plain")
    assert (status, body) == (200, b"plain")


API_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowOrigins: [http://app.example]
        AllowMethods: [GET, POST]
        AllowHeaders: [Content-Type]
        ExposeHeaders: [Location]
        MaxAge: 600
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: tests.fixtures.fake_handlers.echo_api
      Events:
        Get:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/things/{id}"}
        Post:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: /things}
        Boom:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /boom}
"""


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory):
    template = tmp_path_factory.mktemp("api") / "template.yaml"
    template.write_text(API_TEMPLATE)
    # In this process: the fake handlers record what they get in this module's state.
    with EmbeddedStack(template, stack_name="apitest", environments=False).start() as stack:
        yield stack


def test_api_invoke_routes_to_the_function_with_the_event(api_stack):
    status, headers, body = api_stack.api_invoke("GET", "/things/42?x=1", headers={"X-Trace": "t"})
    event = json.loads(body)
    assert status == 200
    assert headers["x-route"] == "GET /things/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["headers"]["x-trace"] == "t"
    assert event["headers"]["host"] == "127.0.0.1:3000"


def test_api_invoke_sends_json_bodies(api_stack):
    response = api_stack.api_invoke("POST", "/things", {"email": "a@example.com"})
    event = response.json()
    assert json.loads(event["body"]) == {"email": "a@example.com"}
    assert event["headers"]["content-type"] == "application/json"


def test_unmatched_routes_are_404_like_httpapi(api_stack):
    status, _, body = api_stack.api_invoke("DELETE", "/things/42")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_a_raising_function_is_a_500(api_stack):
    status, _, body = api_stack.api_invoke("GET", "/boom")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_cors_preflight_is_answered_by_the_api(api_stack):
    # Given a preflight from an allowed origin
    status, headers, body = api_stack.api_invoke(
        "OPTIONS", "/things", headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    )
    # Then HttpApi answers it from the CorsConfiguration, without the function
    assert (status, body) == (204, b"")
    assert headers == {
        "access-control-allow-origin": "http://app.example",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "600",
    }
    # And an origin not listed gets no CORS headers
    _, denied, _ = api_stack.api_invoke(
        "OPTIONS", "/things", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in denied


def test_cors_headers_on_responses_for_allowed_origins(api_stack):
    _, allowed, _ = api_stack.api_invoke("GET", "/things/1", headers={"Origin": "http://app.example"})
    assert allowed["access-control-allow-origin"] == "http://app.example"
    assert allowed["access-control-expose-headers"] == "Location"
    _, other, _ = api_stack.api_invoke("GET", "/things/1", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other


def test_http_server_serves_the_routes(api_stack):
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        response = requests.get(f"{server.url}/things/7?y=2", timeout=10)
        assert response.status_code == 200
        assert response.json()["pathParameters"] == {"id": "7"}
        assert response.cookies.get("b") == "2"
        assert requests.post(f"{server.url}/things", json={"a": 1}, timeout=10).json()["body"] == '{"a": 1}'
        assert requests.get(f"{server.url}/missing", timeout=10).status_code == 404
    finally:
        server.stop()


def test_a_server_not_yet_started_refuses_connections_and_stops_at_once(api_stack):
    server = ApiServer(api_stack.api_invoke, port=0)
    with pytest.raises(requests.ConnectionError):  # refused at once, not left waiting
        requests.get(f"{server.url}/things/1", timeout=5)
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive()


def test_http_server_says_when_the_port_is_taken(api_stack):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port}"):
            ApiServer(api_stack.api_invoke, port=port)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "M-SEARCH", "BREW"])
def test_a_method_no_route_has_gets_httpapis_404_over_http(api_stack, method):
    # Given the local HttpApi on a port, whose routes have no such method
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When a client sends it
        response = requests.request(method, f"{server.url}/things/7", timeout=10)
    finally:
        server.stop()
    # Then it gets what HttpApi answers, never http.server's 501 page
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


def _raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` as written, end sending, and read the answer until the server closes the connection."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("content_length", "status_line", "body"),
    [
        (b"ten", b"HTTP/1.1 400 ", b'{"message":"Bad Request"}'),
        (b"-1", b"HTTP/1.1 400 ", b'{"message":"Bad Request"}'),
        (str(10 * 1024 * 1024 + 1).encode(), b"HTTP/1.1 413 ", b'{"message":"Request too long"}'),
    ],
)
def test_a_body_the_server_cannot_take_gets_an_answer_not_a_dropped_connection(
    api_stack, content_length, status_line, body
):
    # Given the local HttpApi on a port
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When a client declares a body length that is not one, or over HttpApi's 10 MB
        answer = _raw_exchange(
            server.url, b"POST /things HTTP/1.1\r\nHost: local\r\nContent-Length: " + content_length + b"\r\n\r\n"
        )
    finally:
        server.stop()
    # Then it gets HttpApi's JSON answer for it, and the connection ends there
    head, _, received = answer.partition(b"\r\n\r\n")
    assert (head.split(b"\r\n")[0].startswith(status_line), received) == (True, body)


def test_the_gateway_routes_invokes_and_adds_cors_in_one_place():
    # Given a gateway over one route, with CORS for one origin
    cors = Cors(allow_origins=("http://app.example",), allow_methods=("GET",))
    seen = []
    gateway = Gateway(
        Router([(HttpRoute("GET", "/things/{id}"), "echo")]),
        lambda target, event: seen.append((target, event)) or {"statusCode": 200, "body": "ok"},
        cors=cors,
        host="api.local",
        account_id="123456789012",
    )
    # When a browser asks for a thing
    response = gateway.handle("GET", "/things/7?x=1", None, [("Origin", "http://app.example")])
    # Then the route's target got the payload 2.0 event and the answer carries the CORS header
    ((target, event),) = seen
    assert (target, event["routeKey"], event["pathParameters"], event["headers"]["host"]) == (
        "echo",
        "GET /things/{id}",
        {"id": "7"},
        "api.local",
    )
    assert (response.status, response.body, response.headers["access-control-allow-origin"]) == (
        200,
        b"ok",
        "http://app.example",
    )


# Chunked bodies ---------------------------------------------------------------------------------------


def test_a_chunked_body_reaches_the_function_whole(api_stack):
    # Given the local HttpApi on a port
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When a client sends its JSON body in chunks (requests does so for an iterator)
        response = requests.post(
            f"{server.url}/things",
            data=iter([b'{"a": ', b"1, ", b'"b": 2}']),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    finally:
        server.stop()
    # Then the function got the whole body, as API Gateway passes it on
    assert response.json()["body"] == '{"a": 1, "b": 2}'


def test_a_chunked_request_is_followed_by_the_next_on_the_same_connection(api_stack):
    # Given the local HttpApi on a port
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When one connection carries a chunked POST (with an extension and a trailer), then a GET
        answer = _raw_exchange(
            server.url,
            b"POST /things HTTP/1.1\r\nHost: local\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: text/plain\r\n\r\n"
            b"3;note=x\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 1\r\n\r\n"
            b"GET /things/9 HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n",
        )
    finally:
        server.stop()
    # Then both are answered by the function, in order, and nothing is read as a request of its own
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200", b"200"]


def test_a_chunked_request_that_also_declares_a_length_is_answered_then_closed(api_stack):
    # Given the local HttpApi on a port
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When a chunked POST also carries a Content-Length (a request smuggler's pair), then a GET
        answer = _raw_exchange(
            server.url,
            b"POST /things HTTP/1.1\r\nHost: local\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
            b"GET /things/9 HTTP/1.1\r\nHost: local\r\n\r\n",
        )
    finally:
        server.stop()
    # Then the POST is answered by its chunks and the connection closes: nothing after it is served
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200"]


@pytest.mark.parametrize(
    ("chunks", "status_line"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", b"HTTP/1.1 400 "),
        (b"5\r\nab", b"HTTP/1.1 400 "),
        (b"A00001\r\n", b"HTTP/1.1 413 "),
    ],
)
def test_a_chunked_body_the_server_cannot_take_gets_an_answer(api_stack, chunks, status_line):
    # Given the local HttpApi on a port
    server = ApiServer(api_stack.api_invoke, port=0).start()
    try:
        # When a chunked body has a size that is not one, ends early, or declares more than 10 MB
        answer = _raw_exchange(
            server.url, b"POST /things HTTP/1.1\r\nHost: local\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
        )
    finally:
        server.stop()
    # Then it gets HttpApi's JSON answer and the connection ends there
    assert answer.startswith(status_line)


# Throttling ---------------------------------------------------------------------------------------------


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled_gateway(clock: FrozenClock, calls: list[str], rate: float = 1.0, burst: int = 3) -> Gateway[str]:
    return Gateway(
        Router([(HttpRoute("POST", "/things"), "post"), (HttpRoute("GET", "/things/{id}"), "get")]),
        lambda target, event: calls.append(target) or {"statusCode": 201, "body": "{}"},
        cors=None,
        host="api.local",
        account_id="123456789012",
        throttling=ApiThrottling(Throttle(rate=rate, burst=burst)),
        clock=clock,
    )


def test_a_request_over_the_routes_burst_is_429_and_never_reaches_the_function():
    # Given a stage throttled to a burst of 3, and no time passing
    calls: list[str] = []
    gateway = throttled_gateway(FrozenClock(), calls)
    # When four POSTs arrive at once
    answers = [gateway.handle("POST", "/things", b"{}") for _ in range(4)]
    # Then the fourth gets API Gateway's 429 and the function ran three times
    assert ([a.status for a in answers], answers[-1].json(), calls) == (
        [201, 201, 201, 429],
        {"message": "Too Many Requests"},
        ["post"] * 3,
    )


def test_the_bucket_refills_at_the_rate_limit():
    # Given a route whose burst was spent (rate 2 a second)
    clock, calls = FrozenClock(), []
    gateway = throttled_gateway(clock, calls, rate=2.0, burst=3)
    for _ in range(3):
        gateway.handle("POST", "/things", b"{}")
    # When one second passes and three more arrive
    clock.now += 1.0
    statuses = [gateway.handle("POST", "/things", b"{}").status for _ in range(3)]
    # Then two tokens came back: two pass, one is refused
    assert statuses == [201, 201, 429]


def test_each_route_has_its_own_bucket():
    # Given a stage whose POST route spent its burst
    calls: list[str] = []
    gateway = throttled_gateway(FrozenClock(), calls)
    for _ in range(4):
        gateway.handle("POST", "/things", b"{}")
    # When a GET arrives on another route
    # Then it is served (DefaultRouteSettings limit each route, not the stage as a whole)
    assert gateway.handle("GET", "/things/1").status == 201


def test_the_template_stage_throttling_is_read_from_the_translated_template():
    # Given the project's template with its default parameters, then with the rate raised
    # When it is read as the local stack reads it
    # Then every route gets the stage's DefaultRouteSettings: burst 20, 10 requests a second
    assert (
        read_application(PROJECT_TEMPLATE).throttling,
        read_application(PROJECT_TEMPLATE, parameters={"ThrottlingRateLimit": "50"}).throttling,
    ) == (ApiThrottling(Throttle(rate=10.0, burst=20)), ApiThrottling(Throttle(rate=50.0, burst=20)))


THROTTLED_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      DefaultRouteSettings:
        ThrottlingBurstLimit: 5
        ThrottlingRateLimit: 0.001
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: tests.fixtures.fake_handlers.echo_api
      Events:
        Post:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: /things}
"""


def test_a_routes_own_settings_replace_the_stage_default_for_that_route(tmp_path):
    # Given a stage whose POST route has throttling of its own
    template = tmp_path / "template.yaml"
    template.write_text(
        THROTTLED_TEMPLATE.replace(
            "        ThrottlingRateLimit: 0.001\n",
            "        ThrottlingRateLimit: 0.001\n"
            "      RouteSettings:\n"
            '        "POST /things": {ThrottlingBurstLimit: 2, ThrottlingRateLimit: 1}\n',
        )
    )
    # When the template is read
    throttling = read_application(template).throttling
    # Then that route gets its own limits and any other the stage's
    assert throttling is not None
    assert (throttling.for_route("POST /things"), throttling.for_route("GET /other")) == (
        Throttle(rate=1.0, burst=2),
        Throttle(rate=0.001, burst=5),
    )


def test_concurrent_posts_over_the_stage_limits_get_429_over_http(tmp_path):
    # Given the local HttpApi of a stage with a burst of 5 and almost no refill
    template = tmp_path / "template.yaml"
    template.write_text(THROTTLED_TEMPLATE)
    with EmbeddedStack(template, stack_name="throttled", environments=False).start() as stack:
        server = ApiServer(stack.api_invoke, port=0).start()
        try:
            # When 20 clients POST at once
            with ThreadPoolExecutor(max_workers=20) as pool:
                statuses = list(
                    pool.map(
                        lambda _: requests.post(f"{server.url}/things", json={}, timeout=30).status_code, range(20)
                    )
                )
        finally:
            server.stop()
    # Then 5 are served and 15 refused with 429
    assert Counter(statuses) == Counter({200: 5, 429: 15})


def test_clients_connecting_faster_than_the_server_accepts_all_get_an_answer(api_stack):
    # Given the local HttpApi listening but not yet accepting (a burst arriving faster than accepts)
    server = ApiServer(api_stack.api_invoke, port=0)
    server.httpd.server_activate()
    parts = urlsplit(server.url)
    clients = []
    try:
        # When 50 clients connect at once, then it serves them
        clients = [socket.create_connection((parts.hostname, parts.port), timeout=5) for _ in range(50)]
        server.start()
        for client in clients:
            client.sendall(b"GET /things/1 HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
        answers = [client.recv(12) for client in clients]
    finally:
        for client in clients:
            client.close()
        server.stop()
    # Then every one of them gets an HTTP answer, none is left unconnected or reset
    assert answers == [b"HTTP/1.1 200"] * 50
