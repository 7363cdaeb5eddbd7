"""What the stack adds to every function's environment beyond its template section: only the
endpoint access (the emulator, per-service endpoints) and the fault lane, each by configuration."""

from __future__ import annotations

from reimagine_emulator.stack import AwsFaults, EmbeddedStack
from tests.fixtures.template import TEMPLATE


def test_a_service_endpoint_is_the_variable_botocore_reads_for_that_service():
    stack = EmbeddedStack(TEMPLATE, aws_endpoints={"bedrock-runtime": "http://127.0.0.1:9001"})
    assert stack.aws_endpoints == {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:9001"}


def test_the_fault_lane_is_its_rate_and_seed_as_reimagine_faults_reads_them():
    assert AwsFaults(0.3, 7).environment() == {"INJECTED_AWS_FAULT_RATE": "0.3", "INJECTED_AWS_FAULT_SEED": "7"}
    assert AwsFaults(0.1).environment() == {"INJECTED_AWS_FAULT_RATE": "0.1"}
