"""Multi-cluster rollouts: revisions of a template's pod spec, waves gated on health,
automatic rollback to the stable revision. See docs/components/rollout.md."""
