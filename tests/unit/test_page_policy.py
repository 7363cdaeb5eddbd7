"""The page's Content-Security-Policy: no inline script runs but the page's own, S3 only where it is used."""

from __future__ import annotations

import re

from reimagine.handlers import api
from reimagine_emulator.api_events import build_event, to_http_response
from reimagine_tools.template import HttpRoute
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.page_policy import directives, sha256_source


def get_page() -> tuple[dict[str, str], str]:
    event = build_event(route=HttpRoute("GET", "/"), path_parameters={}, method="GET", raw_path="/")
    response = to_http_response(api.handler(event, lambda_context("ApiFunction", 15, 256)))
    return {k.lower(): v for k, v in response.headers.items()}, response.body.decode("utf-8")


def test_only_the_pages_own_script_may_run(aws) -> None:
    # Given the page as served
    headers, html = get_page()
    [script] = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    # Then scripts are allowed by the hash of the page's one inline script, and nothing else
    assert directives(headers["content-security-policy"])["script-src"] == [sha256_source(script)]


def test_no_inline_style_or_script_is_allowed_wholesale(aws) -> None:
    headers, _ = get_page()
    assert "unsafe-inline" not in headers["content-security-policy"]


def test_images_and_fetches_are_limited_to_this_api_and_the_buckets(aws) -> None:
    # Given the page as served by a stack whose buckets are on the global S3 endpoint
    headers, _ = get_page()
    policy = directives(headers["content-security-policy"])
    # Then images come from here, the preview (blob:), the icon (data:) and the results bucket;
    # fetches go here and to the uploads bucket; no scheme-wide source like https: is left
    assert (policy["img-src"], policy["connect-src"], policy["default-src"]) == (
        ["'self'", "blob:", "data:", f"https://{aws.results_bucket}.s3.amazonaws.com"],
        ["'self'", f"https://{aws.uploads_bucket}.s3.amazonaws.com"],
        ["'none'"],
    )
