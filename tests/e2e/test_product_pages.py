"""Issue 21 in a real browser (Debian's chromium) against the local stack: the style picker, the
magic-byte check, the new picture brought into view on a phone, the email's result page on desktop
and phone widths, and delete now from it.

Screenshots are kept as test artifacts (pytest's tmp_path); with REIMAGINE_SCREENSHOTS=DIR they are
also written to DIR (docs/screenshots holds the ones the README shows).
"""

from __future__ import annotations

import email
import os
import re
import time
from email import policy
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, Request, expect

from reimagine_emulator.demo import CONFIRM_SUBJECT
from reimagine_emulator.outbox import list_outbox
from tests.fixtures.browser import CHROMIUM, PIPELINE_TIMEOUT_MS, api_view, loaded_width, write_photo

DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM}"),
]


def _open(browser: Browser, url: str, viewport: dict[str, int], errors: list[str]) -> Page:
    context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page


def _keep(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if folder := os.environ.get("REIMAGINE_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def _mail_to(outbox: Path, address: str, *, confirmation: bool = False) -> email.message.EmailMessage:
    """The first email to `address`: its confirmation request, or else the first of the others."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in list_outbox(outbox):
            if entry.to == address and entry.subject.startswith(CONFIRM_SUBJECT) == confirmation:
                return email.message_from_bytes(entry.file.read_bytes(), policy=policy.default)
        time.sleep(0.2)
    raise AssertionError(f"no email to {address}")


def _send(page: Page, photo: Path, address: str, style: str | None = None) -> None:
    page.get_by_label("Photo", exact=True).set_input_files(photo)
    if style:
        page.get_by_role("radio", name=style).check()
    page.get_by_label("Email address").fill(address)
    page.get_by_role("button", name="Reimagine my photo").click()


def _send_and_confirm(page: Page, outbox: Path, photo: Path, address: str, style: str | None = None) -> None:
    """Send as a new address does: its reader is asked to confirm first, and presses the email's button."""
    _send(page, photo, address, style)
    expect(page.get_by_role("status")).to_contain_text("Check your inbox", timeout=PIPELINE_TIMEOUT_MS)
    body = _mail_to(outbox, address, confirmation=True).get_body(preferencelist=("plain",))
    link = re.search(r"https?://\S+/confirm/\S+", body.get_content() if body else "")
    assert link is not None and requests.post(link[0], timeout=30).status_code == 200


def test_the_style_picker_offers_every_style_and_sends_the_one_picked(
    browser: Browser,
    site: str,
    outbox: Path,
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    page = _open(browser, f"{site}/", DESKTOP, errors)
    # Given the page: one radio button per style, the default checked
    styles = requests.get(f"{site}/styles", timeout=10).json()
    radios = page.get_by_role("group", name="Style").get_by_role("radio")
    expect(radios).to_have_count(len(styles["styles"]))
    default = next(s["name"] for s in styles["styles"] if s["id"] == styles["default"])
    expect(page.get_by_role("radio", name=default)).to_be_checked()
    _keep(page, tmp_path, "page-desktop.png")
    # When a photo is sent in watercolour
    _send_and_confirm(page, outbox, write_photo(tmp_path), "picker@example.com", style="Watercolour")
    expect(page.get_by_role("status")).to_have_text("Done: your new picture is ready.", timeout=PIPELINE_TIMEOUT_MS)
    # Then the request was made in it, the page names it, and shows the masked address
    view = api_view(site, page)
    assert (view["style"]["id"], page.locator("#style-name").text_content(), errors) == (
        "watercolour",
        "Watercolour",
        [],
    )
    expect(page.locator("#masked-email")).to_have_text(view["email"])
    _keep(page, tmp_path, "page-completed-desktop.png")


def test_a_text_file_named_png_is_refused_by_the_page_before_anything_is_sent(
    browser: Browser,
    site: str,
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    page = _open(browser, f"{site}/", DESKTOP, errors)
    fake = tmp_path / "holiday.png"
    fake.write_text("these are my notes, not a photo\n" * 20)
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    # When it is picked and sent
    _send(page, fake, "notes@example.com")
    # Then the page says so by the file's bytes, and nothing was sent
    expect(page.locator("#photo-error")).to_have_text(
        "That file is not a JPEG, PNG, WebP or GIF photo, whatever its name says. Choose another one."
    )
    with page.expect_request("**/openapi.json"):
        page.evaluate("fetch('openapi.json')")
    assert posts == []


def test_on_a_phone_the_new_picture_is_brought_into_view(
    browser: Browser,
    site: str,
    outbox: Path,
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    page = _open(browser, f"{site}/", PHONE, errors)
    _keep(page, tmp_path, "page-phone.png")
    _send_and_confirm(page, outbox, write_photo(tmp_path), "phone@example.com")
    expect(page.get_by_role("status")).to_have_text("Done: your new picture is ready.", timeout=PIPELINE_TIMEOUT_MS)
    expect(page.locator("#result-image")).to_be_in_viewport()
    # (scrolled smoothly: the picture's frame comes to rest at the top of the screen)
    page.wait_for_function("() => Math.abs(document.getElementById('result-figure').getBoundingClientRect().top) < 2")
    page.screenshot(path=str(tmp_path / "page-completed-phone-viewport.png"))
    if folder := os.environ.get("REIMAGINE_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / "page-completed-phone.png"))


def test_the_emails_result_page_shows_both_pictures_and_deletes_them(
    browser: Browser,
    site: str,
    outbox: Path,
    tmp_path: Path,
) -> None:
    # Given a photo sent from the page in ukiyo-e, and the email it got
    errors: list[str] = []
    page = _open(browser, f"{site}/", DESKTOP, errors)
    _send_and_confirm(page, outbox, write_photo(tmp_path, (480, 320)), "owner@example.com", style="Ukiyo-e woodblock")
    expect(page.get_by_role("status")).to_have_text("Done: your new picture is ready.", timeout=PIPELINE_TIMEOUT_MS)
    mail = _mail_to(outbox, "owner@example.com")
    mail_html = mail.get_body(preferencelist=("html",)).get_content()
    link = re.search(r'href="([^"]+/results/[0-9a-f-]+#key=[^"]+)"', mail_html).group(1)
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        shown = _open(browser, "about:blank", viewport, errors)
        shown.set_content(mail_html)
        _keep(shown, tmp_path, f"email-{suffix}.png")
        shown.context.close()

    # When the owner opens the result page on a desktop, then on a phone
    result = _open(browser, link, DESKTOP, errors)
    # Then both pictures load side by side, with the caption and the style
    assert loaded_width(result, "Your photo") == 480
    assert loaded_width(result, re.compile("^The new picture")) > 0
    expect(result.get_by_text("Style: Ukiyo-e woodblock")).to_be_visible()
    original, new = (result.get_by_role("img", name=n).bounding_box() for n in ("Your photo", re.compile("^The new")))
    assert (original["y"] == new["y"], original["x"] < new["x"]) == (True, True)
    _keep(result, tmp_path, "result-desktop.png")
    phone = _open(browser, link, PHONE, errors)
    # Stacked on a phone: the new picture first
    original, new = (phone.get_by_role("img", name=n).bounding_box() for n in ("Your photo", re.compile("^The new")))
    assert new["y"] < original["y"]
    _keep(phone, tmp_path, "result-phone.png")

    # When the owner deletes them from the page
    result.on("dialog", lambda dialog: dialog.accept())
    result.get_by_role("button", name="Delete now").click()
    # Then the page says they are deleted, and the API agrees
    expect(result.get_by_role("heading", name="Deleted")).to_be_visible()
    _keep(result, tmp_path, "result-deleted-desktop.png")
    request_id = re.search(r"/results/([0-9a-f-]+)", link).group(1)
    assert (requests.get(f"{site}/requests/{request_id}", timeout=10).json()["status"], errors) == ("DELETED", [])


def test_without_the_key_the_result_page_cannot_delete(
    browser: Browser,
    site: str,
    outbox: Path,
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    page = _open(browser, f"{site}/", DESKTOP, errors)
    _send_and_confirm(page, outbox, write_photo(tmp_path), "keyless@example.com")
    expect(page.get_by_role("status")).to_have_text("Done: your new picture is ready.", timeout=PIPELINE_TIMEOUT_MS)
    request_id = page.locator("#request-id").text_content()
    # When the page is opened from its bare address (as from a referrer or a log), without the key
    result = _open(browser, f"{site}/results/{request_id}", DESKTOP, errors)
    # Then "Delete now" is disabled and says why
    expect(result.get_by_role("button", name="Delete now")).to_be_disabled()
    expect(result.get_by_text("To delete, open this page from the link in your email")).to_be_visible()
