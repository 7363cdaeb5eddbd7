"""The email a finished request gets, and the one confirmation email: composed here (text and HTML),
sent through SES as raw MIME so that every message carries one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import TYPE_CHECKING

from reimagine.models import RequestRecord, ResultLink, Status, utcnow

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_ses import SESClient

# SES codes that retrying cannot fix for this message: the recipient or the content is refused.
# Everything else is retried, bounded (stream retries, then the sweeper's re-drives): throttling and
# 5xx pass by themselves, and an unverified sender, a paused account or missing permissions are an
# operator's to fix, after which the email should still go out.
_PERMANENT_CODES = frozenset({"MessageRejected", "InvalidParameterValue"})


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


def _at_most(link: ResultLink) -> str:
    """How long the direct link can last at most: no promise of a time, because a URL signed with a
    Lambda role's session credentials stops working when that session ends, which can be sooner."""
    minutes = max(1, round((link.expires_at - utcnow()).total_seconds() / 60))
    if minutes % 60 == 0:
        return f"{minutes // 60} hour{'s' if minutes >= 120 else ''}"
    return f"{minutes} minutes"


def _caption_source(record: RequestRecord) -> str:
    if record.caption_provider == "offline":
        return "measured from the image by the offline provider, not AI"
    model = f" ({record.caption_model})" if record.caption_model else ""
    return f"written by an AI model{model} through {record.caption_provider}"


def _painter(record: RequestRecord) -> str:
    if record.caption_provider == "offline":
        return "Picture: rendered from the caption's words by the offline provider, not AI."
    if record.image_model:
        return f"Picture: painted by {record.image_model} through {record.caption_provider}."
    return ""


def compose(record: RequestRecord, link: ResultLink | None, *, api_base_url: str) -> Message:
    stable = f"{api_base_url.rstrip('/')}/requests/{record.id}/result" if api_base_url else ""
    if record.status is Status.COMPLETED and link is not None:
        return _completed(record, link, stable)
    return _failed(record)


def _completed(record: RequestRecord, link: ResultLink, stable: str) -> Message:
    caption = record.caption or ""
    direct = f"a direct download link, short-lived: at most {_at_most(link)}, and possibly less"
    text = "\n".join(
        [
            "Your picture has been reimagined.",
            "",
            f"Caption ({_caption_source(record)}):",
            f"  {caption}",
            "",
            *([_painter(record), ""] if _painter(record) else []),
            *(
                [
                    "Download the new picture (this link fetches a fresh download every time, while the",
                    "picture is kept):",
                    f"  {stable}",
                    "",
                    f"Or use {direct}:",
                ]
                if stable
                else [f"Download the new picture ({direct}):"]
            ),
            f"  {link.url}",
            "",
            f"Request id: {record.id}",
        ]
    )
    e = html.escape
    if stable:
        links_html = (
            f'<p><a href="{e(stable)}">Download the new picture</a> (this link fetches a fresh download '
            f"every time, while the picture is kept).</p>"
            f'<p>Or use <a href="{e(link.url)}">{e(direct)}</a>.</p>'
        )
    else:
        links_html = f'<p><a href="{e(link.url)}">Download the new picture</a> ({e(direct)}).</p>'
    body = (
        "<!doctype html><html><body>"
        "<h1>Your picture has been reimagined</h1>"
        f"<p>Caption ({e(_caption_source(record))}):</p><blockquote>{e(caption)}</blockquote>"
        f"{f'<p>{e(_painter(record))}</p>' if _painter(record) else ''}"
        f"{links_html}"
        f"<p>Request id: <code>{e(record.id)}</code></p>"
        "</body></html>"
    )
    return Message(subject="Your reimagined picture is ready", text=text, html=body)


def _failed(record: RequestRecord) -> Message:
    reason = record.error.message if record.error else "an unknown error"
    code = record.error.code if record.error else "UNKNOWN"
    text = "\n".join(
        [
            "We could not reimagine your picture.",
            "",
            f"Reason: {reason} ({code}).",
            "",
            "You can try again with another image.",
            f"Request id: {record.id}",
        ]
    )
    e = html.escape
    body = (
        "<!doctype html><html><body>"
        "<h1>We could not reimagine your picture</h1>"
        f"<p>Reason: {e(reason)} (<code>{e(code)}</code>).</p>"
        "<p>You can try again with another image.</p>"
        f"<p>Request id: <code>{e(record.id)}</code></p>"
        "</body></html>"
    )
    return Message(subject="We could not reimagine your picture", text=text, html=body)


SERVICE_NAME = "reimagine"


def confirmation(link: str) -> Message:
    """The one email an address gets before it confirms: generic, the service's name, nothing the
    requester wrote or sent (no caption, no picture), a link to confirm and what ignoring it means."""
    text = "\n".join(
        [
            f"Someone asked {SERVICE_NAME} to send pictures to this address.",
            "",
            "If it was you, confirm your address here (the page has one button to press):",
            f"  {link}",
            "",
            "If it was not you, ignore this email: you will get no further mail from us.",
        ]
    )
    e = html.escape
    body = (
        "<!doctype html><html><body>"
        f"<h1>Confirm your address for {e(SERVICE_NAME)}</h1>"
        f"<p>Someone asked {e(SERVICE_NAME)} to send pictures to this address.</p>"
        f'<p>If it was you, <a href="{e(link)}">confirm your address</a> (the page has one button to press).</p>'
        "<p>If it was not you, ignore this email: you will get no further mail from us.</p>"
        "</body></html>"
    )
    return Message(subject=f"Confirm your address for {SERVICE_NAME}", text=text, html=body)


def with_unsubscribe(message: Message, url: str) -> Message:
    """The visible "don't email me again" footer, leading to the same page as the one-click header."""
    e = html.escape
    footer_html = f'<hr><p><a href="{e(url)}">Don\'t email me again</a></p></body></html>'
    return replace(
        message,
        text=f"{message.text}\n\n--\nDon't email me again: {url}",
        html=message.html.replace("</body></html>", footer_html) if "</body></html>" in message.html else message.html,
    )


def mime(*, sender: str, to: str, message: Message, unsubscribe_url: str = "") -> bytes:
    """The message as SES sends it: text and HTML alternatives, and with an unsubscribe URL the RFC 8058
    headers (List-Unsubscribe with the https URL, List-Unsubscribe-Post for one click) and the footer."""
    if unsubscribe_url:
        message = with_unsubscribe(message, unsubscribe_url)
    raw = EmailMessage()
    raw["From"] = sender
    raw["To"] = to
    raw["Subject"] = message.subject
    if unsubscribe_url:
        raw["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        raw["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    raw.set_content(message.text)
    raw.add_alternative(message.html, subtype="html")
    return bytes(raw)


def send(
    ses: SESClient,
    *,
    sender: str,
    to: str,
    message: Message,
    configuration_set: str = "",
    unsubscribe_url: str = "",
) -> str:
    """Send through SES as raw MIME (SendRawEmail keeps our headers); returns SES's MessageId.

    With a configuration set (always, on a deployed stack), SES publishes this message's bounces and
    complaints to its event destination, which suppresses the address.
    """
    extra = {"ConfigurationSetName": configuration_set} if configuration_set else {}
    response = ses.send_raw_email(
        **extra,  # type: ignore[arg-type]
        Source=sender,
        # No Destinations: SES takes the recipient from the To header, the one place it is named.
        RawMessage={"Data": mime(sender=sender, to=to, message=message, unsubscribe_url=unsubscribe_url)},
    )
    return response["MessageId"]


@dataclass(frozen=True)
class SendFailure:
    """Why SES did not take a message: `code` is SES's error code; `permanent` means never retry."""

    code: str
    message: str
    permanent: bool


def send_failure(error: ClientError, *, sender: str) -> SendFailure:
    """Classify an SES error. MessageRejected naming the sender as unverified is transient: SES says
    so when the sender identity was removed or not yet verified, which an operator can put right."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    # SendRawEmail's refusal of a sender is worded "did not have authority to send from" by some emulators.
    lowered = message.lower()
    sender_unverified = sender.lower() in lowered and (
        "not verified" in lowered or "did not have authority to send from" in lowered
    )
    permanent = code in _PERMANENT_CODES and status < 500 and not sender_unverified
    return SendFailure(code="SENDER_NOT_VERIFIED" if sender_unverified else code, message=message, permanent=permanent)
