"""The web page in a real browser against the local stack: pick a photo, follow it through, see the result.

Chromium is Debian's (`apt-get install chromium`), never a downloaded one. Set REIMAGINE_PAGE_SCREENSHOT
to a file path to keep a screenshot of the finished page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, Request, expect

from tests.fixtures.browser import CHROMIUM, PIPELINE_TIMEOUT_MS, api_view, loaded_width, write_photo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture
def script_errors() -> list[str]:
    """Uncaught errors in the page's script, from the moment it loads."""
    return []


@pytest.fixture
def page(browser: Browser, site: str, script_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: script_errors.append(str(exc)))
    page.goto(f"{site}/")
    yield page
    context.close()


def submit(page: Page, photo: Path, email: str) -> None:
    page.get_by_label("Photo", exact=True).set_input_files(photo)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Reimagine my photo").click()


def test_a_photo_goes_all_the_way_to_a_new_picture(
    page: Page, site: str, outbox: Path, tmp_path: Path, script_errors: list[str]
) -> None:
    # Given a real JPEG
    photo = write_photo(tmp_path)

    # When it is sent from the page (the upload goes from the browser straight to S3)
    with page.expect_response(lambda r: r.request.method == "POST" and "/requests" not in r.url) as upload:
        submit(page, photo, "jane.doe@example.com")
    assert upload.value.status == 204

    # Then, the address being new, the page asks its reader to confirm, and keeps following
    expect(page.get_by_role("status")).to_have_text(
        "Check your inbox at j***@e***.com and click the link; this page carries on by itself.",
        timeout=PIPELINE_TIMEOUT_MS,
    )
    # When the reader presses the button behind the email's link
    (mail,) = list(outbox.glob("*.eml"))
    link = re.search(r"https?://\S+/confirm/\S+", mail.read_text())
    assert link is not None and requests.post(link[0], timeout=30).status_code == 200

    # Then the page follows it to the end and says so
    expect(page.get_by_role("status")).to_have_text("Done: your new picture is ready.", timeout=PIPELINE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Your new picture")).to_be_focused()
    expect(page.locator("#steps li[data-state='done']")).to_have_count(4)

    # And shows the original and the new picture, both loaded
    assert loaded_width(page, "Your original photo") == 320
    assert loaded_width(page, re.compile(r"^New picture painted from the caption")) > 0

    # And the caption the API holds, with the offline provider's honest note
    view = api_view(site, page)
    assert view["status"] == "COMPLETED"
    expect(page.locator("#caption")).to_have_text(view["caption"])
    expect(page.get_by_text("measured, not AI")).to_be_visible()
    expect(page.get_by_role("button", name="Start again")).to_be_enabled()
    assert script_errors == []

    page.screenshot(path=str(tmp_path / "completed.png"), full_page=True)
    if target := os.environ.get("REIMAGINE_PAGE_SCREENSHOT"):
        page.screenshot(path=target, full_page=True)


@pytest.mark.parametrize(
    ("file_name", "email", "field", "message"),
    [
        ("photo.jpg", "jane.doe@", "Email address", "Enter an email address like name@example.com."),
        ("notes.txt", "jane.doe@example.com", "Photo", "That file is not a JPEG, PNG, WebP or GIF photo"),
        ("big.jpg", "jane.doe@example.com", "Photo", "That file is 20.1 MiB; the limit is 20 MiB."),
    ],
    ids=["invalid-email", "not-an-image-type", "over-the-stacks-limit"],
)
def test_the_page_checks_the_form_before_sending_anything(
    page: Page, tmp_path: Path, file_name: str, email: str, field: str, message: str
) -> None:
    # Given a form with one thing wrong
    photo = write_photo(tmp_path)
    if file_name.endswith(".txt"):
        photo = tmp_path / file_name
        photo.write_text("not a picture\n")
    if file_name == "big.jpg":  # one byte over the limit the API put in the page (the default 20 MiB)
        photo = tmp_path / file_name
        photo.write_bytes(write_photo(tmp_path).read_bytes().ljust(20 * 2**20 + 1, b"\0"))
        expect(page.locator("#photo-hint")).to_have_text("JPEG, PNG, WebP or GIF, up to 20 MiB.")
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)

    # When it is submitted
    submit(page, photo, email)

    # Then the field says what is wrong and has the focus
    expect(page.get_by_text(message)).to_be_visible()
    expect(page.get_by_label(field, exact=True)).to_be_focused()
    expect(page.get_by_label(field, exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#progress-section")).to_be_hidden()

    # And nothing was sent: a later request the page makes is seen, and no POST before it
    with page.expect_request("**/openapi.json"):
        page.evaluate("fetch('openapi.json')")
    assert posts == []


def test_a_file_that_is_not_an_image_ends_with_the_failure_shown(
    page: Page, site: str, tmp_path: Path, script_errors: list[str]
) -> None:
    # Given text behind a JPEG's first bytes (the page's check passes it; the server's decode must not)
    fake = tmp_path / "holiday.jpg"
    fake.write_bytes(b"\xff\xd8\xff\xe0" + b"these are my notes, not a photo\n" * 20)

    # When it is sent
    submit(page, fake, "jane.doe@example.com")

    # Then the page ends on the failure, with the API's own message, and moves the focus there
    failure = page.get_by_role("heading", name="That did not work")
    expect(failure).to_be_visible(timeout=PIPELINE_TIMEOUT_MS)
    expect(failure).to_be_focused()
    view = api_view(site, page)
    assert view["status"] == "FAILED"
    expect(page.locator("#failure-message")).to_have_text(view["error"]["message"])
    expect(page.get_by_role("status")).to_have_text("Something went wrong: see the message below.")
    expect(page.get_by_role("heading", name="Your new picture")).to_be_hidden()
    assert script_errors == []


def test_an_injected_inline_script_does_not_run(page: Page) -> None:
    # Given the page as served (its own script ran: the hint carries the limit it read from the tag)
    expect(page.locator("#photo-hint")).to_contain_text("up to 20 MiB")
    # When markup smuggled into the page carries an inline script and an inline event handler
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = 'script'";
            document.body.append(script);
            const img = document.createElement("img");
            img.setAttribute("src", "data:,");
            img.setAttribute("onerror", "window.injected = 'handler'");
            const settled = new Promise((resolve) => img.addEventListener("error", resolve));
            document.body.append(img);
            return settled;  // the handler attribute is called before this listener, when allowed
        }"""
    )
    # Then the policy blocks both: neither ever ran
    assert page.evaluate("() => window.injected === undefined") is True
