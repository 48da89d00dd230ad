"""On-policy pacing: how many trajectory pieces an actor's ring slot produces per policy version.

With trainers.maxStaleness 0 a trainer trains only on pieces acted by its current version; whatever
an actor steps with version v after the trainer took v's batch is dropped as stale. So an actor slot
that has produced its share of the next batch waits for a newer version (as a synchronous PPO loop
does) instead of stepping on: generated frames are then trained frames.

One piece per slot carries `rows` columns; one version is trained on `pushEvery` batches of
`batchSize` columns on each of the `trainers.replicas` trainers, produced by `replicas x ringSize`
slots, so a slot's share is the ceiling of the quotient. The last piece of a share ends without the
extra env step of its bootstrap row (the row only supplies the value of the next observation), and
the next piece starts afresh at that observation with the new version's action, so no env step is
acted by one version and trained as the next's.
"""

from __future__ import annotations

import math

from srl_runtime.config.experiment import ExperimentSpec


def on_policy_share(spec: ExperimentSpec, rows: int) -> int | None:
    """Pieces one ring slot produces per policy version, or None when actors do not wait for versions.

    Actors wait only when trainers train on the current version alone (maxStaleness 0), the wait is
    enabled (actors.versionWaitSeconds > 0) and pieces are fixed-length without recurrent burn-in
    and with at most one bootstrap row (the rows a fresh piece can start without).
    """
    actors, trainers = spec.actors, spec.trainers
    if trainers.max_staleness != 0 or actors.version_wait_seconds <= 0 or actors.replicas == 0:
        return None
    if actors.full_trajectory or actors.burn_in > 0 or actors.bootstrap_steps > 1:
        return None
    columns = trainers.push_every * trainers.batch_size * trainers.replicas
    return max(1, math.ceil(columns / (actors.replicas * actors.ring_size * rows)))
