"""CronJobs: scheduled runs as Jobs (`controller`), decided by `plan` (docs/batch.md)."""
