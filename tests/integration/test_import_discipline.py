"""A handler module imports only what its function needs: checked in a fresh interpreter per handler.

Tracing is live in these children (LAMBDA_TASK_ROOT set, as on Lambda with `Tracing: Active`), because
that is when the X-Ray SDK would patch, and so import, every library it supports.
Timing is the benchmark's business (bench/cold_start.py); these tests only look at sys.modules.
"""

from __future__ import annotations

import pytest

from tests.fixtures.child_python import run_python

PROVIDERS = ("reimagine.providers.offline", "reimagine.providers.huggingface", "reimagine.providers.bedrock")
# Libraries no handler needs at import: HTTP for a provider only once one is built; what
# X-Ray's patch_all would drag in; the Powertools event parser's pydantic models (we use data classes).
NEVER = (
    "requests",
    "httpx",
    "sqlite3",
    "aws_lambda_powertools.utilities.parser.models",
    *PROVIDERS,
)
IMAGING = ("PIL", "reimagine.imaging")
# EmailStr's validator (and dnspython): only the API validates addresses, and only on its first
# POST /requests (the body model is built on first use).
EMAIL = ("email_validator", "dns")

# handler -> heavy modules it must not import on top of NEVER
FORBIDDEN = {
    "api": (*IMAGING, *EMAIL, "aws_lambda_powertools.utilities.batch"),
    "caption": (*EMAIL, "aws_lambda_powertools.event_handler"),
    "generate": (*IMAGING, *EMAIL, "aws_lambda_powertools.event_handler"),
    "notify": (*IMAGING, *EMAIL, "aws_lambda_powertools.event_handler"),
    "sweeper": (*IMAGING, *EMAIL, "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.batch"),
    "mail_events": (
        *IMAGING,
        *EMAIL,
        "aws_lambda_powertools.event_handler",
        "aws_lambda_powertools.utilities.batch",
    ),
}


def _loaded_after_import(handler: str, watched: tuple[str, ...]) -> list[str]:
    code = (
        f"import json, sys\nimport reimagine.handlers.{handler}\n"
        f"print(json.dumps({{'loaded': [m for m in {list(watched)!r} if m in sys.modules]}}))"
    )
    return run_python(code)["loaded"]


@pytest.mark.parametrize("handler", sorted(FORBIDDEN))
def test_handler_imports_nothing_it_does_not_need(handler: str) -> None:
    assert _loaded_after_import(handler, (*NEVER, *FORBIDDEN[handler])) == []


def test_the_watch_list_sees_what_is_imported() -> None:
    # Guards the check itself: the caption function does load Pillow and the imaging module.
    assert _loaded_after_import("caption", IMAGING) == list(IMAGING)


def test_provider_module_is_loaded_on_first_use_only() -> None:
    code = (
        "import json, sys\nimport reimagine.handlers.generate as h\n"
        "before = 'reimagine.providers.offline' in sys.modules\nh._generator()\n"
        "print(json.dumps({'before': before, 'after': 'reimagine.providers.offline' in sys.modules}))"
    )
    assert run_python(code) == {"before": False, "after": True}


def test_requests_is_still_traced_once_imported() -> None:
    # The tracer patches requests when a provider imports it, as patch_all did at start.
    code = (
        "import json\nimport reimagine.handlers.notify\nimport requests\n"
        "print(json.dumps({'wrapped': hasattr(requests.Session.request, '__wrapped__')}))"
    )
    assert run_python(code) == {"wrapped": True}


API_MODELS = ("UploadForm", "Links", "CreateRequestResponse", "RequestView", "ErrorDetail", "ErrorBody")


@pytest.mark.parametrize("handler", ["caption", "generate", "notify", "sweeper"])
def test_api_models_are_never_built_by_other_functions(handler: str) -> None:
    # Given a function other than the API, When its handler is imported, Then no API model has a schema
    code = (
        f"import json\nimport reimagine.handlers.{handler}\nfrom reimagine import models\n"
        f"print(json.dumps([n for n in {list(API_MODELS)!r} if getattr(models, n).__pydantic_complete__]))"
    )
    assert run_python(code) == []


def test_the_request_body_is_built_by_the_first_post() -> None:
    # Given the API imported (no email-validator yet), When its first POST body is validated, Then it is loaded
    code = (
        "import json, sys\nimport reimagine.handlers.api\nfrom reimagine.request_body import CreateRequestBody\n"
        "before = 'email_validator' in sys.modules\n"
        "CreateRequestBody.model_validate({'email': 'a@example.com', 'content_type': 'image/png'})\n"
        "print(json.dumps([before, 'email_validator' in sys.modules]))"
    )
    assert run_python(code) == [False, True]
