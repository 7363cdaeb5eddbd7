"""SnapStart: opt-in for the API, and what must be unique per execution environment is renewed after a restore."""

from __future__ import annotations

import random

import snapshot_restore_py

import reimagine.handlers  # noqa: F401 - registers the hooks, as every function's handler does
from reimagine.snapstart import reseed_random
from tests.fixtures.template import load_template, props

TEMPLATE = load_template()


def test_snapstart_is_opt_in_and_only_for_the_api() -> None:
    api = props(TEMPLATE, "ApiFunction")
    assert (TEMPLATE["Parameters"]["ApiSnapStart"]["Default"], api["AutoPublishAlias"], api["SnapStart"]) == (
        "false",
        "live",
        {"ApplyOn": {"Fn::If": ["UseApiSnapStart", "PublishedVersions", "None"]}},
    )


def test_the_after_restore_hook_is_registered() -> None:
    assert (reseed_random, (), {}) in snapshot_restore_py.get_after_restore()


def test_restored_environments_do_not_share_retry_jitter() -> None:
    # Given two environments restored from one snapshot: the same `random` state in both
    random.seed(20261201)
    twin = random.Random(20261201)
    # When the after-restore hooks run in one of them
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)
    # Then its jitter no longer follows the twin's sequence
    assert [random.random() for _ in range(4)] != [twin.random() for _ in range(4)]
