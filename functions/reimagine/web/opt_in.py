"""The pages behind the links in mail: confirm an address, stop all mail to it.

A GET shows one button and changes nothing (mail scanners and link previews fetch with GET); the
button POSTs to the same URL, which acts. The pages load nothing and run nothing.
"""

from __future__ import annotations

import html

from reimagine.mail import SERVICE_NAME

# No scripts, no loads, a form only to this origin; the token in the URL never leaves as a Referer.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
    "Cache-Control": "no-store",
}
CONTENT_TYPE = "text/html; charset=utf-8"


def page(title: str, *paragraphs: str, button: str = "", form_field: tuple[str, str] | None = None) -> str:
    e = html.escape
    body = "".join(f"<p>{e(p)}</p>" for p in paragraphs)
    if button:
        hidden = f'<input type="hidden" name="{e(form_field[0])}" value="{e(form_field[1])}">' if form_field else ""
        body += f'<form method="post">{hidden}<button type="submit">{e(button)}</button></form>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} - {e(SERVICE_NAME)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1.1rem;padding:.6rem 1.2rem}</style>"
        f"</head><body><h1>{e(title)}</h1>{body}</body></html>"
    )


CONFIRM_ASK = page(
    "Confirm your address",
    f"Press the button to confirm that you asked {SERVICE_NAME} to send pictures to your address. "
    "Photos you sent are waiting for it and go on at once.",
    button="Confirm my address",
)
CONFIRMED = page(
    "Address confirmed",
    "Thank you. Your waiting photos are on their way; each result arrives in its own email.",
    "Every email has a link to stop all mail from us.",
)
CONFIRM_REFUSED = {
    "used": page("This link was already used", "Your address was confirmed with it already; nothing more to do."),
    "expired": page(
        "This link has expired",
        "Confirmation links last as long as the photo is kept. Send your photo again to get a new link.",
    ),
    "unknown": page("This link is not valid", "Copy the whole link from the email, or send your photo again."),
}
UNSUBSCRIBE_ASK = page(
    "Stop all email to this address",
    f"Press the button and {SERVICE_NAME} sends no more email to this address, at any spelling of it.",
    button="Don't email me again",
    form_field=("List-Unsubscribe", "One-Click"),
)
UNSUBSCRIBED = page("You will get no more email from us", f"{SERVICE_NAME} sends nothing more to this address.")
UNSUBSCRIBE_UNKNOWN = page("This link is not valid", "Copy the whole link from the email.")
