"""Email addresses in the form SES can deliver to, checked where a request is made.

SES does not support SMTPUTF8 (RFC 6531): the local part (before the @) must be 7-bit ASCII, and a
domain with non-ASCII characters must be sent as punycode (IDNA, RFC 3492). So an internationalised
domain is stored as its punycode (`user@bücher.de` becomes `user@xn--bcher-kva.de`, and an address
given in punycode stays so), and a non-ASCII local part is refused with the reason, instead of being
accepted and then never delivered.

`canonical_mailbox` is the other question asked of an address: which inbox it reaches, so that the
variants a sender can mint for one inbox (`Jane+1@`, `j.ane@gmail.com`) are counted and refused as one.
"""

from __future__ import annotations

# RFC 5321 4.5.3.1: at most 64 octets before the @, and 254 in all (a 256-octet path less its <>).
# email-validator checks the whole address in every form (as typed, and with its domain in punycode)
# but the local part only in its strict mode; the local part is checked here, in our words.
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254


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
    if at and len(local) > MAX_LOCAL_PART:
        raise UndeliverableAddress(f"the part before the @ may be at most {MAX_LOCAL_PART} characters (RFC 5321)")
    # Imported here: email-validator and its IDNA tables load with the first POST, not at start.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise UndeliverableAddress(f"not an email address we can send to: {exc}") from None
    return f"{checked.local_part}@{checked.ascii_domain.lower()}"


# Google's consumer mail: dots in the local part are ignored, and googlemail.com is gmail.com.
GMAIL = "gmail.com"
GMAIL_DOMAINS = frozenset({GMAIL, "googlemail.com"})


def canonical_mailbox(address: str) -> str:
    """The inbox `address` reaches, as the one key for what is counted or refused per person.

    Variants anyone can mint for one inbox fold together:
    - letter case: all lower-case;
    - a `+tag` sub-address: the local part ends at its first `+` (`jane+news@x` is `jane@x`); a local
      part that starts with `+` has nothing before it to fold to, and stays as it is;
    - at gmail.com and googlemail.com (one service), dots in the local part are dropped and the
      domain is read as gmail.com: `J.Ane+x@googlemail.com` is `jane@gmail.com`.

    Nothing else is guessed (no `-` sub-addresses, no other provider's dots): folding too much would
    merge different people's inboxes. This is a key, never where mail goes: mail is sent to the
    address as given. `address` is expected as `deliverable_address` returns it (the domain already
    punycode); surrounding whitespace is ignored, and a string without `@` is only lower-cased.
    """
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    base, plus, _tag = local.partition("+")
    if plus and base:
        local = base
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), GMAIL
    return f"{local}@{domain}"
