"""The ECS deployment as a pure state machine.

`step(deployment, event, now)` returns the new deployment record and the
actions to carry out; it never sleeps, never does I/O, and reads time only
from `now`. The driver (controller.runner) performs the actions and feeds
their outcomes back as events. Tests read as playbooks: events in, actions
and states out, with a clock they step by hand.

Every stage is "do its work (if any), then run its hooks, then go on":
SCALE_UP starts green tasks, TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT
move weights (a step counts as done only when the proxy's read-back shows
it), BAKE_TIME waits, CLEAN_UP stops the old task set. A rollback is a
second, shorter route through the same stages: production and test traffic
back to blue first, then green stopped.

The service around a deployment is decided here too, as pure functions
the driver carries out: which weights the load balancer should have
(wanted_weights) and what a restarted controller keeps, stops, promotes
and resumes (restart_plan, recovery_plan).

record: the Deployment and its stages, states and waits; events: what
the machine hears; actions: what it asks for; stages: one transition's
work; dispatch: `step`; restart and weights: the service's decisions.
"""

from shiftlab.controller.machine.actions import (
    Action,
    InvokeHook,
    Note,
    Promote,
    Reconcile,
    ReplaceTask,
    RollingReplace,
    ScaleUpGreen,
    SetWeights,
    StopTasks,
    WakeAt,
)
from shiftlab.controller.machine.dispatch import UNHEALTHY, step
from shiftlab.controller.machine.events import (
    AlarmStates,
    Approve,
    Event,
    GreenReady,
    GreenServing,
    HookAnswer,
    Reconciled,
    Recover,
    RollingDone,
    Start,
    StopRequest,
    TaskFailed,
    TaskHealthy,
    TasksStopped,
    TaskUnhealthy,
    Tick,
    WeightsApplied,
)
from shiftlab.controller.machine.record import (
    BAKE_TIME,
    CLEAN_UP,
    FINAL,
    IN_PROGRESS,
    NLB_SHIFT_DELAY_MINUTES,
    PENDING,
    POST_PRODUCTION_TRAFFIC_SHIFT,
    POST_SCALE_UP,
    POST_TEST_TRAFFIC_SHIFT,
    PRE_PRODUCTION_TRAFFIC_SHIFT,
    PRE_SCALE_UP,
    PRODUCTION_TRAFFIC_SHIFT,
    RECONCILE_SERVICE,
    ROLLBACK_FAILED,
    ROLLBACK_IN_PROGRESS,
    ROLLBACK_REQUESTED,
    ROLLBACK_SUCCESSFUL,
    SCALE_UP,
    STOP_REQUESTED,
    STOPPED,
    SUCCESSFUL,
    TEST_TRAFFIC_SHIFT,
    W_BAKE,
    W_DELAY,
    W_HOOK,
    W_RECONCILE,
    W_ROLLING,
    W_SCALE,
    W_STOP,
    W_WEIGHTS,
    Deployment,
    HookRun,
    failure_threshold,
    minutes,
)
from shiftlab.controller.machine.restart import Adopted, RestartPlan, recovery_plan, restart_plan
from shiftlab.controller.machine.weights import wanted_weights

__all__ = [
    "BAKE_TIME", "CLEAN_UP", "FINAL", "IN_PROGRESS", "NLB_SHIFT_DELAY_MINUTES", "PENDING",
    "POST_PRODUCTION_TRAFFIC_SHIFT", "POST_SCALE_UP",
    "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRE_SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT",
    "RECONCILE_SERVICE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_SUCCESSFUL",
    "SCALE_UP", "STOPPED", "STOP_REQUESTED", "SUCCESSFUL", "TEST_TRAFFIC_SHIFT", "UNHEALTHY", "W_BAKE", "W_DELAY",
    "W_HOOK", "W_RECONCILE", "W_ROLLING", "W_SCALE", "W_STOP", "W_WEIGHTS",
    "Action", "Adopted", "AlarmStates", "Approve", "Deployment", "Event", "GreenReady", "GreenServing", "HookAnswer",
    "HookRun", "InvokeHook", "Note", "Promote", "Reconcile", "Reconciled", "Recover", "ReplaceTask", "RestartPlan",
    "RollingDone", "RollingReplace", "ScaleUpGreen", "SetWeights", "Start", "StopRequest", "StopTasks", "TaskFailed",
    "TaskHealthy", "TaskUnhealthy", "TasksStopped", "Tick", "WakeAt", "WeightsApplied",
    "failure_threshold", "minutes", "recovery_plan", "restart_plan", "step", "wanted_weights",
]
