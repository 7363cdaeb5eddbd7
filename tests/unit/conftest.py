"""Fixtures the unit tests of several subjects share (the moto mock itself, `aws`, is in tests/conftest.py)."""

from __future__ import annotations

import boto3
import pytest

from reimagine.records import STATUS_INDEX
from tests.fixtures.template import load_template, props


@pytest.fixture
def table(aws):
    """The fixture's table plus the status index exactly as the template declares it."""
    table_props = props(load_template(), "RequestsTable")
    (index,) = (i for i in table_props["GlobalSecondaryIndexes"] if i["IndexName"] == STATUS_INDEX)
    ddb = boto3.client("dynamodb")
    ddb.update_table(
        TableName=aws.table_name,
        AttributeDefinitions=[a for a in table_props["AttributeDefinitions"] if a["AttributeName"] != "id"],
        GlobalSecondaryIndexUpdates=[{"Create": index}],
    )
    return aws
