"""The email: caption, the stable link first, a short-lived presigned link; or the reason it failed."""

from datetime import timedelta

from reimagine.mail import compose
from reimagine.models import ErrorInfo, RequestRecord, ResultLink, Status, utcnow

RID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"


def _record(**changes) -> RequestRecord:
    now = utcnow()
    base = {
        "id": RID,
        "status": Status.COMPLETED,
        "email": "jane@example.com",
        "content_type": "image/png",
        "caption": "A <b>bold</b> red square & more.",
        "caption_provider": "offline",
        "result_key": f"results/{RID}.png",
        "created_at": now,
        "updated_at": now,
        "expires_at": 0,
    }
    return RequestRecord(**{**base, **changes})


def test_completed_email_has_caption_both_links_and_the_result_page_first():
    link = ResultLink(
        url="https://s3.example/results/x.png?X-Amz-Signature=abc&b=1",
        expires_at=utcnow() + timedelta(hours=1),
    )
    message = compose(_record(), link, api_base_url="https://api.example.com/", delete_key="K3y")
    assert message.subject == "Your reimagined picture is ready"
    assert "A <b>bold</b> red square & more." in message.text
    assert link.url in message.text
    page = f"https://api.example.com/results/{RID}#key=K3y"
    assert page in message.text
    assert message.text.index(page) < message.text.index(link.url)
    assert "not AI" in message.text  # the offline provider is never presented as AI
    # HTML: the caption is escaped, the links are there (with & escaped in attributes)
    assert "A &lt;b&gt;bold&lt;/b&gt; red square &amp; more." in message.html
    assert 'href="https://s3.example/results/x.png?X-Amz-Signature=abc&amp;b=1"' in message.html
    assert f'href="{page}"' in message.html


def test_the_email_names_the_style():
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(minutes=15))
    message = compose(
        _record(style="ukiyo-e"), link, api_base_url="https://api.example.com", style_name="Ukiyo-e woodblock"
    )
    assert "Style: Ukiyo-e woodblock" in message.text


def test_ai_caption_names_its_model_provider():
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(minutes=15))
    message = compose(_record(caption_provider="huggingface"), link, api_base_url="https://api.example.com")
    assert "AI model through huggingface" in message.text


def test_the_presigned_link_is_promised_no_time_only_an_upper_bound():
    # A URL signed with a Lambda role's session credentials dies with the session, which can be sooner
    # than its expiry: the email must not promise it works "until HH:MM".
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(hours=1))
    message = compose(_record(), link, api_base_url="https://api.example.com")
    assert ("until" in message.text, "at most 1 hour, and possibly less" in message.text) == (False, True)


def test_without_an_api_address_the_direct_link_is_the_only_one_and_says_it_is_short_lived():
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(minutes=15))
    message = compose(_record(), link, api_base_url="")
    assert "Download the new picture (a direct download link, short-lived: at most 15 minutes" in message.text


def test_failed_email_gives_the_reason_and_code():
    record = _record(status=Status.FAILED, error=ErrorInfo(code="NOT_AN_IMAGE", message="the upload is not an image"))
    message = compose(record, None, api_base_url="https://api.example.com", delete_key="K3y")
    assert message.subject == "We could not reimagine your picture"
    assert "What happened: the upload is not an image." in message.text
    assert "<code>NOT_AN_IMAGE</code>" in message.html
    # No picture to fetch, only the page that deletes the photo
    assert f"/requests/{RID}/result" not in message.text
    assert f"https://api.example.com/results/{RID}#key=K3y" in message.text


def test_an_ai_email_names_the_model_that_wrote_the_caption_and_the_one_that_painted():
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(minutes=15))
    record = _record(
        caption_provider="bedrock",
        caption_model="us.anthropic.claude-haiku-5-5",
        image_model="stability.sd3-5-large-v1:0",
    )
    message = compose(record, link, api_base_url="https://api.example.com")
    assert (
        "written by an AI model (us.anthropic.claude-haiku-5-5) through bedrock" in message.text,
        "Picture: painted by stability.sd3-5-large-v1:0 through bedrock." in message.text,
        "painted by stability.sd3-5-large-v1:0" in message.html,
    ) == (True, True, True)


def test_an_offline_email_says_the_picture_is_not_ai_either():
    link = ResultLink(url="https://x", expires_at=utcnow() + timedelta(minutes=15))
    message = compose(_record(image_model="offline-rendering"), link, api_base_url="")
    assert "rendered from the caption's words by the offline provider, not AI" in message.text
