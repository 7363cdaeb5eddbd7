"""Logger, tracer and metrics, built once per container and imported by every handler."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME
tracer = Tracer()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE
