"""Shared fixtures. The environment is set before any `reimagine` module reads its settings."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra"), str(ROOT)]

# Tests never reach AWS: dummy credentials, one region, Powertools quiet and local.
_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "reimagine",
    "POWERTOOLS_METRICS_NAMESPACE": "Reimagine",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "TABLE_NAME": "reimagine-requests-test",
    "UPLOADS_BUCKET": "reimagine-uploads-test",
    "RESULTS_BUCKET": "reimagine-results-test",
    "SENDER_EMAIL": "reimagine@example.com",
    "API_BASE_URL": "https://api.example.com",
    "PROVIDER": "offline",
    # Handlers run here without the confirmation gate; tests/unit/test_confirmation.py gives the domain
    # functions their Confirmations, and tests/integration/test_confirmation.py runs the template's default.
    "CONFIRM_ADDRESSES": "false",
}
for _key, _value in _TEST_ENV.items():
    os.environ.setdefault(_key, _value)
# The backend under test is chosen by the fixtures, never inherited from the shell.
os.environ.pop("AWS_ENDPOINT_URL", None)


@functools.cache
def _requests_table() -> Any:
    """RequestsTable as template.yaml declares it (keys, indexes, stream, TTL), read as SAM translates it."""
    from reimagine_tools.template import read_application

    (table,) = read_application(ROOT / "template.yaml").tables.values()
    return table


@pytest.fixture
def aws():
    """An in-process moto mock with the table (from the template) and buckets the functions use, created empty."""
    import boto3
    from moto import mock_aws

    from reimagine import clients
    from reimagine.config import settings
    from reimagine_emulator.resources import Created, create_tables

    cfg = settings()
    with mock_aws():
        for cached in (clients.dynamodb, clients.s3, clients.ses, clients.store):
            cached.cache_clear()
        table = dataclasses.replace(_requests_table(), name=cfg.table_name)
        create_tables(SimpleNamespace(tables={table.logical_id: table}), boto3.client("dynamodb"), Created())  # type: ignore[arg-type]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=cfg.uploads_bucket)
        s3.create_bucket(Bucket=cfg.results_bucket)
        boto3.client("ses").verify_email_identity(EmailAddress=cfg.sender_email)
        yield cfg
        for cached in (clients.dynamodb, clients.s3, clients.ses, clients.store):
            cached.cache_clear()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Read by tests/integration/conftest.py; declared here so that it exists however pytest is started.
    group = parser.getgroup("reimagine", "reimagine integration backends")
    group.addoption(
        "--backend",
        action="append",
        default=None,
        metavar="NAMES",
        help="backends for the integration suite, comma-separated: moto (always) and localstack. "
        "Default: $REIMAGINE_BACKENDS, else moto only.",
    )
    group.addoption(
        "--aws-faults",
        action="store_true",
        default=bool(os.environ.get("REIMAGINE_AWS_FAULTS")),
        help="run the AWS fault lane (tests marked aws_faults; minutes): a share of the functions' AWS calls "
        "fail. Default: $REIMAGINE_AWS_FAULTS, else deselected.",
    )
    group.addoption(
        "--localstack-url",
        default=None,
        metavar="URL",
        help="the LocalStack endpoint (default: $REIMAGINE_LOCALSTACK_URL, else http://127.0.0.1:4566)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The AWS fault lane runs only when asked for (it takes minutes); otherwise it is deselected."""
    if config.getoption("--aws-faults"):
        return
    lane = [item for item in items if item.get_closest_marker("aws_faults")]
    if lane:
        config.hook.pytest_deselected(items=lane)
        items[:] = [item for item in items if not item.get_closest_marker("aws_faults")]
