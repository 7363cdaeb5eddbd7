"""A small client for reimagine's HTTP API: create a request, upload with the presigned POST, follow it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

FINAL = ("COMPLETED", "FAILED", "DELETED")
AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
SNIFFED_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


class ClientError(Exception):
    """Something the user can act on, said in one line."""


@dataclass
class Created:
    id: str
    upload: dict[str, Any]


def sniff_content_type(data: bytes, name: str = "the file") -> str:
    """The MIME type the bytes really are (never the file name's), or a clear error."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the service judges pixels
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
    except Image.DecompressionBombError:
        raise ClientError(f"{name} has far too many pixels to be accepted; send a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise ClientError(f"{name} is not an image (JPEG, PNG, WebP or GIF)") from None
    if kind not in SNIFFED_TYPES:
        raise ClientError(f"{name} is a {kind} image; send JPEG, PNG, WebP or GIF")
    return SNIFFED_TYPES[kind]


class ApiClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.http.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach the API at {self.base_url} (is `reimagine local up` running?)") from None
        except requests.Timeout:
            raise ClientError(f"the API at {self.base_url} did not answer in {self.timeout:.0f} s") from None

    @staticmethod
    def _error_text(response: requests.Response) -> str:
        # The message says every problem, in our words; details are for programs.
        try:
            return str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return f"HTTP {response.status_code}"

    def create(self, email: str, content_type: str, size: int | None, style: str | None = None) -> Created:
        body: dict[str, Any] = {"email": email, "content_type": content_type}
        if size is not None:
            body["size"] = size
        if style:
            body["style"] = style
        response = self._call("POST", "/requests", json=body)
        if response.status_code != 201:
            raise ClientError(f"the API refused the request: {self._error_text(response)}")
        payload = response.json()
        return Created(id=payload["id"], upload=payload["upload"])

    def upload(self, created: Created, data: bytes, filename: str) -> None:
        form = created.upload
        try:
            # Every policy field first; the file last, as S3's POST rules require.
            response = self.http.post(
                form["url"], data=form["fields"], files={"file": (filename, data)}, timeout=max(self.timeout, 120)
            )
        except requests.ConnectionError:
            raise ClientError(f"cannot reach the upload endpoint {form['url'].split('?')[0]}") from None
        if response.status_code not in (200, 201, 204):
            reason = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            raise ClientError(f"the upload was refused (HTTP {response.status_code}) {reason}".strip())

    def status(self, request_id: str) -> dict[str, Any]:
        response = self._call("GET", f"/requests/{request_id}")
        if response.status_code == 404:
            raise ClientError(f"no request with id {request_id}")
        if response.status_code != 200:
            raise ClientError(f"the API could not show the request: {self._error_text(response)}")
        return response.json()

    def wait(
        self,
        request_id: str,
        *,
        timeout: float = 300.0,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll until the request is final; `on_change` sees each new status. Backs off to 2 s between polls.

        Time spent waiting for the address to be confirmed does not count towards `timeout`: the
        person may take a while to open their mail, and the request carries on once they have."""
        deadline = time.monotonic() + timeout
        interval, last = 0.2, None
        while True:
            record = self.status(request_id)
            if record["status"] != last:
                last = record["status"]
                if on_change:
                    on_change(record)
            if record["status"] in FINAL:
                return record
            if record["status"] == AWAITING_CONFIRMATION:
                deadline = time.monotonic() + timeout
            if time.monotonic() > deadline:
                raise ClientError(f"request {request_id} is still {last} after {timeout:.0f} s")
            sleep(interval)
            interval = min(interval * 1.5, 2.0)

    def styles(self) -> dict[str, Any]:
        """`GET /styles`: the styles on offer and the default."""
        response = self._call("GET", "/styles")
        if response.status_code != 200:
            raise ClientError(f"the API could not list the styles: {self._error_text(response)}")
        return response.json()

    def submit(self, image: Path, email: str, style: str | None = None) -> str:
        try:
            data = image.read_bytes()
        except FileNotFoundError:
            raise ClientError(f"{image}: no such file") from None
        except IsADirectoryError:
            raise ClientError(f"{image} is a directory, not an image") from None
        content_type = sniff_content_type(data, str(image))
        created = self.create(email, content_type, len(data), style)
        self.upload(created, data, image.name)
        return created.id
