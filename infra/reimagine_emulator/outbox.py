"""Mail the functions send through SES, written as .eml files to a local outbox folder.

Sent mail is read from the endpoint's own inspection API, never from the delivery path: LocalStack
serves it at GET /_aws/ses; moto's server has no such API for SES, so its backend is read directly,
which is only possible (and only done) when the stack started moto's server in this process.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SentMail:
    id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    sent_at: datetime
    # The message exactly as it was sent raw (SendRawEmail), headers and all; empty for SendEmail.
    raw: bytes = b""


@dataclass(frozen=True)
class OutboxEntry:
    to: str
    subject: str
    date: datetime
    file: Path


MailSource = Callable[[], list[SentMail]]


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("p", "br", "h1", "h2", "li", "blockquote", "div"):
            self.parts.append("\n")
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.parts.append(f" <{href}> ")


def text_of_html(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


def _looks_like_html(body: str) -> bool:
    return bool(re.search(r"<(html|body|p|a|h1|div|br)\b", body, re.IGNORECASE))


def moto_mail(account_id: str, region: str) -> MailSource:
    """Mail sent on the moto server running in this process."""

    def sent() -> list[SentMail]:
        from moto.backends import get_backend

        backend = get_backend("ses")[account_id][region]
        mails = []
        for message in list(backend.sent_messages):
            if hasattr(message, "raw_data"):
                mails.append(_from_raw(message.id, message.raw_data))
                continue
            # moto keeps one body per message: the HTML part when there is one.
            body = str(getattr(message, "body", "") or "")
            html = body if _looks_like_html(body) else ""
            mails.append(
                SentMail(
                    id=message.id,
                    sender=message.source,
                    to=tuple((message.destinations or {}).get("ToAddresses", [])),
                    subject=str(getattr(message, "subject", "") or ""),
                    text=text_of_html(html) if html else body,
                    html=html,
                    sent_at=datetime.now(UTC),
                )
            )
        return mails

    return sent


def _from_raw(message_id: str, raw: str | bytes) -> SentMail:
    data = raw.encode() if isinstance(raw, str) else raw
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    date = parsed["Date"]
    return SentMail(
        id=message_id,
        sender=str(parsed["From"] or ""),
        to=tuple(a.strip() for a in str(parsed["To"] or "").split(",") if a.strip()),
        subject=str(parsed["Subject"] or ""),
        text=text_part.get_content() if text_part else "",
        html=html_part.get_content() if html_part else "",
        sent_at=parsedate_to_datetime(date) if date else datetime.now(UTC),
        raw=data,
    )


def localstack_mail(endpoint_url: str) -> MailSource:
    """Mail sent on LocalStack, from its SES inspection endpoint."""

    def sent() -> list[SentMail]:
        with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}/_aws/ses", timeout=10) as response:  # noqa: S310
            return parse_localstack_mail(json.load(response))

    return sent


def parse_localstack_mail(payload: dict[str, Any]) -> list[SentMail]:
    """LocalStack's /_aws/ses answer: {"messages": [{Id, Source, Destination, Subject, Body, Timestamp}]}."""
    mails = []
    for m in payload.get("messages", []):
        if m.get("RawData"):
            mails.append(_from_raw(m["Id"], m["RawData"]))
            continue
        body = m.get("Body") or {}
        stamp = datetime.fromisoformat(m["Timestamp"]) if m.get("Timestamp") else datetime.now(UTC)
        mails.append(
            SentMail(
                id=m["Id"],
                sender=m.get("Source", ""),
                to=tuple((m.get("Destination") or {}).get("ToAddresses", [])),
                subject=m.get("Subject", ""),
                text=body.get("text_part") or "",
                html=body.get("html_part") or "",
                sent_at=stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC),  # LocalStack's are UTC
            )
        )
    return mails


def has_localstack_mail(endpoint_url: str) -> bool:
    try:
        localstack_mail(endpoint_url)()
    except (OSError, ValueError):
        return False
    return True


def _header_address(address: str) -> str:
    """An address as a header must carry it: an internationalised domain as punycode (IDNA).

    Written as is, Python's email package puts an encoded word inside the address
    (`user@=?utf-8?q?b=C3=BCcher?=.de`), which RFC 2047 forbids and no mail program reads back.
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def to_eml(mail: SentMail) -> EmailMessage:
    to = ", ".join(_header_address(address) for address in mail.to)
    # A non-ASCII local part has no 7-bit form: such a header is written as UTF-8 (RFC 6532).
    message = EmailMessage(policy=policy.default if to.isascii() else policy.default.clone(utf8=True))
    message["From"] = mail.sender
    message["To"] = to
    message["Subject"] = mail.subject
    sent_at = mail.sent_at if mail.sent_at.tzinfo else mail.sent_at.replace(tzinfo=UTC)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = make_msgid(idstring=re.sub(r"[^\w.-]", "", mail.id)[:40] or None, domain="reimagine.local")
    message["X-SES-Message-ID"] = mail.id
    message.set_content(mail.text or text_of_html(mail.html))
    if mail.html:
        message.add_alternative(mail.html, subtype="html")
    return message


# The SES message ids an outbox folder has accounted for, one a line: those it wrote and those the
# endpoint already held when the folder was first used.
LEDGER = ".collected"


def _ids_in(folder: Path) -> set[str]:
    """What a folder already holds: its ledger and the X-SES-Message-ID of each .eml (a file written
    just before a kill, whose id did not reach the ledger, is not written twice)."""
    ledger = folder / LEDGER
    ids = set(ledger.read_text(encoding="utf-8").split()) if ledger.exists() else set()
    for path in folder.glob("*.eml"):
        with path.open("rb") as handle:
            sent_id = BytesParser(policy=policy.default).parse(handle, headersonly=True)["X-SES-Message-ID"]
        if sent_id:
            ids.add(str(sent_id))
    return ids


class Outbox:
    """Writes each newly sent message once to `<folder>/<timestamp>-<id>.eml`.

    The folder keeps a ledger of what it accounted for, so an outbox opened again on the same folder
    (the stack started again after it was killed) collects what was sent while it was down and nothing
    twice. A folder used for the first time takes what the endpoint already holds as not its own (an
    earlier run on a long-lived LocalStack with another folder, another stack in this process).
    """

    def __init__(self, folder: str | Path, source: MailSource) -> None:
        self.folder = Path(folder)
        self.source = source
        self._lock = threading.Lock()
        if (self.folder / LEDGER).exists():
            self._seen = _ids_in(self.folder)
        else:
            self._seen = {mail.id for mail in source()} | (_ids_in(self.folder) if self.folder.is_dir() else set())
            self._record(sorted(self._seen))

    def _record(self, ids: list[str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LEDGER).open("a", encoding="utf-8") as ledger:
            ledger.writelines(f"{sent_id}\n" for sent_id in ids)

    def collect(self) -> list[Path]:
        with self._lock:
            written = []
            for mail in self.source():
                if mail.id in self._seen:
                    continue
                self.folder.mkdir(parents=True, exist_ok=True)
                stamp = mail.sent_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                safe_id = re.sub(r"[^\w.-]", "_", mail.id)
                path = self.folder / f"{stamp}-{safe_id}.eml"
                # A raw message is kept as sent (List-Unsubscribe and all), with SES's id prepended.
                raw = f"X-SES-Message-ID: {mail.id}\r\n".encode() + mail.raw if mail.raw else b""
                path.write_bytes(raw or bytes(to_eml(mail)))
                self._record([mail.id])  # after the file: a kill between the two leaves the file, read back
                self._seen.add(mail.id)
                written.append(path)
            return written


def list_outbox(folder: str | Path) -> list[OutboxEntry]:
    """The messages in an outbox folder, newest first."""
    entries = []
    for path in Path(folder).glob("*.eml"):
        with path.open("rb") as handle:
            headers = BytesParser(policy=policy.default).parse(handle, headersonly=True)
        date = headers["Date"]
        entries.append(
            OutboxEntry(
                to=str(headers["To"] or ""),
                subject=str(headers["Subject"] or ""),
                date=parsedate_to_datetime(date) if date else datetime.fromtimestamp(path.stat().st_mtime, UTC),
                file=path,
            )
        )
    return sorted(entries, key=lambda e: (e.date, e.file.name), reverse=True)
