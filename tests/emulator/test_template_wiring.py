"""template.yaml read by the local stack: intrinsics resolved, wiring as the contracts say, resources created."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from reimagine.config import Settings
from reimagine_emulator.invoke import union_environment
from reimagine_emulator.resources import Clients, create_all, create_secrets
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import (
    HttpRoute,
    InvokeConfig,
    Pipe,
    QueueTrigger,
    S3Trigger,
    ScheduleTrigger,
    Secret,
    TemplateError,
    read_application,
)
from reimagine_tools.translated import translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

INTRINSICS = """
Parameters:
  Stage: {Type: String, Default: dev}
  Origins: {Type: CommaDelimitedList, Default: "http://a,http://b"}
  Size: {Type: Number, Default: 5}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [{Condition: IsProd}]
Globals:
  Function:
    Runtime: python3.13
    Timeout: 9
    MemorySize: 512
    Handler: default.handler
    Environment:
      Variables:
        SHARED: global
        OVERRIDDEN: global
Resources:
  Named:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-named-${AWS::AccountId}-${AWS::Region}"
      CorsConfiguration:
        CorsRules:
          - AllowedMethods: [POST]
            AllowedOrigins: !Split [",", !Join [",", [!Join [",", !Ref Origins], "http://c"]]]
            MaxAge: 60
  Unnamed:
    Type: AWS::S3::Bucket
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !If [IsProd, prod-queue, !Sub "${Stage}-queue"]
      MessageRetentionPeriod: 60
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.main
      Timeout: 3
      Environment:
        Variables:
          OVERRIDDEN: local
          SUB_LIST: !Sub ["${Prefix}/${Named}/${!Literal}", {Prefix: !Select [1, !Ref Origins]}]
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          STREAM: !GetAtt Table.StreamArn
          QUEUE_URL: !Ref Queue
          QUEUE_ARN: !GetAtt Queue.Arn
          BUCKET_ARN: !GetAtt Unnamed.Arn
          SIZE: !Ref Size
          PARTITION: !Sub "${AWS::Partition}:${AWS::URLSuffix}"
          ONLY_PROD: !If [IsProd, "yes", !Ref AWS::NoValue]
          NOT_PROD: !If [NotProd, "yes", "no"]
  Plain:
    Type: AWS::Serverless::Function
"""


@pytest.fixture
def intrinsics(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(INTRINSICS)
    return path


def test_intrinsics_resolve_for_the_stack(intrinsics):
    app = read_application(intrinsics, stack_name="demo", account_id="000000000000", region="eu-west-1")
    env = app.functions["Fn"].environment
    assert env["SHARED"] == "global" and env["OVERRIDDEN"] == "local"
    assert env["SUB_LIST"] == "http://b/demo-named-000000000000-eu-west-1/${Literal}"
    assert env["TABLE"] == "demo-table"
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:eu-west-1:000000000000:table/demo-table"
    assert env["STREAM"].startswith(env["TABLE_ARN"] + "/stream/")
    assert env["QUEUE_URL"].endswith("/000000000000/dev-queue")
    assert env["QUEUE_ARN"] == "arn:aws:sqs:eu-west-1:000000000000:dev-queue"
    assert env["BUCKET_ARN"] == "arn:aws:s3:::demo-unnamed"
    assert env["SIZE"] == "5"
    assert env["PARTITION"] == "aws:amazonaws.com"
    assert "ONLY_PROD" not in env
    assert env["NOT_PROD"] == "yes"
    assert app.buckets["Named"].cors_rules == (
        {"AllowedMethods": ["POST"], "AllowedOrigins": ["http://a", "http://b", "http://c"], "MaxAgeSeconds": 60},
    )
    assert app.queues["Queue"].attributes == {"MessageRetentionPeriod": "60"}
    fn, plain = app.functions["Fn"], app.functions["Plain"]
    assert (fn.handler, fn.timeout, fn.memory_size) == ("app.main", 3, 512)
    assert (plain.handler, plain.timeout, plain.environment) == (
        "default.handler",
        9,
        {"SHARED": "global", "OVERRIDDEN": "global"},
    )


def test_parameters_resolve_into_the_environment_and_names(intrinsics):
    app = read_application(intrinsics, parameters={"Stage": "prod", "Size": "7"})
    env = app.functions["Fn"].environment
    assert (env["ONLY_PROD"], env["NOT_PROD"], env["SIZE"]) == ("yes", "no", "7")
    assert app.queues["Queue"].name == "prod-queue"
    with pytest.raises(TemplateError, match="Nope"):
        read_application(intrinsics, parameters={"Nope": "1"})


def test_env_overrides_replace_only_variables_a_function_declares(intrinsics):
    # Given overrides of a declared variable and of one no function declares
    app = read_application(intrinsics, env_overrides={"OVERRIDDEN": "http://x", "UNDECLARED": "nope"})
    # Then each function has the declared one replaced and never gains the other, as on AWS
    assert app.functions["Plain"].environment == {"SHARED": "global", "OVERRIDDEN": "http://x"}
    assert all("UNDECLARED" not in fn.environment for fn in app.functions.values())


def test_unsupported_intrinsics_are_errors(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Handler: a.b\n      Runtime: python3.13\n"
        "      Environment: {Variables: {X: !ImportValue other-stack-export}}\n"
    )
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        read_application(path)


# Wiring as SAM translates it ---------------------------------------------------------------------------

QUEUED = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Concurrency: {Type: Number, Default: 4}
Globals:
  Function: {Runtime: python3.13, Handler: app.handler, CodeUri: src/}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Inbox:
    Type: AWS::S3::Bucket
  Work:
    Type: AWS::SQS::Queue
  Parked:
    Type: AWS::SQS::Queue
  Feed:
    Type: AWS::Pipes::Pipe
    Properties:
      RoleArn: arn:aws:iam::123456789012:role/feed
      Source: !GetAtt Table.StreamArn
      SourceParameters:
        DynamoDBStreamParameters:
          StartingPosition: TRIM_HORIZON
          BatchSize: 10
          MaximumRetryAttempts: 3
          DeadLetterConfig: {Arn: !GetAtt Parked.Arn}
        FilterCriteria:
          Filters: [{Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["picture"]}}}}'}]
      Target: !GetAtt Work.Arn
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      # Events then reach the alias, not the function: the reader follows it back.
      AutoPublishAlias: live
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        MaximumEventAgeInSeconds: 600
        DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt Parked.Arn}}
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 5
            MaximumBatchingWindowInSeconds: 2
            ScalingConfig: {MaximumConcurrency: !Ref Concurrency}
            FunctionResponseTypes: [ReportBatchItemFailures]
            FilterCriteria: {Filters: [{Pattern: '{"body": {"size": [{"numeric": [">", 0]}]}}'}]}
            Enabled: false
        Photos:
          Type: S3
          Properties:
            Bucket: !Ref Inbox
            Events: [s3:ObjectCreated:Put, s3:ObjectCreated:Post]
            Filter: {S3Key: {Rules: [{Name: suffix, Value: .jpg}]}}
        Hourly:
          Type: Schedule
          Properties: {Schedule: rate(1 hour), Enabled: false}
        Daily:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(1 day)}
        Anything:
          Type: HttpApi
"""


@pytest.fixture
def queued(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(QUEUED)
    return path


def test_an_sqs_event_is_a_queue_trigger_of_the_function_behind_the_alias(queued):
    # Given a function whose SQS event SAM translates to a mapping on its `live` alias
    app = read_application(queued, parameters={"Concurrency": "3"})
    worker = app.functions["Worker"]
    # Then it is the function's queue trigger, with every property of the mapping
    assert worker.queue_triggers == (
        QueueTrigger(
            name="Jobs",
            queue="Work",
            batch_size=5,
            maximum_batching_window=2,
            maximum_concurrency=3,
            report_batch_item_failures=True,
            filters=({"body": {"size": [{"numeric": [">", 0]}]}},),
            enabled=False,
        ),
    )
    assert worker.stream_triggers == ()


def test_the_other_triggers_come_from_what_sam_made_of_the_events(queued):
    # Given the same function's other events, as SAM translates them
    app = read_application(queued)
    worker = app.functions["Worker"]
    parked = app.queues["Parked"].arn
    # Then: the bucket notification (both events in one trigger), the invoke config, both kinds of
    # schedule (a disabled Schedule is a DISABLED rule), the implicit API's catch-all route, the code
    assert worker.s3_triggers == (
        S3Trigger("Photos", "Inbox", ("s3:ObjectCreated:Put", "s3:ObjectCreated:Post"), suffix=".jpg"),
    )
    assert worker.invoke_config == InvokeConfig(maximum_retry_attempts=1, on_failure=parked, maximum_event_age=600)
    assert (worker.invoke_config.maximum_event_age_seconds, InvokeConfig().maximum_event_age_seconds) == (600, 21600)
    assert sorted(worker.schedules, key=lambda s: s.name) == [
        ScheduleTrigger("Daily", "rate(1 day)", True, "WorkerDaily"),
        ScheduleTrigger("Hourly", "rate(1 hour)", False, "reimagine-worker-Hourly"),
    ]
    assert worker.routes == (HttpRoute("ANY", "/$default"),)
    assert (worker.code_uri, worker.handler, worker.timeout) == ("src/", "app.handler", 3)


def test_a_pipe_is_read_from_the_resources(queued):
    # Given a pipe from the table's stream to the work queue (plain CloudFormation)
    app = read_application(queued)
    # Then the application has it, resolved
    assert app.pipes == {
        "Feed": Pipe(
            logical_id="Feed",
            name="reimagine-feed",
            table="Table",
            queue="Work",
            batch_size=10,
            starting_position="TRIM_HORIZON",
            filters=({"dynamodb": {"NewImage": {"kind": {"S": ["picture"]}}}},),
            maximum_retry_attempts=3,
            dead_letter=app.queues["Parked"].arn,
            enabled=True,
        )
    }


def test_a_template_sam_rejects_is_an_error_with_sams_reason(tmp_path):
    # Given a function with no Runtime (SAM requires one for zip code)
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: a.b}\n")
    # Then reading it fails as `sam validate` would, naming the resource
    with pytest.raises(TemplateError, match=r"\[F\] is invalid. Runtime and Handler needs to be present"):
        read_application(path)


def test_a_managed_policy_is_named_from_the_translators_own_list_never_through_iam(tmp_path):
    # Given a function with a managed policy name samtranslator's bundled list does not have
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.13\n      Handler: a.b\n      Policies: [NoSuchManagedPolicy]\n"
    )
    # Then reading it is an error (sam-cli would ask IAM's ListPolicies; a local stack asks no account)
    with pytest.raises(TemplateError, match="not in samtranslator's bundled list"):
        read_application(path)


def test_the_translation_is_made_once_per_template_and_inputs(tmp_path, monkeypatch):
    # Given a template translated once, with a cache folder
    from reimagine_tools import translated

    sam = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}
    first = translate(sam, region="eu-west-1", parameters={}, cache_dir=tmp_path)
    calls = []
    monkeypatch.setattr(translated, "_translate", lambda *args: calls.append(args) or {"Resources": {}})
    # When it is asked for again in this process, then by a new one (its memory empty), then for another region
    again = translate(sam, region="eu-west-1", parameters={}, cache_dir=tmp_path)
    monkeypatch.setattr(translated, "_cache", type(translated._cache)())
    restarted = translate(sam, region="eu-west-1", parameters={}, cache_dir=tmp_path)
    translate(sam, region="eu-west-2", parameters={}, cache_dir=tmp_path)
    # Then only the other region is translated again (copies every time, so no caller changes another's)
    assert again == restarted == first and again is not first
    assert [args[1] for args in calls] == ["eu-west-2"]
    assert len(list(tmp_path.glob("*.json"))) == 2


# The real template -----------------------------------------------------------------------------------

SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
RUNTIME_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}


@pytest.fixture(scope="module")
def app():
    return read_application(TEMPLATE, env_overrides={"API_BASE_URL": "http://127.0.0.1:3000"})


def test_functions_and_handlers_are_the_contracts(app):
    assert {fn.logical_id: fn.handler for fn in app.functions.values()} == {
        "ApiFunction": "reimagine.handlers.api.handler",
        "CaptionFunction": "reimagine.handlers.caption.handler",
        "GenerateFunction": "reimagine.handlers.generate.handler",
        "NotifyFunction": "reimagine.handlers.notify.handler",
        "SweeperFunction": "reimagine.handlers.sweeper.handler",
        "MailEventsFunction": "reimagine.handlers.mail_events.handler",
    }
    assert {r.route_key for r in app.functions["ApiFunction"].routes} == {
        "POST /requests",
        "GET /requests/{id}",
        "GET /requests/{id}/result",
        "GET /openapi.json",
        "GET /",
        "GET /confirm/{token}",
        "POST /confirm/{token}",
        "GET /unsubscribe/{token}",
        "POST /unsubscribe/{token}",
        "GET /styles",
        "GET /results/{id}",
        "DELETE /requests/{id}",
    }


def test_every_variable_is_a_setting_and_functions_agree(app):
    for fn in app.functions.values():
        assert set(fn.environment) <= SETTINGS_VARIABLES | RUNTIME_VARIABLES, fn.logical_id
        assert fn.environment["TABLE_NAME"] == app.tables["RequestsTable"].name
        assert fn.environment["POWERTOOLS_SERVICE_NAME"] == "reimagine"
    env = union_environment(app.functions.values())  # raises if two functions disagree
    assert env["UPLOADS_BUCKET"] == app.buckets["UploadsBucket"].name
    assert env["RESULTS_BUCKET"] == app.buckets["ResultsBucket"].name
    # Only the functions that mail links to the API declare it, so only their values are replaced.
    assert {fn.logical_id for fn in app.functions.values() if "API_BASE_URL" in fn.environment} == {
        "CaptionFunction",
        "NotifyFunction",
    }
    assert env["API_BASE_URL"] == "http://127.0.0.1:3000"


def test_uploads_trigger_captioning(app):
    caption = app.functions["CaptionFunction"]
    [trigger] = caption.s3_triggers
    assert trigger.bucket == "UploadsBucket"
    assert trigger.prefix == "uploads/"
    assert "s3:ObjectCreated:*" in trigger.events
    assert caption.invoke_config.on_failure == app.queues["FailureQueue"].arn


def test_generation_is_piped_from_the_stream_to_its_queue(app):
    from reimagine_emulator.filters import passes

    pipe = app.pipes["GeneratePipe"]
    assert (pipe.table, pipe.queue, pipe.batch_size, pipe.starting_position) == (
        "RequestsTable",
        "GenerateQueue",
        10,
        "LATEST",
    )
    assert (pipe.maximum_retry_attempts, pipe.dead_letter) == (3, app.queues["FailureQueue"].arn)
    assert passes({"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "CAPTIONED"}}}}, pipe.filters)
    assert not passes({"eventName": "MODIFY", "dynamodb": {"NewImage": {"status": {"S": "CAPTIONING"}}}}, pipe.filters)
    generate = app.functions["GenerateFunction"]
    (trigger,) = generate.queue_triggers
    assert (trigger.queue, trigger.batch_size, trigger.maximum_concurrency, trigger.report_batch_item_failures) == (
        "GenerateQueue",
        1,
        generate.reserved_concurrency,
        True,
    )
    assert generate.stream_triggers == ()
    redrive = json.loads(app.queues["GenerateQueue"].attributes["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": app.queues["FailureQueue"].arn, "maxReceiveCount": 4}


@pytest.mark.parametrize(
    ("function", "passing", "blocked"),
    [
        (
            "NotifyFunction",
            [{"status": {"S": "COMPLETED"}}, {"status": {"S": "FAILED"}}],
            [
                {"status": {"S": "COMPLETED"}, "notified_at": {"S": "2024-01-01T00:00:00Z"}},
                {"status": {"S": "GENERATING"}},
            ],
        ),
    ],
)
def test_stream_subscribers(app, function, passing, blocked):
    from reimagine_emulator.filters import passes

    [trigger] = app.functions[function].stream_triggers
    assert trigger.table == "RequestsTable"
    assert trigger.report_batch_item_failures
    assert trigger.on_failure == app.queues["FailureQueue"].arn
    assert trigger.maximum_retry_attempts >= 0  # bounded, so a poison record cannot stall the stream
    for image in passing:
        assert passes({"eventName": "MODIFY", "dynamodb": {"NewImage": image}}, trigger.filters)
    for image in blocked:
        assert not passes({"eventName": "MODIFY", "dynamodb": {"NewImage": image}}, trigger.filters)


def test_api_cors_comes_from_the_template(app):
    assert app.cors is not None
    assert "http://localhost:3000" in app.cors.allow_origins
    assert {"GET", "POST"} <= set(app.cors.allow_methods)


def test_table_shape(app):
    table = app.tables["RequestsTable"]
    assert table.key_schema == ({"AttributeName": "id", "KeyType": "HASH"},)
    assert table.ttl_attribute == "expires_at"
    assert table.stream_view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")


def test_resources_are_created_on_moto_and_creation_is_idempotent():
    # Given the real template started on its own moto server
    with EmbeddedStack(TEMPLATE, stack_name="wiring").start() as stack:
        app = stack.app
        s3, ddb, sqs, ses, secrets = (stack.client(s) for s in ("s3", "dynamodb", "sqs", "ses", "secretsmanager"))
        key_name = app.secrets["QuotaKeySecret"].name
        first_key = secrets.get_secret_value(SecretId=key_name)["SecretString"]
        # When everything is created a second time
        again = create_all(app, Clients(s3, ddb, sqs, ses, secrets))
        # Then nothing new was made and the wiring is in place
        assert again.new_tables == set()
        assert again.stream_arns == stack.created.stream_arns
        uploads = app.buckets["UploadsBucket"].name
        rules = s3.get_bucket_cors(Bucket=uploads)["CORSRules"]
        assert rules[0]["AllowedMethods"] == ["POST"]
        [config] = s3.get_bucket_notification_configuration(Bucket=uploads)["QueueConfigurations"]
        assert config["QueueArn"] == again.notification_queues[0].queue_arn
        assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "uploads/"}]
        table = ddb.describe_table(TableName=app.tables["RequestsTable"].name)["Table"]
        assert table["StreamSpecification"]["StreamEnabled"]
        ttl = ddb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        assert sqs.get_queue_url(QueueName=app.queues["FailureQueue"].name)["QueueUrl"]
        sender = app.functions["NotifyFunction"].environment["SENDER_EMAIL"]
        assert sender in ses.list_identities()["Identities"]
        # The generated quota key exists, is kept across runs (as a stack update keeps it) and is
        # what the functions are told to read; the configuration set every send names exists.
        assert secrets.get_secret_value(SecretId=key_name)["SecretString"] == first_key
        assert app.functions["ApiFunction"].environment["QUOTA_KEY_SECRET"] == key_name
        configuration_set = app.functions["NotifyFunction"].environment["MAIL_CONFIGURATION_SET"]
        assert ses.describe_configuration_set(ConfigurationSetName=configuration_set)["ConfigurationSet"]["Name"] == (
            configuration_set
        )
        policy = sqs.get_queue_attributes(QueueUrl=again.notification_queues[0].queue_url, AttributeNames=["Policy"])
        assert json.loads(policy["Attributes"]["Policy"])["Statement"][0]["Principal"] == {
            "Service": "s3.amazonaws.com"
        }


def test_the_generated_quota_key_follows_generate_secret_string(app):
    # Given the template's secret, as the local stack reads it
    secret = app.secrets["QuotaKeySecret"]
    # Then it is generated (never written), and each function that hashes addresses is told its name
    assert secret.secret_string is None
    assert secret.generate == {"PasswordLength": 64, "ExcludePunctuation": True}
    for function in ("ApiFunction", "NotifyFunction", "MailEventsFunction"):
        assert app.functions[function].environment["QUOTA_KEY_SECRET"] == secret.name
        assert "QUOTA_KEY_PARAMETER" not in app.functions[function].environment


def test_a_named_ssm_key_replaces_the_generated_secret():
    # Given a key parameter named at deploy time
    app = read_application(TEMPLATE, parameters={"QuotaKeyParameter": "/reimagine/quota-key"})
    # Then no secret is created and the functions read the parameter instead
    assert app.secrets == {}
    env = app.functions["ApiFunction"].environment
    assert env["QUOTA_KEY_PARAMETER"] == "/reimagine/quota-key"
    assert "QUOTA_KEY_SECRET" not in env


def test_generated_values_come_from_the_service_with_the_declared_options():
    # Given a secret generated with options, on a moto Secrets Manager
    templated = Secret(
        "Key",
        "wiring-templated",
        generate={
            "PasswordLength": 40,
            "ExcludePunctuation": True,
            "SecretStringTemplate": '{"user": "svc"}',
            "GenerateStringKey": "password",
        },
    )
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        app = read_application(TEMPLATE)
        create_secrets(replace(app, secrets={"Key": templated}), client)
        # Then the value is the template with a generated password of that length and alphabet under the key
        value = json.loads(client.get_secret_value(SecretId="wiring-templated")["SecretString"])
    assert value["user"] == "svc"
    assert len(value["password"]) == 40 and value["password"].isalnum()
