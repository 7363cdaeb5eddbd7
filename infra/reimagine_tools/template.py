"""template.yaml, read and resolved for one stack: the functions, their triggers and the resources they use.

The wiring is read from the CloudFormation samtranslator makes of the template (translated.py): the
functions as AWS::Lambda::Function with Globals applied, their event source mappings, the buckets'
notifications, invoke configs, rules and schedules, and the HttpApi's OpenAPI body.
Only the intrinsics a SAM template like ours uses are resolved (Ref, Fn::Sub, Fn::GetAtt, Fn::Join,
Fn::Select, Fn::Split, Fn::If and Conditions); anything else is an error rather than a silent guess.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfn_tools import load_yaml

from reimagine_tools.sam_options import EnvVars
from reimagine_tools.translated import TranslationError, local_code_uri, translate

DEFAULT_STACK = "reimagine"
MOTO_ACCOUNT = "123456789012"
LOCAL_API_ID = "localapi"


class TemplateError(ValueError):
    """The template uses something this reader does not resolve, or is inconsistent."""


class _NoValue:
    """AWS::NoValue: the property is removed."""


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class StackContext:
    """What the pseudo-parameters and physical names of one deployment resolve to."""

    stack_name: str = DEFAULT_STACK
    account_id: str = MOTO_ACCOUNT
    region: str = "us-east-1"
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def partition(self) -> str:
        return "aws-cn" if self.region.startswith("cn-") else "aws"

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"


@dataclass(frozen=True)
class HttpRoute:
    method: str  # upper case, or ANY
    path: str  # as declared: /requests/{id}, /{proxy+}

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class S3Trigger:
    name: str
    bucket: str  # logical id
    events: tuple[str, ...]
    prefix: str | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class StreamTrigger:
    name: str
    table: str  # logical id
    batch_size: int = 100
    starting_position: str = "LATEST"
    filters: tuple[dict[str, Any], ...] = ()
    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = -1  # -1: until the record expires, as AWS does
    bisect_on_error: bool = False
    on_failure: str | None = None  # destination ARN
    enabled: bool = True
    parallelization_factor: int = 1  # concurrent batches per shard; one key's records stay in one


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS event source mapping: Lambda polls the queue and invokes with batches of messages."""

    name: str
    queue: str  # logical id
    batch_size: int = 10
    maximum_batching_window: int = 0  # seconds
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency; None: up to the function's
    report_batch_item_failures: bool = False
    filters: tuple[dict[str, Any], ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class Pipe:
    """An EventBridge pipe from a DynamoDB stream to an SQS queue (the only kind the template uses):
    filtered records are sent on as messages, one record a message, the record's JSON as the body."""

    logical_id: str
    name: str
    table: str  # logical id of the source stream's table
    queue: str  # logical id of the target queue
    batch_size: int = 1
    starting_position: str = "LATEST"
    filters: tuple[dict[str, Any], ...] = ()
    maximum_retry_attempts: int = -1
    dead_letter: str | None = None  # DeadLetterConfig ARN
    enabled: bool = True  # DesiredState RUNNING


@dataclass(frozen=True)
class ScheduleTrigger:
    """A `Schedule` event: EventBridge invokes the function asynchronously at a rate."""

    name: str
    expression: str  # rate(5 minutes), cron(...)
    enabled: bool = True
    rule_name: str = ""

    @property
    def period_seconds(self) -> float | None:
        """The rate's period; None for a cron expression (not run locally)."""
        match = _RATE.fullmatch(self.expression.strip())
        if not match:
            return None
        value, unit = int(match["value"]), match["unit"].rstrip("s")
        return value * {"minute": 60, "hour": 3600, "day": 86400}[unit]


_RATE = re.compile(r"rate\((?P<value>[1-9][0-9]*) (?P<unit>minutes?|hours?|days?)\)")


@dataclass(frozen=True)
class InvokeConfig:
    """EventInvokeConfig: how asynchronous (S3) invocations are retried and where failures go."""

    maximum_retry_attempts: int = 2
    on_failure: str | None = None  # destination ARN
    maximum_event_age: int | None = None  # MaximumEventAgeInSeconds; None: not set, Lambda's default

    @property
    def maximum_event_age_seconds(self) -> int:
        """How long an event may wait in the async queue: MaximumEventAgeInSeconds, else Lambda's 6 hours."""
        return 21600 if self.maximum_event_age is None else self.maximum_event_age


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    handler: str  # "module.func"
    code_uri: str | None
    timeout: int
    memory_size: int
    environment: dict[str, str]
    routes: tuple[HttpRoute, ...] = ()
    s3_triggers: tuple[S3Trigger, ...] = ()
    stream_triggers: tuple[StreamTrigger, ...] = ()
    queue_triggers: tuple[QueueTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    invoke_config: InvokeConfig = InvokeConfig()
    arn: str = ""
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions; None: unreserved
    # The local ContentUri of each layer attached (Layers, conditions applied), in order: their
    # `python/` folders come after the task root on the path, as Lambda's /opt/python does.
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bucket:
    logical_id: str
    name: str
    cors_rules: tuple[dict[str, Any], ...] = ()  # in the S3 API's shape (put_bucket_cors)


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    key_schema: tuple[dict[str, str], ...]
    attribute_definitions: tuple[dict[str, str], ...]
    billing_mode: str = "PAY_PER_REQUEST"
    ttl_attribute: str | None = None
    stream_view_type: str | None = None
    global_secondary_indexes: tuple[dict[str, Any], ...] = ()

    @property
    def arn_prefix(self) -> str:
        return f"table/{self.name}"


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str
    arn: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Secret:
    """A Secrets Manager secret; `generate` is its GenerateSecretString (the value is made on creation)."""

    logical_id: str
    name: str
    generate: dict[str, Any] = field(default_factory=dict)
    secret_string: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ConfigurationSet:
    """An SES configuration set: every send names it (its event destinations are not emulated locally)."""

    logical_id: str
    name: str


@dataclass(frozen=True)
class Cors:
    """An HttpApi's CorsConfiguration: API Gateway answers preflights and adds the headers itself."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


# What a route without limits of its own gets: the account's, per region (API Gateway quotas).
ACCOUNT_RATE_LIMIT = 10000.0
ACCOUNT_BURST_LIMIT = 5000


@dataclass(frozen=True)
class Throttle:
    """A route's throttling as API Gateway applies it: a token bucket holding `burst` requests,
    refilled at `rate` a second."""

    rate: float
    burst: int


@dataclass(frozen=True)
class ApiThrottling:
    """An HttpApi stage's throttling: DefaultRouteSettings for every route, RouteSettings by route key."""

    default: Throttle | None = None
    routes: dict[str, Throttle] = field(default_factory=dict)

    def for_route(self, route_key: str) -> Throttle | None:
        return self.routes.get(route_key, self.default)


@dataclass(frozen=True)
class Application:
    """The resolved template: what to create on the endpoint and what to deliver to whom."""

    context: StackContext
    functions: dict[str, Function]
    buckets: dict[str, Bucket]
    tables: dict[str, Table]
    queues: dict[str, Queue]
    template_dir: Path
    cors: Cors | None = None
    secrets: dict[str, Secret] = field(default_factory=dict)
    configuration_sets: dict[str, ConfigurationSet] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # every template parameter, resolved
    pipes: dict[str, Pipe] = field(default_factory=dict)
    throttling: ApiThrottling | None = None  # the HttpApi stage's; None: not throttled

    def queue_for_arn(self, arn: str) -> Queue:
        for queue in self.queues.values():
            if queue.arn == arn:
                return queue
        raise TemplateError(f"no queue in the template has the ARN {arn}")

    @property
    def routes(self) -> list[tuple[HttpRoute, Function]]:
        return [(route, fn) for fn in self.functions.values() for route in fn.routes]


# Properties of resource types this reader knows: how Ref and GetAtt resolve.
_BUCKET = "AWS::S3::Bucket"
_TABLE = "AWS::DynamoDB::Table"
_QUEUE = "AWS::SQS::Queue"
_FUNCTION = "AWS::Serverless::Function"
_LAMBDA_FUNCTION = "AWS::Lambda::Function"
_ALIAS = "AWS::Lambda::Alias"
_LAYER_VERSION = "AWS::Lambda::LayerVersion"
_HTTP_API = "AWS::Serverless::HttpApi"
_API_V2 = "AWS::ApiGatewayV2::Api"
_STAGE_V2 = "AWS::ApiGatewayV2::Stage"
_SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a secret
_CONFIGURATION_SET = "AWS::SES::ConfigurationSet"
_PIPE = "AWS::Pipes::Pipe"
_RULE = "AWS::Events::Rule"
_SCHEDULE = "AWS::Scheduler::Schedule"
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves intrinsic functions against one stack's context."""

    def __init__(self, template: dict[str, Any], context: StackContext) -> None:
        self.template = template
        self.context = context
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.parameters = self._parameters(template.get("Parameters") or {}, context.parameters)
        self._conditions: dict[str, bool] = {}

    @staticmethod
    def _parameters(declared: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            raw = overrides.get(name, spec.get("Default"))
            if raw is None:
                raise TemplateError(f"parameter {name} has no default and no value")
            allowed = [_text(v) for v in spec.get("AllowedValues") or []]
            if name in overrides and allowed and _text(raw) not in allowed:
                raise TemplateError(f"parameter {name} must be one of {', '.join(allowed)}, not {raw!r}")
            kind = str(spec.get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                values[name] = raw if isinstance(raw, list) else [part.strip() for part in str(raw).split(",")]
            else:
                values[name] = _scalar(raw)
        return values

    # Physical names -------------------------------------------------------------------------------

    def resource_type(self, logical_id: str) -> str:
        if logical_id not in self.resources:
            raise TemplateError(f"no resource {logical_id}")
        return str(self.resources[logical_id].get("Type", ""))

    def physical_name(self, logical_id: str) -> str:
        """Declared name if there is one, else `<stack>-<logicalid>` lower-cased."""
        props = self.resources[logical_id].get("Properties") or {}
        declared_key = {
            _BUCKET: "BucketName",
            _TABLE: "TableName",
            _QUEUE: "QueueName",
            _FUNCTION: "FunctionName",
            _LAMBDA_FUNCTION: "FunctionName",
            _PIPE: "Name",
            _RULE: "Name",
            _SCHEDULE: "Name",
            _SECRET: "Name",
            _CONFIGURATION_SET: "Name",
        }.get(self.resource_type(logical_id))
        if declared_key and props.get(declared_key) is not None:
            return str(self.resolve(props[declared_key]))
        return f"{self.context.stack_name}-{logical_id}".lower()

    def arn(self, logical_id: str) -> str:
        c = self.context
        kind, name = self.resource_type(logical_id), self.physical_name(logical_id)
        if kind == _BUCKET:
            return f"arn:{c.partition}:s3:::{name}"
        if kind == _TABLE:
            return f"arn:{c.partition}:dynamodb:{c.region}:{c.account_id}:table/{name}"
        if kind == _QUEUE:
            return f"arn:{c.partition}:sqs:{c.region}:{c.account_id}:{name}"
        if kind in (_FUNCTION, _LAMBDA_FUNCTION):
            return f"arn:{c.partition}:lambda:{c.region}:{c.account_id}:function:{name}"
        raise TemplateError(f"no Arn for {logical_id} ({kind})")

    def ref(self, name: str) -> Any:
        c = self.context
        pseudo = {
            "AWS::StackName": c.stack_name,
            "AWS::AccountId": c.account_id,
            "AWS::Region": c.region,
            "AWS::Partition": c.partition,
            "AWS::URLSuffix": c.url_suffix,
            "AWS::StackId": (f"arn:{c.partition}:cloudformation:{c.region}:{c.account_id}:stack/{c.stack_name}/local"),
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resource_type(name)
        if kind == _QUEUE:
            return f"https://sqs.{c.region}.{c.url_suffix}/{c.account_id}/{self.physical_name(name)}"
        if kind in (_HTTP_API, _API_V2):
            return LOCAL_API_ID
        if kind == _ALIAS:  # the alias's ARN: its function's, qualified by the alias name
            props = self.resources[name].get("Properties") or {}
            return f"{self.arn(_referenced(props.get('FunctionName')) or '')}:{self.resolve(props.get('Name'))}"
        # A secret's Ref is its ARN on AWS, which ends in a suffix chosen at creation; its name is
        # accepted wherever the ARN is (GetSecretValue, Powertools get_secret), so it stands in here.
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.resource_type(logical_id)
        if attribute == "Arn":
            return self.arn(logical_id)
        if kind == _TABLE and attribute == "StreamArn":
            # The real label is a timestamp chosen when the stream is created; the delivery looks the
            # stream up by table, so a stable placeholder is enough here.
            return f"{self.arn(logical_id)}/stream/*"
        if kind == _QUEUE and attribute == "QueueName":
            return self.physical_name(logical_id)
        if kind == _QUEUE and attribute == "QueueUrl":
            return str(self.ref(logical_id))
        if kind == _BUCKET and attribute == "DomainName":
            return f"{self.physical_name(logical_id)}.s3.{self.context.url_suffix}"
        raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not supported")

    # Intrinsics -----------------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"no condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.get_att(logical_id, self.resolve(attribute))
        if key == "Fn::Sub":
            template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return self._sub(template, variables)
        if key == "Fn::Join":
            separator, items = arg
            return str(separator).join(_text(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text)).split(separator)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return _text(left) == _text(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(item) for item in arg)
        if key == "Fn::Or":
            return any(self.resolve(item) for item in arg)
        raise TemplateError(f"{key} is not supported by the local stack")

    def _sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return _text(self.ref(name))

        return _SUB_VAR.sub(replace, template)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    return str(_scalar(value))


# Reading the template ---------------------------------------------------------------------------------


def load_template(path: str | Path) -> dict[str, Any]:
    """The template as plain dicts, short-form tags (!Ref, !Sub …) expanded to their long form."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(json.dumps(load_yaml(text)))


def translated_template(path: str | Path, context: StackContext) -> dict[str, Any]:
    """The CloudFormation SAM makes of the template for this stack's region and parameter values."""
    sam = load_template(path)
    parameters = Resolver(sam, context).parameters  # checks the overrides against the declarations
    try:
        # `.aws-sam/` is SAM's own working folder beside the template (sam build writes there too).
        cache = Path(path).resolve().parent / ".aws-sam" / "reimagine-local" / "translated"
        return translate(sam, region=context.region, parameters=parameters, cache_dir=cache)
    except TranslationError as exc:
        raise TemplateError(str(exc)) from None


def read_application(
    path: str | Path,
    *,
    stack_name: str = DEFAULT_STACK,
    account_id: str = MOTO_ACCOUNT,
    region: str = "us-east-1",
    parameters: dict[str, str] | None = None,
    env_overrides: dict[str, str] | None = None,
    env_vars: EnvVars | None = None,
) -> Application:
    """Resolve template.yaml for one stack. `env_overrides` replace a variable in every function that
    declares it (never add one: a function gets only its own section's variables, as on AWS);
    `env_vars` (SAM's `--env-vars`) then replace variables a function declares."""
    context = StackContext(stack_name, account_id, region, dict(parameters or {}))
    resolver = Resolver(translated_template(path, context), context)
    buckets, tables, queues = {}, {}, {}
    secrets: dict[str, Secret] = {}
    configuration_sets: dict[str, ConfigurationSet] = {}
    for logical_id, kind in _active(resolver):
        if kind == _BUCKET:
            buckets[logical_id] = _bucket(resolver, logical_id)
        elif kind == _TABLE:
            tables[logical_id] = _table(resolver, logical_id)
        elif kind == _QUEUE:
            queues[logical_id] = _queue(resolver, logical_id)
        elif kind == _SECRET:
            secrets[logical_id] = _secret(resolver, logical_id)
        elif kind == _CONFIGURATION_SET:
            configuration_sets[logical_id] = ConfigurationSet(logical_id, resolver.physical_name(logical_id))
    wiring = _Wiring(resolver, tables, queues)
    functions = {
        logical_id: _function(resolver, logical_id, wiring, dict(env_overrides or {}), env_vars or EnvVars())
        for logical_id, kind in _active(resolver)
        if kind == _LAMBDA_FUNCTION
    }
    return Application(
        context,
        functions,
        buckets,
        tables,
        queues,
        Path(path).resolve().parent,
        wiring.cors,
        secrets,
        configuration_sets,
        parameters=dict(resolver.parameters),
        pipes={
            logical_id: _pipe(resolver, logical_id, tables, queues)
            for logical_id, kind in _active(resolver)
            if kind == _PIPE
        },
        throttling=wiring.throttling,
    )


def template_parameters(path: str | Path, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The template's parameters as a stack would get them: defaults, then `overrides` (checked)."""
    return Resolver(load_template(path), StackContext(parameters=dict(overrides or {}))).parameters


def _active(resolver: Resolver) -> list[tuple[str, str]]:
    """(logical id, type) of the resources this stack creates: those whose Condition holds."""
    return [
        (logical_id, str(resource.get("Type", "")))
        for logical_id, resource in resolver.resources.items()
        if not resource.get("Condition") or resolver.condition(resource["Condition"])
    ]


def _props(resolver: Resolver, logical_id: str) -> dict[str, Any]:
    return dict(resolver.resources[logical_id].get("Properties") or {})


def _referenced(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` names; None for anything else."""
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return str(value["Ref"])
    att = value.get("Fn::GetAtt") if isinstance(value, dict) else None
    if att:
        return str(att.split(".", 1)[0] if isinstance(att, str) else att[0])
    return None


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def _patterns(criteria: Any) -> tuple[dict[str, Any], ...]:
    return tuple(
        json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f["Pattern"]
        for f in (criteria or {}).get("Filters") or []
    )


def _on_failure(props: dict[str, Any]) -> str | None:
    return ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")


def _event_name(logical_id: str, function: str) -> str:
    """SAM names what it makes for an event `<Function><Event>`: the event's name back."""
    return logical_id[len(function) :] if logical_id.startswith(function) and logical_id != function else logical_id


def _event_source(
    resolver: Resolver, value: Any, tables: dict[str, Table], queues: dict[str, Queue], where: str
) -> tuple[str, str]:
    """("stream", table) or ("queue", queue): what an event source (or a pipe's target) ARN names."""
    named = _referenced(value)
    if named in tables:
        return "stream", str(named)
    if named in queues:
        return "queue", str(named)
    arn = _text(resolver.resolve(value))
    for table in tables.values():
        if f":{table.arn_prefix}/stream/" in arn:
            return "stream", table.logical_id
    for queue in queues.values():
        if queue.arn == arn:
            return "queue", queue.logical_id
    raise TemplateError(f"{where}: {arn} is not a table's stream or a queue of this template")


class _Wiring:
    """Every trigger of the translated template, by the logical id of the function it invokes."""

    def __init__(self, resolver: Resolver, tables: dict[str, Table], queues: dict[str, Queue]) -> None:
        self.resolver, self.tables, self.queues = resolver, tables, queues
        active = _active(resolver)
        self._functions = {
            logical_id: (resolver.physical_name(logical_id), resolver.arn(logical_id))
            for logical_id, kind in active
            if kind == _LAMBDA_FUNCTION
        }
        self.routes: dict[str, list[HttpRoute]] = defaultdict(list)
        self.s3: dict[str, list[S3Trigger]] = defaultdict(list)
        self.streams: dict[str, list[StreamTrigger]] = defaultdict(list)
        self.queue_triggers: dict[str, list[QueueTrigger]] = defaultdict(list)
        self.schedules: dict[str, list[ScheduleTrigger]] = defaultdict(list)
        self.invoke_configs: dict[str, InvokeConfig] = {}
        self.cors: Cors | None = None
        self.throttling: ApiThrottling | None = None
        for logical_id, kind in active:
            if kind == _API_V2:
                self._api(logical_id)
            elif kind == _STAGE_V2:
                self._stage(logical_id)
            elif kind == _BUCKET:
                self._notifications(logical_id)
            elif kind == "AWS::Lambda::EventSourceMapping":
                self._mapping(logical_id)
            elif kind == "AWS::Lambda::EventInvokeConfig":
                self._invoke_config(logical_id)
            elif kind in (_RULE, _SCHEDULE):
                self._schedule(logical_id, kind)

    def invoked(self, value: Any, where: str) -> str:
        """The function a FunctionName, target or integration names (by name or ARN, maybe qualified)."""
        text = _text(self.resolver.resolve(value))
        for logical_id, (name, arn) in self._functions.items():
            if text in (name, arn) or text.startswith(f"{arn}:"):
                return logical_id
        raise TemplateError(f"{where}: {text} is not a function of this template")

    def _api(self, logical_id: str) -> None:
        body = _props(self.resolver, logical_id).get("Body") or {}
        for path, operations in (body.get("paths") or {}).items():
            for key, operation in operations.items():
                method = "ANY" if key == "x-amazon-apigateway-any-method" else key.upper()
                integration = operation.get("x-amazon-apigateway-integration") if isinstance(operation, dict) else None
                if method not in _HTTP_METHODS or not integration:
                    continue
                uri = _text(self.resolver.resolve(integration.get("uri")))
                target = re.fullmatch(r".*:lambda:path/[^/]+/functions/(?P<function>.+)/invocations", uri)
                if target is None:
                    raise TemplateError(f"{logical_id} {method} {path}: the local stack routes to functions only")
                function = self.invoked(target["function"], f"{logical_id} {method} {path}")
                # SAM writes the catch-all route as the path `$default`.
                self.routes[function].append(HttpRoute(method, "/$default" if path == "$default" else path))
        config = self.resolver.resolve(body.get("x-amazon-apigateway-cors"))
        if config and self.cors is None:
            self.cors = Cors(
                allow_origins=_listed(config, "allowOrigins"),
                allow_methods=tuple(m.upper() for m in _listed(config, "allowMethods")),
                allow_headers=tuple(h.lower() for h in _listed(config, "allowHeaders")),
                expose_headers=_listed(config, "exposeHeaders"),
                max_age=int(config["maxAge"]) if "maxAge" in config else None,
                allow_credentials=_true(config.get("allowCredentials", False)),
            )

    def _stage(self, logical_id: str) -> None:
        """The stage's DefaultRouteSettings and RouteSettings throttling (the local API serves one stage)."""
        props = _props(self.resolver, logical_id)
        default = _throttle(self.resolver.resolve(props.get("DefaultRouteSettings")))
        routes = {
            str(key): throttle
            for key, settings in (self.resolver.resolve(props.get("RouteSettings")) or {}).items()
            if (throttle := _throttle(settings)) is not None
        }
        if (default or routes) and self.throttling is None:
            self.throttling = ApiThrottling(default, routes)

    def _notifications(self, bucket: str) -> None:
        """The bucket's LambdaConfigurations, where SAM puts S3 events: one trigger per event, each
        named after the permission SAM made for it (the bucket DependsOn those, in event order)."""
        raw = _props(self.resolver, bucket).get("NotificationConfiguration") or {}
        groups: list[tuple[str, Any, list[str]]] = []  # function, filter, events: one SAM event
        for config in self.resolver.resolve(raw.get("LambdaConfigurations") or []):
            function = self.invoked(config.get("Function"), f"{bucket} notification")
            if groups and groups[-1][:2] == (function, config.get("Filter")):
                groups[-1][2].append(str(config["Event"]))
            else:
                groups.append((function, config.get("Filter"), [str(config["Event"])]))
        names = self._s3_permissions(bucket)
        for index, (function, key_filter, events) in enumerate(groups):
            rules = {
                str(rule["Name"]).lower(): str(rule["Value"])
                for rule in ((key_filter or {}).get("S3Key") or {}).get("Rules") or []
            }
            name = names[function].pop(0) if names[function] else f"{bucket}Notification{index}"
            self.s3[function].append(S3Trigger(name, bucket, tuple(events), rules.get("prefix"), rules.get("suffix")))

    def _s3_permissions(self, bucket: str) -> dict[str, list[str]]:
        depends = self.resolver.resources[bucket].get("DependsOn") or []
        names: dict[str, list[str]] = defaultdict(list)
        for dependency in [depends] if isinstance(depends, str) else depends:
            resource = self.resolver.resources.get(dependency) or {}
            props = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::Lambda::Permission" and props.get("Principal") == "s3.amazonaws.com":
                function = self.invoked(props.get("FunctionName"), dependency)
                names[function].append(_event_name(dependency.removesuffix("Permission"), function))
        return names

    def _mapping(self, logical_id: str) -> None:
        raw = _props(self.resolver, logical_id)
        function = self.invoked(raw.get("FunctionName"), logical_id)
        name = _event_name(logical_id, function)
        kind, source = _event_source(self.resolver, raw.get("EventSourceArn"), self.tables, self.queues, logical_id)
        props = self.resolver.resolve({k: v for k, v in raw.items() if k not in ("EventSourceArn", "FunctionName")})
        report = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        enabled = _true(props.get("Enabled", True))
        filters = _patterns(props.get("FilterCriteria"))
        if kind == "queue":
            concurrency = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
            self.queue_triggers[function].append(
                QueueTrigger(
                    name=name,
                    queue=source,
                    batch_size=int(props.get("BatchSize", 10)),
                    maximum_batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                    maximum_concurrency=int(concurrency) if concurrency is not None else None,
                    report_batch_item_failures=report,
                    filters=filters,
                    enabled=enabled,
                )
            )
            return
        self.streams[function].append(
            StreamTrigger(
                name=name,
                table=source,
                batch_size=int(props.get("BatchSize", 100)),
                starting_position=str(props.get("StartingPosition", "LATEST")),
                filters=filters,
                report_batch_item_failures=report,
                maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                bisect_on_error=_true(props.get("BisectBatchOnFunctionError", False)),
                on_failure=_on_failure(props),
                enabled=enabled,
                parallelization_factor=int(props.get("ParallelizationFactor", 1)),
            )
        )

    def _invoke_config(self, logical_id: str) -> None:
        raw = _props(self.resolver, logical_id)
        function = self.invoked(raw.get("FunctionName"), logical_id)
        props = self.resolver.resolve({k: v for k, v in raw.items() if k != "FunctionName"})
        age = props.get("MaximumEventAgeInSeconds")
        self.invoke_configs[function] = InvokeConfig(
            int(props.get("MaximumRetryAttempts", 2)), _on_failure(props), int(age) if age is not None else None
        )

    def _schedule(self, logical_id: str, kind: str) -> None:
        """A rule with a ScheduleExpression (SAM's Schedule event) or an EventBridge Scheduler schedule
        (ScheduleV2); rules on event patterns are not run locally."""
        raw = _props(self.resolver, logical_id)
        if "ScheduleExpression" not in raw:
            return
        props = self.resolver.resolve({k: v for k, v in raw.items() if k in ("ScheduleExpression", "State", "Name")})
        targets = [t.get("Arn") for t in raw.get("Targets") or []] if kind == _RULE else [raw["Target"].get("Arn")]
        for target in targets:
            function = self.invoked(target, logical_id)
            name = _event_name(logical_id, function)
            self.schedules[function].append(
                ScheduleTrigger(
                    name,
                    str(props["ScheduleExpression"]),
                    str(props.get("State", "ENABLED")).upper() != "DISABLED",
                    str(props.get("Name") or f"{self.resolver.physical_name(function)}-{name}"),
                )
            )


_HTTP_METHODS = {"ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _function(
    resolver: Resolver,
    logical_id: str,
    wiring: _Wiring,
    env_overrides: dict[str, str],
    env_vars: EnvVars,
) -> Function:
    raw = _props(resolver, logical_id)
    variables = resolver.resolve((raw.get("Environment") or {}).get("Variables") or {})
    environment = {name: _text(value) for name, value in variables.items()}
    environment.update({name: value for name, value in env_overrides.items() if name in environment})
    environment = env_vars.apply(environment, logical_id, resolver.physical_name(logical_id))
    scalars = ("Handler", "Timeout", "MemorySize", "ReservedConcurrentExecutions")
    resolved = resolver.resolve({k: raw[k] for k in scalars if k in raw})
    if "Handler" not in resolved:
        raise TemplateError(f"{logical_id} has no Handler")
    return Function(
        logical_id=logical_id,
        name=resolver.physical_name(logical_id),
        handler=str(resolved["Handler"]),
        code_uri=local_code_uri(raw.get("Code")),
        timeout=int(resolved.get("Timeout", 3)),
        memory_size=int(resolved.get("MemorySize", 128)),
        environment=environment,
        routes=tuple(wiring.routes[logical_id]),
        s3_triggers=tuple(wiring.s3[logical_id]),
        stream_triggers=tuple(wiring.streams[logical_id]),
        queue_triggers=tuple(wiring.queue_triggers[logical_id]),
        schedules=tuple(wiring.schedules[logical_id]),
        invoke_config=wiring.invoke_configs.get(logical_id, InvokeConfig()),
        arn=resolver.arn(logical_id),
        reserved_concurrency=(
            int(resolved["ReservedConcurrentExecutions"]) if "ReservedConcurrentExecutions" in resolved else None
        ),
        layers=_layers(resolver, logical_id, raw.get("Layers")),
    )


def _layers(resolver: Resolver, logical_id: str, value: Any) -> tuple[str, ...]:
    """The local ContentUris of a function's Layers: each a Ref to a layer of this template, the list
    possibly under one Fn::If (a layer attached only under a condition)."""
    if isinstance(value, dict) and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        value = when_true if resolver.condition(name) else when_false
    if value is None or value == {"Ref": "AWS::NoValue"}:
        return ()
    found = []
    for item in value if isinstance(value, list) else [value]:
        layer = item.get("Ref") if isinstance(item, dict) else None
        if not isinstance(layer, str) or resolver.resource_type(layer) != _LAYER_VERSION:
            raise TemplateError(f"{logical_id}: the local stack runs only layers of this template (a Ref each)")
        uri = local_code_uri((resolver.resources[layer].get("Properties") or {}).get("Content"))
        if uri is None:
            raise TemplateError(f"{logical_id}: layer {layer} has no local ContentUri")
        found.append(uri)
    return tuple(found)


def _pipe(resolver: Resolver, logical_id: str, tables: dict[str, Table], queues: dict[str, Queue]) -> Pipe:
    """An EventBridge pipe (plain CloudFormation, no SAM transform): a table's stream to a queue."""
    raw = _props(resolver, logical_id)
    source_kind, table = _event_source(resolver, raw.get("Source"), tables, queues, f"{logical_id} Source")
    target_kind, queue = _event_source(resolver, raw.get("Target"), tables, queues, f"{logical_id} Target")
    if (source_kind, target_kind) != ("stream", "queue"):
        raise TemplateError(f"{logical_id}: the local stack runs pipes from a table's stream to a queue only")
    props = resolver.resolve({k: v for k, v in raw.items() if k in ("SourceParameters", "DesiredState")})
    source = props.get("SourceParameters") or {}
    stream = source.get("DynamoDBStreamParameters") or {}
    optional: dict[str, Any] = {}
    if "BatchSize" in stream:
        optional["batch_size"] = int(stream["BatchSize"])
    if "StartingPosition" in stream:
        optional["starting_position"] = str(stream["StartingPosition"])
    if "MaximumRetryAttempts" in stream:
        optional["maximum_retry_attempts"] = int(stream["MaximumRetryAttempts"])
    return Pipe(
        logical_id,
        resolver.physical_name(logical_id),
        table,
        queue,
        filters=_patterns(source.get("FilterCriteria")),
        dead_letter=(stream.get("DeadLetterConfig") or {}).get("Arn"),
        enabled=str(props.get("DesiredState", "RUNNING")).upper() == "RUNNING",
        **optional,
    )


def _bucket(resolver: Resolver, logical_id: str) -> Bucket:
    props = _props(resolver, logical_id)
    rules = []
    for rule in resolver.resolve((props.get("CorsConfiguration") or {}).get("CorsRules") or []):
        api_rule: dict[str, Any] = {
            "AllowedMethods": list(rule["AllowedMethods"]),
            "AllowedOrigins": list(rule["AllowedOrigins"]),
        }
        for template_key, api_key in (
            ("AllowedHeaders", "AllowedHeaders"),
            ("ExposedHeaders", "ExposeHeaders"),
            ("Id", "ID"),
        ):
            if template_key in rule:
                api_rule[api_key] = rule[template_key]
        if "MaxAge" in rule:
            api_rule["MaxAgeSeconds"] = int(rule["MaxAge"])
        rules.append(api_rule)
    return Bucket(logical_id, resolver.physical_name(logical_id), tuple(rules))


def _table(resolver: Resolver, logical_id: str) -> Table:
    props = resolver.resolve(_props(resolver, logical_id))
    ttl = props.get("TimeToLiveSpecification") or {}
    stream = props.get("StreamSpecification") or {}
    return Table(
        logical_id,
        resolver.physical_name(logical_id),
        key_schema=tuple(props["KeySchema"]),
        attribute_definitions=tuple(props["AttributeDefinitions"]),
        billing_mode=props.get("BillingMode", "PROVISIONED"),
        ttl_attribute=ttl.get("AttributeName") if str(ttl.get("Enabled")).lower() == "true" else None,
        stream_view_type=stream.get("StreamViewType"),
        global_secondary_indexes=tuple(props.get("GlobalSecondaryIndexes") or ()),
    )


def _secret(resolver: Resolver, logical_id: str) -> Secret:
    props = resolver.resolve(_props(resolver, logical_id))
    generate = dict(props.get("GenerateSecretString") or {})
    if generate and "SecretString" in props:
        raise TemplateError(f"{logical_id}: SecretString and GenerateSecretString are exclusive")
    return Secret(
        logical_id,
        resolver.physical_name(logical_id),
        generate=generate,
        secret_string=props.get("SecretString"),
        description=str(props.get("Description", "")),
    )


# Queue properties that map one to one onto SQS attributes (the rest do not matter locally).
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MessageRetentionPeriod",
    "VisibilityTimeout",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _queue(resolver: Resolver, logical_id: str) -> Queue:
    props = resolver.resolve(_props(resolver, logical_id))
    attributes = {key: _text(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if "SqsManagedSseEnabled" in props:
        attributes["SqsManagedSseEnabled"] = _text(props["SqsManagedSseEnabled"])
    if props.get("RedrivePolicy"):  # a JSON attribute in the SQS API, an object in the template
        redrive = props["RedrivePolicy"]
        attributes["RedrivePolicy"] = redrive if isinstance(redrive, str) else json.dumps(redrive)
    return Queue(logical_id, resolver.physical_name(logical_id), resolver.arn(logical_id), attributes)


def _throttle(settings: Any) -> Throttle | None:
    """Route settings' throttling; a limit left unset is the account's, as on AWS."""
    if not isinstance(settings, dict):
        return None
    rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
    if rate is None and burst is None:
        return None
    return Throttle(
        rate=float(rate) if rate is not None else ACCOUNT_RATE_LIMIT,
        burst=int(float(burst)) if burst is not None else ACCOUNT_BURST_LIMIT,
    )


def _listed(config: dict[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key) or []
    return tuple(str(v) for v in ([value] if isinstance(value, str) else value))


def find_template() -> Path:
    """template.yaml: $REIMAGINE_TEMPLATE, else the nearest one above the working folder, else this checkout's."""
    if os.environ.get("REIMAGINE_TEMPLATE"):
        return Path(os.environ["REIMAGINE_TEMPLATE"])
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "template.yaml").is_file() and (folder / "functions" / "reimagine").is_dir():
            return folder / "template.yaml"
    return Path(__file__).resolve().parents[2] / "template.yaml"
