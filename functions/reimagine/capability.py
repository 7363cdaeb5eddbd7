"""The delete capability: proof that whoever deletes a request read the email it was sent to.

The request id is not enough: it sits in the page's address bar, in links, in referrers and in logs.
The capability is an HMAC of the id under the deployment's secret key (the one that hashes addresses
for the quota), so nothing is stored, only the functions holding the key can mint it, and it says
nothing about any other request. The email carries it in the result page's fragment (`#key=...`),
which browsers never send to a server nor put in a Referer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from reimagine.errors import ApiError

# Domain separation: the same key also hashes addresses and IPs; this use can never collide with those.
_PURPOSE = b"reimagine/delete-request/v1:"


class DeleteKeyRequired(ApiError):
    """No delete key was presented, or not this request's."""

    def __init__(self) -> None:
        super().__init__(
            403,
            "DELETE_KEY_REQUIRED",
            "only the link in the email can delete this request: open the result page from that email",
        )


def delete_key(request_id: str, key: bytes) -> str:
    digest = hmac.new(key, _PURPOSE + request_id.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def may_delete(request_id: str, presented: str | None, key: bytes) -> bool:
    """True when `presented` is this request's capability (compared in constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), delete_key(request_id, key).encode("ascii"))
