"""What a Job needs next, decided from its finished pods (pure; the runtime acts on it).

A Job's progress is a ledger, not a view of live pods: a pod that ended is judged once
(`judge`), its outcome is written to the `JobLedger`, and from then on the pod may be
gone (deleted by ``ttlSecondsAfterFinished``, or lost with its node) without changing
the count. `next_pods` then asks only: which indexes (Indexed) or how many completions
(NonIndexed) are still owed, and how many may run at once. Keeping the rules here, free
of processes and clocks, is what lets `tests/runtimes/test_jobs.py` state them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flotilla.resources.indexes import format_indexes

#: outcomes of one ended pod
SUCCEEDED, IGNORED, COUNTED, FAIL_JOB = "Succeeded", "Ignored", "Counted", "FailJob"


@dataclass(frozen=True, slots=True)
class ExitRule:
    """One ``podFailurePolicy`` rule on exit codes."""

    action: str  # FailJob | Ignore | Count | FailIndex
    operator: str  # In | NotIn
    values: frozenset[int]
    container: str | None = None

    def matches(self, exits: dict[str, int]) -> bool:
        for name, code in exits.items():
            if code == 0 or (self.container is not None and name != self.container):
                continue
            if (code in self.values) == (self.operator == "In"):
                return True
        return False


@dataclass(frozen=True, slots=True)
class JobRules:
    completions: int
    parallelism: int
    indexed: bool
    #: the indexes this cluster owes (Indexed); ``range(completions)`` unless placement split
    indexes: frozenset[int]
    backoff_limit: int
    active_deadline: float | None = None
    ttl_after_finished: float | None = None
    rules: tuple[ExitRule, ...] = ()
    #: ``spec.suspend``: start nothing, stop what runs (placement suspends the copies of
    #: a Job the federation already finished)
    suspended: bool = False


def judge(rules: JobRules, exits: dict[str, int]) -> str:
    """The outcome of one ended pod from its containers' exit codes, by Kubernetes'
    rule: success if every container exited 0, else the first matching
    ``podFailurePolicy`` rule decides, else the failure counts against backoffLimit."""
    if all(code == 0 for code in exits.values()):
        return SUCCEEDED
    for rule in rules.rules:
        if rule.matches(exits):
            return {"Ignore": IGNORED, "FailJob": FAIL_JOB}.get(rule.action, COUNTED)
    return COUNTED


@dataclass(slots=True)
class JobLedger:
    """A Job's progress on one cluster; persisted in the runtime's state file."""

    succeeded: int = 0
    failed: int = 0
    ignored: int = 0
    completed: set[int] = field(default_factory=set)
    started: float | None = None
    #: "Complete" | "Failed" once decided, never changed afterwards
    finished: str | None = None
    reason: str = ""
    message: str = ""
    finished_at: float | None = None

    def record(self, rules: JobRules, outcome: str, index: int | None, *,
               restarts: int = 0) -> None:
        """Account one ended pod (``restarts``: in-place restarts under OnFailure, which
        Kubernetes counts against backoffLimit like failed pods)."""
        self.failed += restarts
        if outcome == SUCCEEDED:
            if index is None:
                self.succeeded += 1
            elif index not in self.completed:  # an index completes once, whatever ran twice
                self.completed.add(index)
                self.succeeded += 1
        elif outcome == IGNORED:
            self.ignored += 1
        else:
            self.failed += 1
            if outcome == FAIL_JOB and self.finished is None:
                self.finish("Failed", "PodFailurePolicy",
                            "a pod failed with an exit code the podFailurePolicy marks FailJob")

    def finish(self, kind: str, reason: str, message: str, at: float | None = None) -> None:
        if self.finished is None:
            self.finished, self.reason, self.message, self.finished_at = (
                kind, reason, message, at)

    def decide(self, rules: JobRules, now: float, active_restarts: int = 0) -> None:
        """Complete or Failed once the ledger says so (a no-op once Failed).

        Complete is reopened when more is owed than was done: placement grows a
        cluster's share when another cluster is lost, and the new indexes must run even
        if this cluster had finished its first share."""
        if self.finished == "Complete" and not self.done(rules):
            self.finished = self.finished_at = None
            self.reason = self.message = ""
        if self.finished is not None:
            if self.finished_at is None:  # decided by `record` (FailJob), dated now
                self.finished_at = now
            return
        if self.failed + active_restarts > rules.backoff_limit:
            self.finish("Failed", "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit", now)
        elif (rules.active_deadline is not None and self.started is not None
              and now - self.started >= rules.active_deadline):
            self.finish("Failed", "DeadlineExceeded",
                        "Job was active longer than specified deadline", now)
        elif self.done(rules):
            self.finish("Complete", "Completed", "every completion succeeded", now)

    def done(self, rules: JobRules) -> bool:
        if rules.indexed:
            return rules.indexes <= self.completed
        return self.succeeded >= rules.completions

    def completed_indexes(self) -> str:
        return format_indexes(self.completed)

    def to_json(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "failed": self.failed, "ignored": self.ignored,
                "completed": sorted(self.completed), "started": self.started,
                "finished": self.finished, "reason": self.reason, "message": self.message,
                "finished_at": self.finished_at}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> JobLedger:
        return cls(int(raw.get("succeeded", 0)), int(raw.get("failed", 0)),
                   int(raw.get("ignored", 0)), {int(i) for i in raw.get("completed", [])},
                   raw.get("started"), raw.get("finished"), str(raw.get("reason", "")),
                   str(raw.get("message", "")), raw.get("finished_at"))


def next_pods(rules: JobRules, ledger: JobLedger, running: list[int | None]
              ) -> list[int | None]:
    """The pods to start now: their completion indexes (Indexed) or ``None`` each
    (NonIndexed). ``running`` holds the index of every pod still running. Never more than
    ``parallelism`` at once, never more than is still owed, nothing once finished."""
    if ledger.finished is not None or rules.suspended:
        return []
    room = rules.parallelism - len(running)
    if room <= 0:
        return []
    if rules.indexed:
        busy = {i for i in running if i is not None}
        owed = sorted(rules.indexes - ledger.completed - busy)
        return list(owed[:room])
    owed_count = rules.completions - ledger.succeeded - len(running)
    return [None] * max(0, min(room, owed_count))
