"""Multi-cluster rollouts: revisions of a template's pod spec, waves gated on health,
automatic rollback (issue 8). See docs/components/rollout.md."""
