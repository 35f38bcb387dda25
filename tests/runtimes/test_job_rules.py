"""The Job ledger's rules (pure): outcomes of ended pods, what is owed, when it ends."""

from __future__ import annotations

from flotilla.runtimes.local.jobs import (
    COUNTED,
    FAIL_JOB,
    IGNORED,
    SUCCEEDED,
    ExitRule,
    JobLedger,
    JobRules,
    judge,
    next_pods,
)


def rules(completions: int = 4, parallelism: int = 2, *, indexed: bool = True,
          backoff: int = 1, exit_rules: tuple[ExitRule, ...] = ()) -> JobRules:
    return JobRules(completions, parallelism, indexed, frozenset(range(completions)),
                    backoff, rules=exit_rules)


def test_judge_by_exit_codes_and_policy() -> None:
    policy = (ExitRule("Ignore", "In", frozenset({42})),
              ExitRule("FailJob", "NotIn", frozenset({1, 42})))
    r = rules(exit_rules=policy)
    assert judge(r, {"a": 0, "b": 0}) == SUCCEEDED
    assert judge(r, {"a": 42}) == IGNORED
    assert judge(r, {"a": 1}) == COUNTED
    assert judge(r, {"a": 7}) == FAIL_JOB
    assert judge(rules(), {"a": 42}) == COUNTED


def test_exit_rule_for_one_container_only() -> None:
    rule = ExitRule("Ignore", "In", frozenset({42}), container="main")
    assert rule.matches({"main": 42})
    assert not rule.matches({"sidecar": 42})


def test_next_pods_owes_each_index_once_within_parallelism() -> None:
    r = rules(completions=5, parallelism=2)
    ledger = JobLedger()
    assert next_pods(r, ledger, []) == [0, 1]
    assert next_pods(r, ledger, [0]) == [1]
    ledger.record(r, SUCCEEDED, 0)
    ledger.record(r, SUCCEEDED, 0)  # a second success of index 0 is not a second completion
    assert ledger.succeeded == 1
    assert next_pods(r, ledger, [1]) == [2]


def test_non_indexed_counts_completions() -> None:
    r = rules(completions=3, parallelism=5, indexed=False)
    ledger = JobLedger()
    assert next_pods(r, ledger, []) == [None] * 3
    ledger.record(r, SUCCEEDED, None)
    assert next_pods(r, ledger, [None]) == [None]
    ledger.record(r, SUCCEEDED, None)
    ledger.record(r, SUCCEEDED, None)
    ledger.decide(r, now=10.0)
    assert (ledger.finished, ledger.finished_at) == ("Complete", 10.0)
    assert next_pods(r, ledger, []) == []


def test_backoff_limit_and_ignored_failures() -> None:
    r = rules(backoff=1)
    ledger = JobLedger()
    ledger.record(r, IGNORED, 0)
    ledger.record(r, COUNTED, 0)
    ledger.decide(r, now=1.0)
    assert ledger.finished is None, "one counted failure is within backoffLimit 1"
    ledger.record(r, COUNTED, 1)
    ledger.decide(r, now=2.0)
    assert (ledger.finished, ledger.reason) == ("Failed", "BackoffLimitExceeded")
    ledger.record(r, SUCCEEDED, 0)
    ledger.decide(r, now=3.0)
    assert ledger.finished == "Failed", "a verdict never changes"


def test_deadline_and_ledger_round_trip() -> None:
    r = JobRules(2, 1, False, frozenset(range(2)), 6, active_deadline=5.0)
    ledger = JobLedger(started=100.0)
    ledger.decide(r, now=104.0)
    assert ledger.finished is None
    ledger.decide(r, now=105.0)
    assert ledger.reason == "DeadlineExceeded"
    assert JobLedger.from_json(ledger.to_json()) == ledger


def test_complete_reopens_when_the_share_grows() -> None:
    first = JobRules(24, 2, True, frozenset(range(3)), 6)
    ledger = JobLedger()
    for i in range(3):
        ledger.record(first, SUCCEEDED, i)
    ledger.decide(first, now=1.0)
    assert ledger.finished == "Complete"
    grown = JobRules(24, 2, True, frozenset({0, 1, 2, 20}), 6)
    ledger.decide(grown, now=2.0)
    assert ledger.finished is None
    assert next_pods(grown, ledger, []) == [20]
