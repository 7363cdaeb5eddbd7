"""Email addresses in the form SES can deliver to, checked where a request is made.

SES does not support SMTPUTF8 (RFC 6531): the local part (before the @) must be 7-bit ASCII, and a
domain with non-ASCII characters must be sent as punycode (IDNA, RFC 3492). So an internationalised
domain is stored as its punycode (`user@bücher.de` becomes `user@xn--bcher-kva.de`, and an address
given in punycode stays so), and a non-ASCII local part is refused with the reason, instead of being
accepted and then never delivered.
"""

from __future__ import annotations


class UndeliverableAddress(ValueError):
    """The address is malformed, or SES cannot deliver to it; the message says which and why."""


def deliverable_address(value: str) -> str:
    """`value` as SES must be given it: the local part as typed, the domain lower-case punycode."""
    local, at, _ = value.rpartition("@")
    if at and not local.isascii():
        raise UndeliverableAddress(
            "the part before the @ must be plain ASCII: the mail service cannot deliver to "
            "internationalised local parts (SMTPUTF8)"
        )
    # Imported here: email-validator and its IDNA tables load with the first POST, not at start.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise UndeliverableAddress(f"value is not a valid email address: {exc}") from None
    return f"{checked.local_part}@{checked.ascii_domain.lower()}"
