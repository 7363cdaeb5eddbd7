"""The result page (issue 21, item 2): both pictures, caption and style, download, make another, delete;
plain words once expired or deleted; the same CSP discipline as `/`."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from reimagine import clients
from reimagine.models import Status, result_key
from tests.fixtures import images
from tests.fixtures.api_calls import call, finished_request, header, key_for
from tests.fixtures.page_policy import directives, sha256_source


def _page(request_id: str) -> tuple[int, str, str]:
    response = call("GET", f"/results/{request_id}")
    return response.status, response.body.decode("utf-8"), header(response, "content-security-policy")


def _image_urls(html: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(r'<img src="([^"]+)"', html)]


def test_both_pictures_load_from_their_links(aws) -> None:
    # Given a completed request
    record = finished_request(aws)
    # When its owner opens the result page
    _, html, _ = _page(record.id)
    # Then its two images are the photo and the picture as stored (the links fetch them)
    s3 = clients.s3()
    fetched = [s3.get_object(**_object_of(url))["Body"].read() for url in _image_urls(html)]
    assert [images.decode(b).format for b in fetched] == ["JPEG", "PNG"]


def _object_of(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    bucket = parts.netloc.split(".")[0]
    return {"Bucket": bucket, "Key": parts.path.lstrip("/")}


def test_the_caption_and_the_style_are_shown(aws) -> None:
    record = finished_request(aws, caption="A red <bicycle> & a blue door.", style="ukiyo-e")
    _, html, _ = _page(record.id)
    assert (
        "A red &lt;bicycle&gt; &amp; a blue door." in html,
        "Style: <strong>Ukiyo-e woodblock</strong>" in html,
    ) == (
        True,
        True,
    )


def test_download_make_another_and_delete_now_are_offered(aws) -> None:
    record = finished_request(aws)
    _, html, _ = _page(record.id)
    download = re.search(r'<a class="button" href="([^"]+)">Download the new picture</a>', html)
    disposition = parse_qs(urlsplit(download.group(1).replace("&amp;", "&")).query)["response-content-disposition"]
    assert (disposition, 'href="../">Make another</a>' in html, 'id="delete-now"' in html) == (
        ['attachment; filename="reimagined.png"'],
        True,
        True,
    )


def test_the_page_never_carries_the_delete_key(aws) -> None:
    record = finished_request(aws)
    _, html, _ = _page(record.id)
    assert key_for(aws, record.id) not in html


def test_a_deleted_request_says_so_plainly(aws) -> None:
    record = finished_request(aws)
    call("DELETE", f"/requests/{record.id}", headers={"authorization": f"Bearer {key_for(aws, record.id)}"})
    status, html, _ = _page(record.id)
    assert (status, "<h1>Deleted</h1>" in html, "<img" in html) == (200, True, False)


def test_an_expired_picture_says_so_plainly(aws) -> None:
    # Given a completed request whose picture the lifecycle rule has deleted
    record = finished_request(aws)
    clients.s3().delete_object(Bucket=aws.results_bucket, Key=result_key(record.id))
    # Then the page says it expired, and shows no picture
    _, html, _ = _page(record.id)
    assert ("<h1>This picture has expired</h1>" in html, "<img" in html) == (True, False)


def test_a_request_no_longer_kept_is_404_in_plain_words(aws) -> None:
    status, html, _ = _page("3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f")
    assert (status, "<h1>This picture is no longer here</h1>" in html) == (404, True)


def test_a_failed_request_says_what_happened(aws) -> None:
    record = finished_request(aws, status=Status.FAILED)
    _, html, _ = _page(record.id)
    assert "What happened: the AI service was unavailable." in html


def test_only_the_pages_own_script_and_style_run_and_images_come_from_the_buckets(aws) -> None:
    record = finished_request(aws)
    _, html, policy = _page(record.id)
    [script] = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    [style] = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    found = directives(policy)
    assert (found["script-src"], found["style-src"], found["img-src"], found["connect-src"]) == (
        [sha256_source(script)],
        [sha256_source(style)],
        ["data:", f"https://{aws.results_bucket}.s3.amazonaws.com", f"https://{aws.uploads_bucket}.s3.amazonaws.com"],
        ["'self'"],
    )
