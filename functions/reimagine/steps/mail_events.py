"""SES's bounce and complaint events: parsed as SES documents them, turned into suppressed addresses.

The configuration set every email is sent through publishes these to EventBridge; the record in
`detail` is SES's event-publishing format (`eventType`, `mail`, `bounce` or `complaint`), the same
JSON it publishes to SNS. Only a permanent bounce or a complaint suppresses an address: a transient
bounce (mailbox full, greylisting) or an undetermined one says nothing lasting about the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from reimagine.suppression import SuppressionList

PERMANENT = "Permanent"


class _SesModel(BaseModel):
    # SES adds fields over time; what is not read here is ignored, not refused.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Recipient(_SesModel):
    email_address: str = Field(alias="emailAddress", min_length=3, max_length=320)


class BouncedRecipient(Recipient):
    action: str | None = None
    status: str | None = None


class Bounce(_SesModel):
    bounce_type: str = Field(alias="bounceType")  # Permanent, Transient or Undetermined
    bounce_sub_type: str = Field(alias="bounceSubType")
    bounced_recipients: list[BouncedRecipient] = Field(alias="bouncedRecipients", max_length=100)
    timestamp: datetime
    feedback_id: str = Field(alias="feedbackId")


class Complaint(_SesModel):
    complained_recipients: list[Recipient] = Field(alias="complainedRecipients", max_length=100)
    timestamp: datetime
    feedback_id: str = Field(alias="feedbackId")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")
    complaint_sub_type: str | None = Field(default=None, alias="complaintSubType")


class Mail(_SesModel):
    message_id: str = Field(alias="messageId")
    timestamp: datetime
    tags: dict[str, list[str]] = Field(default_factory=dict)


class MailEvent(_SesModel):
    """One SES event-publishing record (the `detail` of an `aws.ses` EventBridge event)."""

    event_type: str = Field(alias="eventType")
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None


@dataclass(frozen=True)
class Recorded:
    """What one event did: its kind, how many addresses it named and how many were newly suppressed."""

    kind: str
    recipients: int
    suppressed: int


def record_mail_event(event: MailEvent, suppressions: SuppressionList) -> Recorded:
    """Suppress the addresses a permanent bounce or a complaint names; anything else is only counted."""
    if event.event_type == "Bounce" and event.bounce is not None:
        bounce = event.bounce
        kind = f"bounce_{bounce.bounce_type.lower()}"
        if bounce.bounce_type != PERMANENT:
            return Recorded(kind, len(bounce.bounced_recipients), 0)
        new = sum(
            suppressions.suppress(r.email_address, reason="bounce", at=bounce.timestamp, feedback_id=bounce.feedback_id)
            for r in bounce.bounced_recipients
        )
        return Recorded(kind, len(bounce.bounced_recipients), new)
    if event.event_type == "Complaint" and event.complaint is not None:
        complaint = event.complaint
        new = sum(
            suppressions.suppress(
                r.email_address, reason="complaint", at=complaint.timestamp, feedback_id=complaint.feedback_id
            )
            for r in complaint.complained_recipients
        )
        return Recorded("complaint", len(complaint.complained_recipients), new)
    return Recorded(event.event_type.lower(), 0, 0)
