"""`reimagine demo`: one image through a temporary local stack, with everything worth keeping written out."""

from __future__ import annotations

import email
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from email import policy
from pathlib import Path

import requests

from reimagine_emulator.outbox import list_outbox
from reimagine_emulator.runner import StackConfig, running_stack
from reimagine_tools.api_client import ApiClient, ClientError, sniff_content_type

Say = Callable[[str], None]


RESULT_SUBJECT = "Your reimagined picture is ready"
CONFIRM_SUBJECT = "Confirm your address"


def _link_in(eml: Path, pattern: str, what: str) -> str:
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body else ""
    match = re.search(pattern, text)
    if not match:
        raise ClientError(f"the email {eml} has no {what} link")
    return match.group(0)


def _email_link(eml: Path) -> str:
    # The direct download (the picture's key, results/<id>.png), not the result page the email leads with.
    return _link_in(eml, r"https?://\S+/results/[0-9a-f-]+\.png\S*", "result")


def confirm_through_outbox(outbox: Path, *, email: str, say: Say, timeout: float = 30.0) -> None:
    """Press the button of the confirmation email in the local outbox, as the address's reader would
    (a POST to the link: opening it with GET only shows the button)."""
    deadline = time.monotonic() + timeout
    while not (mails := [m for m in list_outbox(outbox) if m.subject.startswith(CONFIRM_SUBJECT)]):
        if time.monotonic() > deadline:
            raise ClientError("no confirmation email reached the outbox")
        time.sleep(0.2)
    link = _link_in(mails[0].file, r"https?://\S+/confirm/\S+", "confirmation")
    response = requests.post(link, timeout=30)
    if response.status_code != 200:
        raise ClientError(f"confirming answered HTTP {response.status_code}")
    say(f"  confirmed {email} for you: pressed the button of the link in {mails[0].file.name}, as you would")


def _check_image(image: Path) -> None:
    """Refuse a file that is not an image the service takes, in one line (ClientError)."""
    try:
        data = image.read_bytes()
    except FileNotFoundError:
        raise ClientError(f"{image}: no such file") from None
    except IsADirectoryError:
        raise ClientError(f"{image} is a directory, not an image") from None
    sniff_content_type(data, str(image))


def run_demo(
    image: Path,
    *,
    email: str,
    out: Path,
    say: Say,
    timeout: float = 120.0,
    config: StackConfig | None = None,
    environments: bool = True,
) -> int:
    _check_image(image)  # before a stack is started for nothing
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reimagine-outbox-") as outbox:
        how = "each function in its own execution environments" if environments else "every function in this process"
        say(f"starting the local stack (embedded AWS emulator, no network; {how})...")
        with running_stack(port=0, outbox=Path(outbox), config=config, environments=environments) as running:
            client = ApiClient(running.api_url)
            say(f"  API {running.api_url}; submitting {image}")
            started = time.monotonic()
            request_id = client.submit(image, email)

            def on_change(r: dict) -> None:
                say(f"  {time.monotonic() - started:5.1f}s  {r['status']}")
                if r["status"] == "AWAITING_CONFIRMATION":  # a new address confirms once (ConfirmAddresses)
                    confirm_through_outbox(Path(outbox), email=email, say=say)

            record = client.wait(request_id, timeout=timeout, on_change=on_change)
            if record["status"] != "COMPLETED":
                error = record.get("error") or {}
                say(f"reimagine: request FAILED: {error.get('message')} ({error.get('code')})")
                return 1
            running.stack.drain(timeout=30)  # the email goes out after COMPLETED
            mails = [m for m in list_outbox(outbox) if m.subject == RESULT_SUBJECT]
            if not mails:
                raise ClientError("no result email was sent")
            link = _email_link(mails[0].file)
            result = requests.get(link, timeout=30)
            if result.status_code != 200:
                raise ClientError(f"the email's link answered HTTP {result.status_code}")
            suffix = image.suffix.lower() or ".img"
            shutil.copyfile(image, out / f"original{suffix}")
            (out / "result.png").write_bytes(result.content)
            shutil.copyfile(mails[0].file, out / "email.eml")
    provider = record.get("caption_provider")
    note = "  (offline provider: measured from the image, not AI)" if provider == "offline" else ""
    print(f"caption: {record['caption']}{note}")
    print(f"wrote {out}/: original{suffix}, result.png ({len(result.content)} bytes), email.eml")
    say(
        f"the email's link downloaded the result while the stack ran ({time.monotonic() - started:.1f} s end to end); "
        "links in email.eml point at that stopped stack"
    )
    say(
        "next: run `reimagine local up` and open http://127.0.0.1:3000/ to pick a style and send your own photo "
        "(`reimagine styles` lists the styles; `reimagine submit PHOTO --email you@example.com --style watercolour "
        "--wait` does it from here)"
    )
    return 0
