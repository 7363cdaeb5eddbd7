"""Provider keys from the operator's environment, stored where the functions look for them.

The functions read their Hugging Face token and OpenAI-compatible key from SSM Parameter Store
(SecureString, named by a template parameter), as on AWS. Locally the operator has them as
`HF_TOKEN` / `OPENAI_API_KEY`; putting them into the emulator's Parameter Store lets the same
provider code run unchanged. Only parameter names are ever reported, never the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (template parameter naming the SecureString, environment variable holding the key)
PROVIDER_SECRETS = (
    ("HfTokenParameter", "HF_TOKEN"),
    ("OpenAiKeyParameter", "OPENAI_API_KEY"),
)


def store_provider_secrets(parameters: Mapping[str, Any], ssm: Any, environ: Mapping[str, str]) -> list[str]:
    """Put each key that is set into the SecureString its parameter names; returns the names written."""
    stored = []
    for parameter, variable in PROVIDER_SECRETS:
        name, value = str(parameters.get(parameter) or ""), environ.get(variable, "")
        if name and value:
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
            stored.append(name)
    return stored
