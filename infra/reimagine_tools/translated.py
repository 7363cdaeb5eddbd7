"""template.yaml as CloudFormation, translated by samtranslator as `sam deploy` has it translated.

The local stack reads the resources AWS would create (Globals applied, implicit APIs, aliases, event
source mappings, bucket notifications, rules, generated roles) rather than a second reading of SAM's
event sections. Intrinsics are left for the project's Resolver: the translator only resolves the few
parameter references its transforms need. Translations are cached by template content, parameter
values, region and translator version: in the process, and in the template's `.aws-sam/` folder.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

# samtranslator accepts code only at an S3 location (`sam package` uploads CodeUri first); a local
# CodeUri travels to the translated Code through this stand-in bucket, its path quoted as the key.
CODE_BUCKET = "reimagine-local-code"
_SERVERLESS_FUNCTION = "AWS::Serverless::Function"
_SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
_CACHE_SIZE = 32
_DISK_CACHE_SIZE = 8

_cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
_lock = threading.Lock()


class TranslationError(ValueError):
    """samtranslator rejected the template (the message is its own, as `sam validate` prints it)."""


def translate(
    sam_template: Mapping[str, Any],
    *,
    region: str,
    parameters: Mapping[str, Any],
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """The CloudFormation template SAM makes of `sam_template` for these parameter values (a copy).

    `parameters` are the template's parameters with their stack's values (lists for list types):
    the translator resolves some references itself (CORS origins, AutoPublishAlias, conditions of
    generated resources), and must see what the stack will be given. Translations are kept in this
    process and, with `cache_dir`, on disk, so a later stack start skips loading the translator.
    """
    key = hashlib.sha256(
        json.dumps([sam_template, dict(parameters), region, _translator_id()], sort_keys=True, default=str).encode()
    ).hexdigest()
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        cached = _read_cached(cache_dir, key)
    if cached is None:
        cached = _translate(copy.deepcopy(dict(sam_template)), region, dict(parameters))
        _write_cached(cache_dir, key, cached)
    with _lock:
        _cache[key] = cached
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return copy.deepcopy(cached)


def _translator_id() -> str:
    """What translates: samtranslator's version line (read, not imported) and this module's own source."""
    spec = importlib.util.find_spec("samtranslator")
    if spec is None or spec.origin is None:
        raise TranslationError("samtranslator (aws-sam-translator) is not installed")
    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return f"{Path(spec.origin).read_text(encoding='utf-8').strip()} {own}"


def _read_cached(cache_dir: Path | None, key: str) -> dict[str, Any] | None:
    if cache_dir is None:
        return None
    try:
        return dict(json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _write_cached(cache_dir: Path | None, key: str, template: dict[str, Any]) -> None:
    """Best effort (a read-only folder only costs the next start a translation); the newest few are kept."""
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"{key}.{os.getpid()}.tmp"
        partial.write_text(json.dumps(template), encoding="utf-8")
        partial.replace(cache_dir / f"{key}.json")  # atomic: a concurrent start reads all or nothing
        kept = sorted(cache_dir.glob("*.json"), key=lambda file: file.stat().st_mtime, reverse=True)
        for stale in kept[_DISK_CACHE_SIZE:]:
            stale.unlink(missing_ok=True)
    except OSError:
        return


def local_code_uri(code: Any) -> str | None:
    """The local CodeUri a translated function's `Code` stands for; None for code not on this machine."""
    if isinstance(code, Mapping) and code.get("S3Bucket") == CODE_BUCKET and isinstance(code.get("S3Key"), str):
        return unquote(code["S3Key"])
    return None


def _translate(template: dict[str, Any], region: str, parameters: dict[str, Any]) -> dict[str, Any]:
    # Imported here: only a translation pays for loading the translator (about 0.4 s).
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator

    _code_at_stand_in_locations(template)
    # The session only tells the translator the region (and so the partition of managed policy ARNs).
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        return translator.translate(template, parameter_values=parameters, get_managed_policy_map=_no_iam)
    except InvalidDocumentException as exc:
        causes = " ".join(getattr(cause, "message", str(cause)) for cause in exc.causes) or str(exc)
        raise TranslationError(f"SAM cannot translate the template: {causes}") from None
    finally:
        translator.metrics.publish()  # to its dummy publisher; otherwise it warns when collected


def _no_iam() -> dict[str, str]:
    # samtranslator looks managed policy names up in its bundled list first; a name missing there
    # would need IAM's ListPolicies, which a stack on this machine does not call.
    raise TranslationError("a managed policy is not in samtranslator's bundled list; name it by its ARN")


def _code_at_stand_in_locations(template: dict[str, Any]) -> None:
    """Local CodeUris as stand-in S3 locations, as `sam validate` does; a function with none gets `.`
    (the template's folder), as sam-cli's local URI plugin gives it."""
    global_function = (template.get("Globals") or {}).get("Function") or {}
    global_code = _stand_in(global_function, "CodeUri")
    for resource in (template.get("Resources") or {}).values():
        if isinstance(resource, dict) and resource.get("Type") == _SERVERLESS_LAYER:
            _stand_in(resource.setdefault("Properties", {}), "ContentUri")
        if not isinstance(resource, dict) or resource.get("Type") != _SERVERLESS_FUNCTION:
            continue
        properties = resource.setdefault("Properties", {})
        if not _stand_in(properties, "CodeUri") and not global_code and not properties.keys() & _OTHER_CODE:
            properties["CodeUri"] = f"s3://{CODE_BUCKET}/{quote('.', safe='')}"


_OTHER_CODE = {"CodeUri", "InlineCode", "ImageUri"}


def _stand_in(properties: dict[str, Any], key: str) -> bool:
    """Whether `properties` has code at `key`; a local path there is moved to the stand-in bucket."""
    value = properties.get(key)
    if isinstance(value, str) and not value.startswith("s3://"):
        properties[key] = f"s3://{CODE_BUCKET}/{quote(value, safe='')}"
    return value is not None
