"""AWS clients, built once per container on first use (a handler imports only what it calls)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, TypeVar

import boto3
from botocore.config import Config

from reimagine import faults
from reimagine.config import settings
from reimagine.records import RequestStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient

_Client = TypeVar("_Client")
_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


def _with_faults(client: _Client) -> _Client:
    """The fault lane's injected throttles and 5xx (off unless INJECTED_AWS_FAULT_RATE is set)."""
    cfg = settings()
    return faults.attach(client, cfg.injected_aws_fault_rate, cfg.injected_aws_fault_seed)


@cache
def dynamodb() -> DynamoDBClient:
    return _with_faults(boto3.client("dynamodb", config=_CONFIG))


@cache
def s3() -> S3Client:
    # SigV4 everywhere: presigned POSTs and URLs must work in every region.
    return _with_faults(boto3.client("s3", config=_CONFIG.merge(Config(signature_version="s3v4"))))


@cache
def ses() -> SESClient:
    return _with_faults(boto3.client("ses", config=_CONFIG))


@cache
def store() -> RequestStore:
    return RequestStore(dynamodb(), settings().table_name)
