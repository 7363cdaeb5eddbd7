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
    provider: Literal["offline", "huggingface", "bedrock"] = "offline"
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
    generation_style: str = "a vivid, detailed illustration"
    result_size: int = Field(default=768, ge=64, le=2048)
    # Mail
    sender_email: str = "reimagine@example.com"
    # Hugging Face
    hf_token_parameter: str = "/reimagine/huggingface/token"  # noqa: S105 - a parameter name, not a secret
    hf_base_url: str = "https://router.huggingface.co"
    hf_caption_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    hf_caption_route: Literal["chat", "image-to-text"] = "chat"
    hf_image_model: str = "black-forest-labs/FLUX.1-schnell"
    # Bedrock
    bedrock_caption_model: str = "anthropic.claude-3-haiku-20240307-v1:0"
    bedrock_image_model: str = "amazon.titan-image-generator-v2:0"
    # Retries of provider calls (attempts of one step before the request ends FAILED)
    max_attempts: int = Field(default=3, ge=1, le=10)
    # Sweeper: requests in a non-final state untouched this long are stuck; re-drives are bounded.
    stuck_after_seconds: int = Field(default=900, ge=60)
    max_redrives: int = Field(default=2, ge=0, le=10)
    sweep_max_items: int = Field(default=200, ge=1, le=5000)
    # Abuse limits: new requests per email per UTC day, counted under a keyed hash of the address.
    daily_quota_per_email: int = Field(default=20, ge=1)
    # Per-deployment salt of that hash (the stack id on AWS); a secret key from SSM wins when named.
    quota_salt: str = "reimagine-local"
    quota_key_parameter: str = ""

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
