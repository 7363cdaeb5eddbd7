"""`reimagine doctor`: will this configuration work? One line per check, made against the live services.

The configuration is what the functions would run with: template.yaml resolved with
`--parameter-overrides` and `--env-vars` as `reimagine local up` resolves it, or with a deployed
stack's parameters (`--stack NAME`, CloudFormation DescribeStacks). Checks:

- Hugging Face: the token is present (HF_TOKEN, else the SecureString HfTokenParameter names) and
  accepted (`GET {hub}/api/whoami-v2`); each model of each chain is served for its task (a `live`
  mapping on a provider this code speaks, `hf_routing.choose`, as the functions themselves decide);
- Bedrock: each model's lifecycle is ACTIVE (GetFoundationModel `modelLifecycle.status`), an
  inference profile id (`us.`, `global.` …) exists (GetInferenceProfile), access is granted
  (GetFoundationModelAvailability), and an image model has a request body this code can build;
  image models are checked in the region that paints (BEDROCK_IMAGE_REGION), the others in the stack's;
- OpenAI-compatible: `GET {base}/v1/models` lists each model;
- SES: the sender (address or its domain) is verified, sending is enabled, sandbox or production;
- the moderator (doctor_moderation.py): the model loads, the endpoint or the AWS
  APIs answer, and a warning when nothing is moderated.
- Alarms (`--stack` only): someone is subscribed to the stack's alarm topic (AlarmTopic), else a warning;
- address confirmation: a warning when ConfirmAddresses=false on an API without an authorizer (anyone
  on the internet could have the stack mail any address).

Lines name the template parameters an operator sets (`BedrockCaptionModels`), not the functions'
environment variables. A model that is not served is a warning while a later model of its chain is
served (the chain falls back), and a failure of the chain when none is. A service that does not
answer (no connection, a timeout, a 5xx) fails, with a one-line reason. A check that cannot be made
(no AWS endpoint, an emulator that does not implement the call, no permission to ask) says "skipped"
and why. Exit status 1 when any check failed, and when nothing was verified (every check skipped):
such a run says so instead of reading as a pass. Secrets are never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from reimagine.errors import ProviderError
from reimagine.providers.bedrock import base_model_id, image_family
from reimagine.providers.hf_routing import choose, fetch_mapping
from reimagine_tools.sam_options import EnvVars
from reimagine_tools.template import load_template, read_application, template_parameters

OK, WARN, FAIL, SKIPPED = "ok", "warn", "FAIL", "skipped"
# The template parameter behind each setting a line is about (the functions read them as these variables).
PARAMETERS = {
    "HF_TOKEN_PARAMETER": "HfTokenParameter",
    "HF_HUB_URL": "HfHubUrl",
    "HF_CAPTION_MODELS": "HfCaptionModels",
    "HF_IMAGE_MODELS": "HfImageModels",
    "BEDROCK_CAPTION_MODELS": "BedrockCaptionModels",
    "BEDROCK_IMAGE_MODELS": "BedrockImageModels",
    "BEDROCK_IMAGE_REGION": "BedrockImageRegion",
    "OPENAI_BASE_URL": "OpenAiBaseUrl",
    "OPENAI_CAPTION_MODELS": "OpenAiCaptionModels",
    "OPENAI_IMAGE_MODELS": "OpenAiImageModels",
    "OPENAI_KEY_PARAMETER": "OpenAiKeyParameter",
    "SENDER_EMAIL": "SenderEmail",
}
HTTP_TIMEOUT = (3.05, 15.0)
HTTP_API = "AWS::Serverless::HttpApi"
NO_AWS = "no AWS endpoint (give --endpoint-url, or --stack NAME for a deployed stack)"
TASKS = {"caption": "conversational", "picture": "text-to-image"}
# Bedrock errors that mean "this model is not there for you", as opposed to "could not ask".
MODEL_GONE = {"ResourceNotFoundException", "ValidationException", "AccessDeniedException"}
# GetFoundationModelAvailability fields and the value that lets the functions call the model.
ACCESS_GRANTED = {
    "authorizationStatus": "AUTHORIZED",
    "entitlementAvailability": "AVAILABLE",
    "regionAvailability": "AVAILABLE",
}

# A third-party model's Marketplace subscription, which Bedrock makes on the model's first call.
SUBSCRIBE_HINT = (
    "the first call subscribes the account if the model's product id (on its Bedrock model card) is in "
    "BedrockMarketplaceProductIds; or open the model once in the Bedrock console playground"
)


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN, FAIL or SKIPPED
    subject: str
    detail: str
    # False for a line that states the configuration without asking any service (the offline provider).
    verifies: bool = True

    def line(self) -> str:
        return f"{self.status:<8} {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Configuration:
    """The environment of the functions the checks concern, and where it came from."""

    caption: dict[str, str]  # CaptionFunction's variables
    generate: dict[str, str]  # GenerateFunction's
    notify: dict[str, str]  # NotifyFunction's
    source: str
    alarm_topics: tuple[str, ...] = ()  # AlarmTopicArn, when given: the alarms notify it too
    # No authorizer in front of the HttpApi: anyone who finds the URL may ask it to mail an address.
    api_public: bool = True


ClientFactory = Callable[..., Any]  # (service name[, region]) -> boto3 client; no region: the stack's


def configuration(
    template: Path,
    parameters: dict[str, str],
    env_vars: EnvVars | None = None,
    *,
    source: str = "",
) -> Configuration:
    """The functions' environment as the local stack resolves it (TemplateError for a bad override)."""
    app = read_application(template, parameters=parameters, env_vars=env_vars)
    env = {logical_id: dict(fn.environment) for logical_id, fn in app.functions.items()}
    apis = [r for r in load_template(template).get("Resources", {}).values() if r.get("Type") == HTTP_API]
    return Configuration(
        env.get("CaptionFunction", {}),
        env.get("GenerateFunction", {}),
        env.get("NotifyFunction", {}),
        source or f"{template.name} with {len(parameters)} override(s)",
        tuple(topic for topic in [parameters.get("AlarmTopicArn", "")] if topic),
        api_public=any(not (api.get("Properties") or {}).get("Auth", {}).get("DefaultAuthorizer") for api in apis),
    )


def aws_clients(region: str, endpoint_url: str | None) -> ClientFactory:
    """boto3 clients for the stack's region, or another one asked for (and endpoint), made once each.

    An emulator takes any credentials."""
    import boto3

    dummy = "testing" if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID") else None
    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, in_region: str = "") -> Any:
        where = in_region or region
        if (service, where) not in clients:
            session = boto3.Session(region_name=where, aws_access_key_id=dummy, aws_secret_access_key=dummy)
            clients[(service, where)] = session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]
        return clients[(service, where)]

    return client


def stack_parameters(cloudformation: Any, stack_name: str, template: Path) -> dict[str, str]:
    """A deployed stack's parameter values, for the parameters this template declares."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    declared = template_parameters(template)
    return {
        p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", ""))
        for p in stacks[0].get("Parameters", [])
        if p["ParameterKey"] in declared
    }


def chain(value: str) -> list[str]:
    """A comma-separated chain's models in order (as the functions' settings read it)."""
    return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        message = " ".join(str(error.get("Message", "")).split())[:120]
        return f"{error.get('Code', 'error')}: {message}".rstrip(": ")
    return _unanswered(exc) or type(exc).__name__


# AWS endpoints that did not answer, as opposed to an answer that refused or did not understand the call.
AWS_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)


def _unanswered(exc: BaseException) -> str:
    """Why a service did not answer, in a few words of ours (never the exception's text); '' if it did."""
    if isinstance(exc, requests.Timeout | ConnectTimeoutError | ReadTimeoutError):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.ConnectionError | EndpointConnectionError):
        return "could not connect"
    if isinstance(exc, requests.RequestException):
        return "the request failed"
    return ""


class Unreachable(Exception):
    """A probe's service did not answer: the chain fails on that alone (the one-line reason is the message)."""


# The checks ---------------------------------------------------------------------------------------------


class Doctor:
    def __init__(
        self,
        config: Configuration,
        *,
        aws: ClientFactory | None,
        environ: Mapping[str, str] | None = None,
        http: requests.Session | None = None,
        stack: str | None = None,
    ) -> None:
        self.config = config
        self.aws = aws
        self.environ = os.environ if environ is None else environ
        self.http = http or requests.Session()
        self.stack = stack

    def run(self) -> list[Check]:
        from reimagine_tools.doctor_moderation import moderation_checks

        return [
            *self.provider_checks(),
            *moderation_checks(self),
            *self.ses_checks(),
            *self.alarm_checks(),
            self.confirmation_check(),
        ]

    def provider_checks(self) -> list[Check]:
        """The token and every model of both steps' chains, for the provider each step uses."""
        checks: list[Check] = []
        steps = (("caption", self.config.caption), ("picture", self.config.generate))
        providers = [(step, env, env.get("PROVIDER", "offline")) for step, env in steps]
        seen_tokens: set[tuple[str, str]] = set()
        for step, env, provider in providers:
            if provider == "offline":
                checks.append(Check(OK, f"{step} provider", "offline: deterministic, no network, not AI", False))
            elif provider == "huggingface":
                if ("huggingface", env.get("HF_TOKEN_PARAMETER", "")) not in seen_tokens:
                    seen_tokens.add(("huggingface", env.get("HF_TOKEN_PARAMETER", "")))
                    checks.extend(self._hf_token(env))
                checks.extend(self._hf_models(step, env))
            elif provider == "bedrock":
                checks.extend(self._bedrock_models(step, env))
            elif provider == "openai":
                checks.extend(self._openai_models(step, env))
            else:
                checks.append(Check(FAIL, f"{step} provider", f"unknown provider {provider!r}"))
        return checks

    # Secrets ------------------------------------------------------------------------------------------

    def _secret(self, variable: str, parameter: str, names: str) -> tuple[str | None, str]:
        """(value, where it came from); value None with the reason when there is none.

        `variable` is doctor's own environment variable; `names` the template parameter holding the SSM name."""
        if self.environ.get(variable):
            return self.environ[variable], variable
        if not parameter:
            return None, f"{variable} is not set and no SSM parameter is named ({names})"
        if self.aws is None:
            return None, f"{variable} is not set, and SSM {parameter} ({names}) cannot be read: {NO_AWS}"
        try:
            got = self.aws("ssm").get_parameter(Name=parameter, WithDecryption=True)
        except (ClientError, BotoCoreError) as exc:
            return None, f"{variable} is not set and SSM {parameter} ({names}) could not be read ({_reason(exc)})"
        return str(got["Parameter"]["Value"]), f"SSM {parameter}"

    # Hugging Face --------------------------------------------------------------------------------------

    def _hf_token(self, env: dict[str, str]) -> Iterator[Check]:
        token, source = self._secret("HF_TOKEN", env.get("HF_TOKEN_PARAMETER", ""), "HfTokenParameter")
        if token is None:
            yield Check(FAIL, "Hugging Face token", source)
            return
        hub = self._hub_url(env)
        try:
            response = self.http.get(
                f"{hub}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            why = _unanswered(exc)
            yield Check(FAIL, "Hugging Face token", f"from {source}; the Hub at {hub} did not answer ({why})")
            return
        if response.status_code == 200:
            who = _json(response).get("name", "?")
            yield Check(OK, "Hugging Face token", f"from {source}, accepted by {hub} (user {who})")
        elif response.status_code == 401:
            yield Check(FAIL, "Hugging Face token", f"from {source}, refused by {hub} (HTTP 401)")
        else:
            yield Check(FAIL, "Hugging Face token", f"from {source}; {hub} answered HTTP {response.status_code}")

    def _hub_url(self, env: dict[str, str]) -> str:
        # Only the generating function needs the Hub; captions go to the router alone.
        return (env.get("HF_HUB_URL") or self.config.generate.get("HF_HUB_URL") or "https://huggingface.co").rstrip("/")

    def _hf_models(self, step: str, env: dict[str, str]) -> Iterator[Check]:
        variable = PARAMETERS["HF_CAPTION_MODELS" if step == "caption" else "HF_IMAGE_MODELS"]
        models = chain(env.get("HF_CAPTION_MODELS" if step == "caption" else "HF_IMAGE_MODELS", ""))
        task = TASKS[step]
        token = self._secret("HF_TOKEN", env.get("HF_TOKEN_PARAMETER", ""), "HfTokenParameter")[0]
        hub = self._hub_url(env)

        def served(model: str) -> tuple[bool | None, str]:
            try:
                mappings = fetch_mapping(hub, model, token, session=self.http)
            except ProviderError as exc:
                if exc.code == "PROVIDER_UNAVAILABLE":  # not reached, or a 429/5xx: the Hub is not answering
                    raise Unreachable(f"the Hub at {hub} {exc.message.removeprefix('the Hub ')}") from None
                return None, f"could not be looked up ({exc.message})"
            chosen = choose(mappings, task)
            if chosen is not None:
                return True, f"served for {task} by {chosen.provider}"
            listed = ", ".join(f"{m.provider}:{m.task}:{m.status}" for m in mappings)
            return False, f"not served for {task} ({'Hub lists ' + listed if listed else 'the Hub has no mapping'})"

        yield from _chain_checks(variable, models, served)

    # Bedrock -------------------------------------------------------------------------------------------

    def _bedrock_models(self, step: str, env: dict[str, str]) -> Iterator[Check]:
        setting = "BEDROCK_CAPTION_MODELS" if step == "caption" else "BEDROCK_IMAGE_MODELS"
        variable, models = PARAMETERS[setting], chain(env.get(setting, ""))
        if self.aws is None:
            yield Check(SKIPPED, variable, f"{', '.join(models)}: {NO_AWS}")
            return
        # Pictures are painted in BEDROCK_IMAGE_REGION when it is set, so their models are looked up there.
        region = env.get("BEDROCK_IMAGE_REGION", "") if step == "picture" else ""
        bedrock = self.aws("bedrock", region) if region else self.aws("bedrock")

        def usable(model: str) -> tuple[bool | None, str]:
            available, detail = _usable(model)
            return available, f"{detail} (in {region})" if region else detail

        def _usable(model: str) -> tuple[bool | None, str]:
            notes = []
            base = base_model_id(model)
            if step == "picture" and image_family(model) is None:
                return False, "no request body for this model family in the Bedrock provider"
            try:
                if base != model:
                    profile = bedrock.get_inference_profile(inferenceProfileIdentifier=model)
                    if profile.get("status") != "ACTIVE":
                        return False, f"inference profile is {profile.get('status')}"
                    notes.append("inference profile exists")
                details = bedrock.get_foundation_model(modelIdentifier=base)["modelDetails"]
            except ClientError as exc:
                if _error_code(exc) in MODEL_GONE:
                    return False, f"not available ({_reason(exc)})"
                return None, f"could not be checked ({_reason(exc)})"
            except AWS_UNREACHABLE as exc:
                where = f" in {region}" if region else ""
                raise Unreachable(f"Bedrock{where} did not answer ({_unanswered(exc)})") from None
            except (BotoCoreError, NotImplementedError) as exc:
                return None, f"could not be checked ({_reason(exc)})"
            lifecycle = (details.get("modelLifecycle") or {}).get("status", "?")
            if lifecycle != "ACTIVE":
                return False, f"lifecycle {lifecycle} (end of life is scheduled or past)"
            notes.append("ACTIVE")
            if not hasattr(bedrock, "get_foundation_model_availability"):
                notes.append("access not checked (this botocore has no GetFoundationModelAvailability)")
                return True, ", ".join(notes)
            try:
                access = bedrock.get_foundation_model_availability(modelId=base)
            except (ClientError, BotoCoreError, NotImplementedError) as exc:
                notes.append(f"access not checked ({_reason(exc)})")
                return True, ", ".join(notes)
            refused = [
                f"{key}={access.get(key)}"
                for key, good in ACCESS_GRANTED.items()
                if access.get(key) is not None and access.get(key) != good
            ]
            agreement = (access.get("agreementAvailability") or {}).get("status")
            if agreement not in (None, "AVAILABLE"):
                refused.append(f"agreement={agreement}")
            if access.get("entitlementAvailability") not in (None, "AVAILABLE"):
                refused.append(f"not subscribed: {SUBSCRIBE_HINT}")
            if refused:
                return False, "no access: " + ", ".join(refused)
            notes.append("access granted")
            return True, ", ".join(notes)

        yield from _chain_checks(variable, models, usable)

    # OpenAI-compatible -----------------------------------------------------------------------------------

    def _openai_models(self, step: str, env: dict[str, str]) -> Iterator[Check]:
        setting = "OPENAI_CAPTION_MODELS" if step == "caption" else "OPENAI_IMAGE_MODELS"
        variable = PARAMETERS[setting]
        base = env.get("OPENAI_BASE_URL", "").rstrip("/")
        root = base if base.endswith("/v1") else f"{base}/v1"
        headers = {}
        if env.get("OPENAI_KEY_PARAMETER") or self.environ.get("OPENAI_API_KEY"):
            key, source = self._secret("OPENAI_API_KEY", env.get("OPENAI_KEY_PARAMETER", ""), "OpenAiKeyParameter")
            if key is None:
                yield Check(FAIL, "OpenAI-compatible key", source)
                return
            headers["Authorization"] = f"Bearer {key}"
        try:
            response = self.http.get(f"{root}/models", headers=headers, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            yield Check(FAIL, variable, f"{root}/models did not answer ({_unanswered(exc)})")
            return
        if response.status_code != 200:
            yield Check(FAIL, variable, f"{root}/models answered HTTP {response.status_code}")
            return
        data = _json(response).get("data")
        listed = {str(m.get("id")) for m in data if isinstance(m, dict)} if isinstance(data, list) else set()

        def served(model: str) -> tuple[bool | None, str]:
            return (True, f"listed by {root}/models") if model in listed else (False, f"not listed by {root}/models")

        yield from _chain_checks(variable, chain(env.get(setting, "")), served)

    # SES -------------------------------------------------------------------------------------------------

    def ses_checks(self) -> Iterator[Check]:
        """The sender is verified, sending is enabled, and whether the account is in the sandbox."""
        sender = self.config.notify.get("SENDER_EMAIL", "")
        if self.aws is None:
            yield Check(SKIPPED, "SES", f"sender, sending and sandbox not checked: {NO_AWS}")
            return
        ses = self.aws("ses")
        domain = sender.rpartition("@")[2]
        yield self._call(
            "SES sender",
            lambda: _verified(ses.get_identity_verification_attributes(Identities=[sender, domain]), sender, domain),
        )
        yield self._call("SES sending", lambda: _sending(ses.get_account_sending_enabled()))
        sesv2 = self.aws("sesv2")
        yield self._call("SES account", lambda: _account(sesv2.get_account()))

    def confirmation_check(self) -> Check:
        """Double opt-in is on, or its being off is safe (an authorizer stands in front of the API)."""
        subject = "address confirmation"
        if self.config.caption.get("CONFIRM_ADDRESSES", "true").strip().lower() != "false":
            return Check(
                OK, subject, "on: a new address gets one confirmation email and nothing else until it confirms", False
            )
        if self.config.api_public:
            return Check(
                WARN,
                subject,
                "ConfirmAddresses=false on an API anyone can call: anyone may have this stack email any address; "
                "turn it on, or put an authorizer in front of the API",
                False,  # read from the configuration: no service was asked
            )
        return Check(OK, subject, "off, behind the API's authorizer (a private deployment)", False)

    def _call(self, subject: str, check: Callable[[], Check]) -> Check:
        """Run one AWS check: an endpoint that does not answer fails it; one that cannot answer this
        call (an emulator, no permission) makes it skipped; never a traceback."""
        try:
            return check()
        except AWS_UNREACHABLE as exc:
            return Check(FAIL, subject, f"the AWS endpoint did not answer ({_unanswered(exc)})")
        except ClientError as exc:
            if _error_code(exc) in ("AccessDenied", "AccessDeniedException", "UnrecognizedClientException"):
                return Check(SKIPPED, subject, f"not allowed to ask ({_reason(exc)})")
            return Check(SKIPPED, subject, f"the endpoint did not answer ({_reason(exc)})")
        except (BotoCoreError, NotImplementedError) as exc:
            return Check(SKIPPED, subject, f"the endpoint cannot answer this ({_reason(exc)})")

    # Alarms ----------------------------------------------------------------------------------------------

    def alarm_checks(self) -> Iterator[Check]:
        """A deployed stack's alarms reach someone: a confirmed subscription to its topic (or AlarmTopicArn's)."""
        if self.stack is None or self.aws is None:
            return
        cloudformation, sns = self.aws("cloudformation"), self.aws("sns")

        def subscribers() -> Check:
            try:
                topic = cloudformation.describe_stack_resource(StackName=self.stack, LogicalResourceId="AlarmTopic")
            except ClientError as exc:
                if _error_code(exc) != "ValidationError":
                    raise
                # A stack deployed from a template before AlarmTopic: its alarms notify AlarmTopicArn at most.
                return Check(WARN, "Alarms", f"stack {self.stack} has no AlarmTopic (an older template): redeploy it")
            topics = [topic["StackResourceDetail"]["PhysicalResourceId"], *self.config.alarm_topics]
            confirmed = [
                sub["Endpoint"]
                for arn in topics
                for sub in sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
                if sub.get("SubscriptionArn", "").startswith("arn:")  # not "PendingConfirmation"
            ]
            if confirmed:
                return Check(OK, "Alarms", f"{len(confirmed)} confirmed subscription(s) to {', '.join(topics)}")
            return Check(
                WARN,
                "Alarms",
                f"nobody is subscribed to {', '.join(topics)}: the alarms notify no one. Set AlarmEmail "
                "(and follow the confirmation link AWS mails) or AlarmTopicArn",
            )

        yield self._call("Alarms", subscribers)


def _verified(answer: dict[str, Any], sender: str, domain: str) -> Check:
    attributes = answer.get("VerificationAttributes", {})
    for identity in (sender, domain):
        if attributes.get(identity, {}).get("VerificationStatus") == "Success":
            return Check(OK, "SES sender", f"{sender} is verified ({'address' if identity == sender else 'domain'})")
    status = attributes.get(sender, {}).get("VerificationStatus") or "not an identity"
    return Check(FAIL, "SES sender", f"SenderEmail {sender} is not verified ({status}); verify it or its domain in SES")


def _sending(answer: dict[str, Any]) -> Check:
    if answer.get("Enabled"):
        return Check(OK, "SES sending", "enabled for the account in this region")
    return Check(FAIL, "SES sending", "disabled for the account in this region (paused by AWS or by you)")


def _account(answer: dict[str, Any]) -> Check:
    if not answer.get("SendingEnabled", True):
        return Check(FAIL, "SES account", "sending is disabled")
    if answer.get("ProductionAccessEnabled"):
        return Check(OK, "SES account", "production access: mail goes to any address")
    return Check(WARN, "SES account", "sandbox: mail goes only to verified addresses; request production access")


Probe = Callable[[str], tuple[bool | None, str]]  # model -> (available; None: could not tell, why)


def _chain_checks(variable: str, models: list[str], probe: Probe) -> Iterator[Check]:
    """One line per model (a warning while the chain can fall back), then the chain's verdict; a
    service that does not answer fails the chain in one line."""
    if not models:
        yield Check(FAIL, variable, "the chain is empty")
        return
    try:
        results = [(model, *probe(model)) for model in models]
    except Unreachable as exc:
        yield Check(FAIL, variable, str(exc))
        return
    for model, available, detail in results:
        yield Check({True: OK, False: WARN, None: SKIPPED}[available], f"{variable} {model}", detail)
    first = next((model for model, available, _ in results if available), None)
    unknown = [model for model, available, _ in results if available is None]
    if first is not None:
        served = sum(1 for _, available, _ in results if available)
        yield Check(OK, variable, f"{first} answers first ({served} of {len(models)} available)")
    elif unknown:
        yield Check(SKIPPED, variable, f"could not tell whether {', '.join(unknown)} can answer")
    else:
        yield Check(FAIL, variable, f"no model of the chain is available (tried {', '.join(models)})")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def report(checks: list[Check], say: Callable[[str], None]) -> int:
    """Print one line per check and a summary; the exit status: 1 when any check failed or none verified anything."""
    for check in checks:
        say(check.line())
    failed = sum(1 for c in checks if c.status == FAIL)
    warned = sum(1 for c in checks if c.status == WARN)
    skipped = sum(1 for c in checks if c.status == SKIPPED)
    say(f"doctor: {len(checks)} checks, {failed} failed, {warned} warnings, {skipped} skipped")
    if not any(c.verifies and c.status != SKIPPED for c in checks):
        say(
            "doctor: nothing was verified: every check was skipped. Give --stack NAME for a deployed stack, "
            "or --endpoint-url for an emulator, and the credentials to ask it"
        )
        return 1
    return 1 if failed else 0
