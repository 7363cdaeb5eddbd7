"""SnapStart's runtime hooks: what must differ between execution environments is renewed after a restore.

With SnapStart (the ApiSnapStart parameter), Lambda initialises one environment, snapshots it and
resumes every new environment from that snapshot, so all of them start with the same memory. Ids
are safe (uuid4 reads os.urandom at each call), but `random`'s global generator, seeded once at
interpreter start, would give every restored environment the same sequence: the same retry jitter
(ours and botocore's) in all of them, so their retries would arrive together. Nothing else made at
init is unique or holds a connection (clients are built on first use), so no before-snapshot hook
is needed. `snapshot_restore_py` ships with Lambda's Python runtimes; elsewhere nothing registers.
"""

from __future__ import annotations

import random

try:
    from snapshot_restore_py import register_after_restore
except ImportError:  # not on a Lambda Python runtime: there is no snapshot to restore from
    register_after_restore = None


def reseed_random() -> None:
    """A fresh seed from the OS for `random`'s global generator (retry jitter)."""
    random.seed()


if register_after_restore is not None:
    register_after_restore(reseed_random)
