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


def result_page_url(api_base_url: str, request_id: str, delete_key: str = "") -> str:
    """The result page; the delete key rides in the fragment, which no server or Referer ever sees."""
    page = f"{api_base_url.rstrip('/')}/results/{request_id}"
    return f"{page}#key={delete_key}" if delete_key else page


def compose(
    record: RequestRecord,
    link: ResultLink | None,
    *,
    api_base_url: str,
    delete_key: str = "",
    style_name: str = "",
) -> Message:
    page = result_page_url(api_base_url, record.id, delete_key) if api_base_url else ""
    if record.status is Status.COMPLETED and link is not None:
        return _completed(record, link, page, style_name)
    return _failed(record, page)


def _completed(record: RequestRecord, link: ResultLink, page: str, style_name: str) -> Message:
    caption = record.caption or ""
    direct = f"a direct download link, short-lived: at most {_at_most(link)}, and possibly less"
    style_line = f"Style: {style_name}" if style_name else ""
    text = "\n".join(
        [
            "Your picture has been reimagined.",
            "",
            *(
                [
                    "See your photo and the new picture side by side, download it, or delete both now:",
                    f"  {page}",
                    "",
                ]
                if page
                else []
            ),
            *([style_line, ""] if style_line else []),
            f"Caption ({_caption_source(record)}):",
            f"  {caption}",
            "",
            *([_painter(record), ""] if _painter(record) else []),
            f"Or download the new picture straight away ({direct}):"
            if page
            else f"Download the new picture ({direct}):",
            f"  {link.url}",
            "",
            "Keep this email to yourself: its link can delete the pictures.",
            f"Request id: {record.id}",
        ]
    )
    e = html.escape
    page_html = (
        f'<p><a href="{e(page)}"><strong>See your photo and the new picture</strong></a>: download it, '
        "make another, or delete both now.</p>"
        if page
        else ""
    )
    body = (
        "<!doctype html><html><body>"
        "<h1>Your picture has been reimagined</h1>"
        f"{page_html}"
        f"{f'<p>Style: {e(style_name)}</p>' if style_name else ''}"
        f"<p>Caption ({e(_caption_source(record))}):</p><blockquote>{e(caption)}</blockquote>"
        f"{f'<p>{e(_painter(record))}</p>' if _painter(record) else ''}"
        f'<p>Or <a href="{e(link.url)}">download the new picture straight away</a> ({e(direct)}).</p>'
        "<p>Keep this email to yourself: its link can delete the pictures.</p>"
        f"<p>Request id: <code>{e(record.id)}</code></p>"
        "</body></html>"
    )
    return Message(subject="Your reimagined picture is ready", text=text, html=body)


def _failed(record: RequestRecord, page: str) -> Message:
    reason = record.error.message if record.error else "something went wrong on our side"
    code = record.error.code if record.error else "UNKNOWN"
    delete = ["To delete your photo now instead of waiting for it to expire:", f"  {page}", ""] if page else []
    text = "\n".join(
        [
            "We could not reimagine your picture.",
            "",
            f"What happened: {reason}.",
            "",
            "You can try again with the same photo or another one.",
            "",
            *delete,
            f"Request id: {record.id} (error code {code}, if you contact us)",
        ]
    )
    e = html.escape
    delete_html = f'<p><a href="{e(page)}">Delete your photo now</a> instead of waiting for it to expire.</p>'
    body = (
        "<!doctype html><html><body>"
        "<h1>We could not reimagine your picture</h1>"
        f"<p>What happened: {e(reason)}.</p>"
        "<p>You can try again with the same photo or another one.</p>"
        f"{delete_html if page else ''}"
        f"<p>Request id: <code>{e(record.id)}</code> (error code <code>{e(code)}</code>, if you contact us)</p>"
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
