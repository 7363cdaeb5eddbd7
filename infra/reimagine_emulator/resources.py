"""Create on an AWS endpoint what the template declares, plus the queues that carry S3 notifications.

Every step is idempotent: running it against an endpoint that already has the resources changes
nothing (so `up` can be re-run against a long-lived LocalStack).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from reimagine_tools.template import Application, Function, S3Trigger, Secret, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("reimagine_emulator")


@dataclass
class Clients:
    s3: S3Client
    dynamodb: DynamoDBClient
    sqs: SQSClient
    ses: SESClient
    secretsmanager: SecretsManagerClient | None = None  # needed only when the template declares secrets


@dataclass(frozen=True)
class NotificationQueue:
    """The SQS queue that one function's S3 trigger is delivered through."""

    function: Function
    trigger: S3Trigger
    queue_url: str
    queue_arn: str


@dataclass
class Created:
    """What the endpoint now holds that delivery needs to know."""

    stream_arns: dict[str, str] = field(default_factory=dict)  # table logical id -> latest stream ARN
    new_tables: set[str] = field(default_factory=set)  # created by this run (fresh streams)
    notification_queues: list[NotificationQueue] = field(default_factory=list)
    queue_urls: dict[str, str] = field(default_factory=dict)  # template queue logical id -> URL


def notification_queue_name(app: Application, fn: Function, trigger: S3Trigger) -> str:
    # One queue per trigger, so that S3 itself routes each object to the functions whose filters match.
    return f"{app.context.stack_name}-{fn.logical_id}-{trigger.name}-s3".lower()[:80]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def create_buckets(app: Application, s3: S3Client) -> None:
    for bucket in app.buckets.values():
        try:
            s3.head_bucket(Bucket=bucket.name)
        except ClientError:
            if app.context.region == "us-east-1":
                s3.create_bucket(Bucket=bucket.name)
            else:
                s3.create_bucket(
                    Bucket=bucket.name,
                    CreateBucketConfiguration={"LocationConstraint": app.context.region},  # type: ignore[typeddict-item]
                )
            log.info("created bucket %s", bucket.name)
        if bucket.cors_rules:
            s3.put_bucket_cors(
                Bucket=bucket.name,
                CORSConfiguration={"CORSRules": list(bucket.cors_rules)},  # type: ignore[arg-type]
            )


def create_tables(app: Application, dynamodb: DynamoDBClient, created: Created) -> None:
    for table in app.tables.values():
        stream = (
            {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
            if table.stream_view_type
            else {"StreamEnabled": False}
        )
        try:
            description = dynamodb.describe_table(TableName=table.name)["Table"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            kwargs: dict[str, Any] = {
                "TableName": table.name,
                "KeySchema": list(table.key_schema),
                "AttributeDefinitions": list(table.attribute_definitions),
                "StreamSpecification": stream,
            }
            if table.global_secondary_indexes:
                kwargs["GlobalSecondaryIndexes"] = [dict(index) for index in table.global_secondary_indexes]
            if table.billing_mode == "PAY_PER_REQUEST":
                kwargs["BillingMode"] = "PAY_PER_REQUEST"
            else:
                kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            dynamodb.create_table(**kwargs)
            dynamodb.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1})
            description = dynamodb.describe_table(TableName=table.name)["Table"]
            created.new_tables.add(table.logical_id)
            log.info("created table %s", table.name)
        if table.stream_view_type and not description.get("LatestStreamArn"):
            description = dynamodb.update_table(TableName=table.name, StreamSpecification=stream)[  # type: ignore[arg-type]
                "TableDescription"
            ]
        if table.ttl_attribute:
            ttl = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                dynamodb.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
        if description.get("LatestStreamArn"):
            created.stream_arns[table.logical_id] = description["LatestStreamArn"]


def _ensure_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        log.info("created queue %s", name)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def create_queues(app: Application, sqs: SQSClient, created: Created) -> None:
    # A RedrivePolicy names its dead-letter queue by ARN, which must exist first.
    for queue in sorted(app.queues.values(), key=lambda q: "RedrivePolicy" in q.attributes):
        url, _ = _ensure_queue(sqs, queue.name, queue.attributes)
        # An existing queue (a long-lived LocalStack) gets the template's attributes, as a stack update does.
        if queue.attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=queue.attributes)  # type: ignore[arg-type]
        created.queue_urls[queue.logical_id] = url


def verify_senders(app: Application, ses: SESClient) -> None:
    """SES only sends from verified identities; verify every SENDER_EMAIL a function declares."""
    senders = {fn.environment["SENDER_EMAIL"] for fn in app.functions.values() if fn.environment.get("SENDER_EMAIL")}
    for sender in sorted(senders):
        ses.verify_email_identity(EmailAddress=sender)


# GenerateSecretString's options that GetRandomPassword takes under the same names.
_PASSWORD_FLAGS = (
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)


def _generated_value(secret: Secret, secretsmanager: SecretsManagerClient) -> str:
    """What CloudFormation stores for GenerateSecretString: a random password from the service itself,
    alone or under GenerateStringKey in SecretStringTemplate."""
    options: dict[str, Any] = {
        flag: str(secret.generate[flag]).lower() == "true" for flag in _PASSWORD_FLAGS if flag in secret.generate
    }
    if "PasswordLength" in secret.generate:
        options["PasswordLength"] = int(secret.generate["PasswordLength"])
    if "ExcludeCharacters" in secret.generate:
        options["ExcludeCharacters"] = str(secret.generate["ExcludeCharacters"])
    password = secretsmanager.get_random_password(**options)["RandomPassword"]
    template, key = secret.generate.get("SecretStringTemplate"), secret.generate.get("GenerateStringKey")
    if bool(template) != bool(key):
        raise TemplateError(f"{secret.logical_id}: SecretStringTemplate and GenerateStringKey go together")
    return json.dumps({**json.loads(str(template)), str(key): password}) if template else password


def create_secrets(app: Application, secretsmanager: SecretsManagerClient | None) -> None:
    """Each declared secret, once: an existing one keeps its value (as a stack update does)."""
    if app.secrets and secretsmanager is None:
        raise TemplateError("the template declares secrets: pass a Secrets Manager client")
    for secret in app.secrets.values():
        assert secretsmanager is not None
        try:
            secretsmanager.describe_secret(SecretId=secret.name)
            continue
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
        value = secret.secret_string if secret.secret_string is not None else _generated_value(secret, secretsmanager)
        secretsmanager.create_secret(Name=secret.name, SecretString=value, Description=secret.description)
        log.info("created secret %s", secret.name)


def create_configuration_sets(app: Application, ses: SESClient) -> None:
    for configuration_set in app.configuration_sets.values():
        try:
            ses.describe_configuration_set(ConfigurationSetName=configuration_set.name)
        except ClientError as exc:
            if _error_code(exc) != "ConfigurationSetDoesNotExist":
                raise
            ses.create_configuration_set(ConfigurationSet={"Name": configuration_set.name})
            log.info("created SES configuration set %s", configuration_set.name)


def connect_notifications(app: Application, clients: Clients, created: Created) -> None:
    """Bucket notifications -> one SQS queue per S3 trigger, with the trigger's events and key filter."""
    by_bucket: dict[str, list[NotificationQueue]] = {}
    for fn in app.functions.values():
        for trigger in fn.s3_triggers:
            url, arn = _ensure_queue(clients.sqs, notification_queue_name(app, fn, trigger), {})
            bucket = app.buckets[trigger.bucket]
            # Lets S3 write to the queue on a real account (emulators accept it and do not check).
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arn,
                        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:{app.context.partition}:s3:::{bucket.name}"}},
                    }
                ],
            }
            clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
            entry = NotificationQueue(fn, trigger, url, arn)
            by_bucket.setdefault(trigger.bucket, []).append(entry)
            created.notification_queues.append(entry)
    for logical_id, entries in by_bucket.items():
        configurations = []
        for entry in entries:
            configuration: dict[str, Any] = {
                "Id": f"{entry.function.logical_id}-{entry.trigger.name}",
                "QueueArn": entry.queue_arn,
                "Events": list(entry.trigger.events),
            }
            rules = [
                {"Name": name, "Value": value}
                for name, value in (("prefix", entry.trigger.prefix), ("suffix", entry.trigger.suffix))
                if value
            ]
            if rules:
                configuration["Filter"] = {"Key": {"FilterRules": rules}}
            configurations.append(configuration)
        clients.s3.put_bucket_notification_configuration(
            Bucket=app.buckets[logical_id].name,
            NotificationConfiguration={"QueueConfigurations": configurations},  # type: ignore[typeddict-item]
        )


def create_all(app: Application, clients: Clients) -> Created:
    created = Created()
    create_buckets(app, clients.s3)
    create_tables(app, clients.dynamodb, created)
    create_queues(app, clients.sqs, created)
    verify_senders(app, clients.ses)
    create_configuration_sets(app, clients.ses)
    create_secrets(app, clients.secretsmanager)
    connect_notifications(app, clients, created)
    return created
