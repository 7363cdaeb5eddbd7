"""Lambda entry points: parse the event, call one piece of logic, shape the result."""

from reimagine import snapstart  # noqa: F401 - registers SnapStart's after-restore hook in every function
