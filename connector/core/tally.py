"""An environment's state on a commit, kept incrementally for its commit status.

Each event recomputes only its own cluster, from that cluster's rows, and records the result in
the environment's tally (one row per environment and commit); the environment's phase is read
from the tally. So an event costs one cluster's rows, however many clusters the environment has.
Gates and the deployments view keep the full roll-up (`Rollup.environment`), which also follows
descendant commits.

Two events of one cluster processed side by side may reach the tally in either order: each
result carries when the newest state row it was computed from was written (the store's clock),
and a result from older rows never replaces one from newer rows. An event that finds its result
already recorded writes nothing; so the one that moves a cluster's result reads the cluster once
more afterwards and records again if it moved meanwhile (rare: twice or so per cluster and
rollout), and the last word is never a stale one.
"""

from __future__ import annotations

from connector.core.rollup import EnvironmentSpecs, Rollup, cluster_of
from connector.core.state import DeploymentReads, Tallies
from connector.core.tracking import ClusterResult, EnvironmentResult, Phase, environment_result

MAX_CHECKS = 3  # re-reads of a cluster after moving its result (each only if it moved again)


class EnvironmentTally:
    def __init__(
        self, environments: EnvironmentSpecs, reads: DeploymentReads, tallies: Tallies
    ) -> None:
        self._environments = environments
        self._reads = reads
        self._tallies = tallies
        # Whether a call changed its cluster's result (sticky: one tally serves one message).
        self.cluster_changed = False

    def environment(self, commit: str, env: str, cluster: str) -> EnvironmentResult:
        """The environment on `commit`, after recording `cluster`'s result (the event's)."""
        spec = self._environments.get(env)
        view = self._reads.cluster_view(commit, env, cluster)
        result = cluster_of(cluster, view, spec)
        changed, recorded = self._tallies.tally(commit, env, result, view.basis)
        self.cluster_changed = self.cluster_changed or changed
        for _ in range(MAX_CHECKS):
            if not changed or recorded is None:
                break
            # We moved the cluster's result: a concurrent event of the cluster that found the
            # old result equal to its own skipped its write, so make sure ours is not stale.
            view = self._reads.cluster_view(commit, env, cluster)
            latest = cluster_of(cluster, view, spec)
            if latest == result:
                break
            result = latest
            changed, recorded = self._tallies.tally(commit, env, result, view.basis)
        if recorded is None:  # more clusters than a tally row holds: the full roll-up
            return Rollup(self._environments, self._reads).environment(commit, env)
        configured = list(spec.clusters) if spec else []
        expected = configured or self._reads.environment_clusters(env)
        clusters = [recorded.get(c) or ClusterResult(c, Phase.PROGRESSING) for c in expected]
        return environment_result(env, clusters)
