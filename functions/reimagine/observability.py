"""Logger, tracer and metrics, built once per container and imported by every handler."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from wrapt import register_post_import_hook

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE
# Handlers emit Powertools' ColdStart metric on their first event, unless metrics are disabled (the
# local stack, tests): Powertools prints that one even then, into the local CLI's output.
CAPTURE_COLD_START = not is_metrics_disabled()

# Patch what the X-Ray SDK's patch_all would, but without importing every supported library at
# cold start: botocore now (every function calls AWS), requests when the provider that uses it
# is loaded. Nothing else the SDK can patch is used here.
tracer = Tracer(patch_modules=("botocore",))
register_post_import_hook(lambda _module: tracer.patch(("requests",)), "requests")
