"""The deployment record: its stages, states and waits, and the Deployment
the machine changes and the records store (as JSON: `to_dict`/`from_dict`;
records written by earlier versions must still load)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from shiftlab.controller.config import DeploymentConfiguration, ThresholdConfiguration
from shiftlab.controller.strategies import Step, plan

# Lifecycle stages, in order.
RECONCILE_SERVICE = "RECONCILE_SERVICE"
PRE_SCALE_UP = "PRE_SCALE_UP"
SCALE_UP = "SCALE_UP"
POST_SCALE_UP = "POST_SCALE_UP"
TEST_TRAFFIC_SHIFT = "TEST_TRAFFIC_SHIFT"
POST_TEST_TRAFFIC_SHIFT = "POST_TEST_TRAFFIC_SHIFT"
PRE_PRODUCTION_TRAFFIC_SHIFT = "PRE_PRODUCTION_TRAFFIC_SHIFT"
PRODUCTION_TRAFFIC_SHIFT = "PRODUCTION_TRAFFIC_SHIFT"
POST_PRODUCTION_TRAFFIC_SHIFT = "POST_PRODUCTION_TRAFFIC_SHIFT"
BAKE_TIME = "BAKE_TIME"
CLEAN_UP = "CLEAN_UP"

# Deployment states.
PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
SUCCESSFUL = "SUCCESSFUL"
STOP_REQUESTED = "STOP_REQUESTED"
STOPPED = "STOPPED"
ROLLBACK_REQUESTED = "ROLLBACK_REQUESTED"
ROLLBACK_IN_PROGRESS = "ROLLBACK_IN_PROGRESS"
ROLLBACK_SUCCESSFUL = "ROLLBACK_SUCCESSFUL"
ROLLBACK_FAILED = "ROLLBACK_FAILED"
FINAL = (SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED)

# What the deployment waits for (Deployment.waiting).
W_SCALE = "scale_up"
W_ROLLING = "rolling"
W_WEIGHTS = "weights"
W_HOOK = "hook"
W_BAKE = "bake"
W_STOP = "stop_tasks"
W_RECONCILE = "reconcile"
W_DELAY = "traffic_shift_delay"  # the delay ECS adds to a traffic shift on a network load balancer

# "When your configuration includes a Network Load Balancer, Amazon ECS adds
# a 10 minute delay to the following lifecycle stages: TEST_TRAFFIC_SHIFT,
# PRODUCTION_TRAFFIC_SHIFT" (ECS developer guide, "Network Load Balancer
# resources for Amazon ECS blue/green, linear and canary deployments",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html).
NLB_SHIFT_DELAY_MINUTES = 10.0


# A hook run's error when its timeout ended it (ROLLBACK; CONTINUE).
HOOK_TIMED_OUT = "timed out"
HOOK_TIMED_OUT_CONTINUE = "timed out (CONTINUE)"


@dataclass
class HookRun:
    hook_index: int
    stage: str
    execution_id: str
    kind: str
    started_at: float
    attempts: int = 0
    status: str = "IN_PROGRESS"
    details: Any = None
    next_call_at: float | None = None
    timeout_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def timed_out(self) -> bool:
        """Ended by its timeoutConfiguration (DescribeServiceDeployments: TIMED_OUT)."""
        return self.error in (HOOK_TIMED_OUT, HOOK_TIMED_OUT_CONTINUE)


@dataclass
class Deployment:
    id: str
    service: str
    config: dict[str, Any]  # DeploymentConfiguration as given (camelCase)
    time_scale: float
    desired_count: int
    source_revision: str
    target_revision: str
    created_at: float
    has_test_rules: bool = True
    # AWS minutes ECS waits in TEST_TRAFFIC_SHIFT and in every step of
    # PRODUCTION_TRAFFIC_SHIFT once the weights are in force (NLB_SHIFT_DELAY_MINUTES
    # behind a network load balancer, else 0).
    shift_delay_minutes: float = 0.0
    status: str = PENDING
    status_reason: str | None = None
    stage: str | None = None
    stage_started_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    updated_at: float | None = None
    version: int = 0  # bumped by every step: lets a reader drop a snapshot older than one it has
    waiting: str | None = None
    wake_at: float | None = None
    step_index: int = 0
    production_percent: float = 0.0  # green share verified in force
    test_percent: float = 0.0
    requested_production_percent: float = 0.0
    requested_test_percent: float = 0.0
    monitoring: bool = False
    ignored_alarms: list[str] = field(default_factory=list)
    triggered_alarms: list[str] = field(default_factory=list)
    alarm_states: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, Any] | None = None
    failure_count: int = 0
    failed_tasks: list[str] = field(default_factory=list)  # counted by the circuit breaker, each once
    circuit_breaker_status: str = "DISABLED"
    # ROLLING with alarms: the bake ECS derives from them (rolling.alarm_bake_minutes), AWS minutes.
    alarm_bake_minutes: float = 0.0
    # ROLLING: [old, new] tasks after the last batch (None: none done yet).
    rolling_tasks: list[int] | None = None
    pending_hooks: list[int] = field(default_factory=list)
    hook: HookRun | None = None
    hook_runs: list[HookRun] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)  # timeline: stage, started, ended
    # The production shift's steps when not the strategy's own: [[percent,
    # bake minutes], ...] (a LINEAR deployment across weighted DNS records,
    # route53.TrafficShift: slowly at first, then faster).
    schedule: list[list[float]] | None = None

    @cached_property
    def dc(self) -> DeploymentConfiguration:
        return DeploymentConfiguration.model_validate(self.config)

    @cached_property
    def steps(self) -> list[Step]:
        if self.schedule is not None:
            return [Step(float(p), float(m)) for p, m in self.schedule]
        return plan(self.dc)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def rolling_back(self) -> bool:
        return self.status in (ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS)

    @property
    def threshold(self) -> int:
        """ECS's circuit-breaker threshold (failure_threshold)."""
        return failure_threshold(self.desired_count, self.dc.deploymentCircuitBreaker.thresholdConfiguration)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for name, default in _LATER_FIELDS.items():  # an older record writes back as it was
            if doc[name] == default:
                del doc[name]
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        data = dict(data)
        hook = data.pop("hook", None)
        runs = data.pop("hook_runs", [])
        d = cls(**data)
        d.hook = HookRun(**hook) if hook else None
        d.hook_runs = [HookRun(**r) for r in runs]
        return d


# Fields added after records were first written, with the default an older
# record reads them as: written only when they differ from it.
_LATER_FIELDS: dict[str, Any] = {"alarm_bake_minutes": 0.0, "rolling_tasks": None, "schedule": None,
                                 "shift_delay_minutes": 0.0}


def failure_threshold(desired_count: int, tc: ThresholdConfiguration) -> int:
    """The circuit breaker's failure threshold, as the ECS API reference
    defines it: COUNT is `value` itself; the percentage types multiply
    `value` percent by the desired count (rounded up), and BOUNDED_PERCENT
    (the default, 50) keeps the result within 3..200."""
    if tc.type == "COUNT":
        return tc.value
    n = -(-tc.value * desired_count // 100)  # rounded up, in integers
    return min(max(n, 3), 200) if tc.type == "BOUNDED_PERCENT" else n


def minutes(d: Deployment, m: float) -> float:
    """AWS minutes as seconds of this rehearsal's clock."""
    return m * 60.0 / d.time_scale
