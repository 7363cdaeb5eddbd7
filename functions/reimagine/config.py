"""Environment, described once. Handlers read `settings()`; logic receives values, never os.environ."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

MiB = 1024 * 1024


class Settings(BaseModel):
    """Every setting a function reads, with the defaults the local stack and tests run on."""

    # No default names: a function that needs one and is not given it stops at start (require_settings).
    table_name: str = ""
    uploads_bucket: str = ""
    results_bucket: str = ""
    provider: Literal["offline", "huggingface", "bedrock", "openai"] = "offline"
    # API
    max_upload_bytes: int = Field(default=20 * MiB, gt=0)
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    result_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    record_ttl_days: int = Field(default=30, ge=1)
    api_base_url: str = ""
    # Imaging
    max_image_pixels: int = Field(default=64_000_000, gt=0)
    caption_max_side: int = Field(default=1024, ge=64, le=4096)
    caption_jpeg_quality: int = Field(default=85, ge=30, le=95)
    # Generation
    # The styles on offer (reimagine.styles): empty for the built-in set, else JSON extending or replacing it.
    styles: str = ""
    result_size: int = Field(default=768, ge=64, le=1536)  # imaging.MAX_PICTURE_SIDE: never stored larger
    # Mail: every send names the configuration set whose event destination records bounces and complaints.
    sender_email: str = "reimagine@example.com"
    mail_configuration_set: str = ""
    # Providers. Every *_models setting is a fallback chain: comma-separated, tried in order.
    # Hugging Face Inference Providers (router) and the Hub (which provider serves which model)
    hf_token_parameter: str = "/reimagine/huggingface/token"  # noqa: S105 - a parameter name, not a secret
    hf_router_url: str = "https://router.huggingface.co"
    hf_hub_url: str = "https://huggingface.co"
    hf_caption_models: str = "Qwen/Qwen3-VL-235B-A22B-Instruct,Qwen/Qwen3-VL-8B-Instruct"
    hf_image_models: str = "black-forest-labs/FLUX.1-schnell,stabilityai/stable-diffusion-xl-base-1.0"
    # Bedrock: model ids or inference profile ids (us.…, global.…)
    bedrock_caption_models: str = "us.anthropic.claude-haiku-5-5,us.amazon.nova-2-lite-v1:0"
    bedrock_image_models: str = "stability.stable-image-core-v1:1,stability.sd3-5-large-v1:0"
    # The region that paints (the image models are offered in few regions); empty: the function's own.
    bedrock_image_region: str = Field(default="", pattern=r"^$|^[a-z]{2}(-[a-z]+)+-[0-9]$")
    # Any OpenAI-compatible server; the key is the NAME of an SSM SecureString, empty for none (Ollama)
    openai_base_url: str = "https://api.openai.com"
    openai_caption_models: str = "gpt-4.1-mini"
    openai_image_models: str = "gpt-image-1"
    openai_key_parameter: str = ""
    # Moderation of the upload, the caption and the picture (reimagine.moderation); the template
    # chooses `offline` by default, bare settings (unit tests of other things) check nothing.
    moderation: Literal["none", "offline", "openai", "rekognition"] = "none"
    # Thresholds, defaults from each service's own guidance: open_nsfw's authors read scores above 0.8
    # as NSFW "with high probability"; Rekognition's MinConfidence defaults to 50 (percent); Comprehend's
    # toxicity scores are probabilities, 0.5 the even line; OpenAI: its own `flagged` unless a score
    # threshold is set.
    moderation_nsfw_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    moderation_min_confidence: float = Field(default=50.0, ge=0.0, le=100.0)
    moderation_toxicity_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    moderation_score_threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    openai_moderation_model: str = "omni-moderation-latest"
    # Comprehend's DetectToxicContent is offered in few regions; empty: the function's own.
    moderation_text_region: str = Field(default="", pattern=r"^$|^[a-z]{2}(-[a-z]+)+-[0-9]$")
    # Retries of provider calls (attempts of one step before the request ends FAILED)
    max_attempts: int = Field(default=3, ge=1, le=10)
    # Sweeper: requests in a non-final state untouched this long are stuck; re-drives are bounded.
    stuck_after_seconds: int = Field(default=900, ge=60)
    max_redrives: int = Field(default=2, ge=0, le=10)
    sweep_max_items: int = Field(default=200, ge=1, le=5000)
    # Abuse limits: new requests per email, per source IP and for the whole stack per UTC day,
    # counted under a keyed hash of the address or IP.
    daily_quota_per_email: int = Field(default=20, ge=1)
    daily_quota_per_ip: int = Field(default=200, ge=1)
    daily_request_budget: int = Field(default=1000, ge=1)
    # The key of that hash: an SSM SecureString when named, else the stack's generated secret (name or
    # ARN); the fixed salt is for tests and bare local runs only.
    quota_salt: str = "reimagine-local"
    quota_key_parameter: str = ""
    quota_key_secret: str = ""
    # Double opt-in (reimagine.confirmation): a mailbox gets nothing but one confirmation mail until it
    # confirms, then stays confirmed this many days; a confirmation link lasts as long as the upload.
    confirm_addresses: bool = True
    confirmed_for_days: int = Field(default=180, ge=1)
    upload_retention_days: int = Field(default=1, ge=1)
    # The AWS fault lane (reimagine.faults): a share of DynamoDB/S3/SES calls fail. Never set on AWS.
    injected_aws_fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    injected_aws_fault_seed: int | None = None

    @staticmethod
    def chain(value: str) -> list[str]:
        """A comma-separated chain as its models, in order, blanks and repeats dropped."""
        return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read UPPER_CASE variables named after the fields; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values = {name: env[name.upper()] for name in cls.model_fields if env.get(name.upper())}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this container, read once."""
    return Settings.from_env()


class MissingSettings(RuntimeError):
    """A setting this function cannot run without is not in its environment."""


def require_settings(*names: str) -> Settings:
    """This container's settings, after checking the named ones are set: called at start, so a function
    deployed without them fails its init with this message instead of its first event with another."""
    cfg = settings()
    if missing := [name.upper() for name in names if not getattr(cfg, name)]:
        raise MissingSettings(f"{', '.join(missing)} not set: this function needs them (template.yaml sets them)")
    return cfg
