"""ECS's words for a deployment, as enums whose values are ECS's strings
(and shiftlab's word for what runs the tasks).

StrEnum members are str: they compare equal to the strings the records,
the API and older code hold, and json.dumps writes them as those strings,
so a record reads and writes byte for byte as before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Strategy(StrEnum):
    """deploymentConfiguration.strategy."""

    ROLLING = "ROLLING"
    BLUE_GREEN = "BLUE_GREEN"
    LINEAR = "LINEAR"
    CANARY = "CANARY"


class Status(StrEnum):
    """A service deployment's status (DescribeServiceDeployments)."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESSFUL = "SUCCESSFUL"
    STOP_REQUESTED = "STOP_REQUESTED"
    STOPPED = "STOPPED"
    ROLLBACK_REQUESTED = "ROLLBACK_REQUESTED"
    ROLLBACK_IN_PROGRESS = "ROLLBACK_IN_PROGRESS"
    ROLLBACK_SUCCESSFUL = "ROLLBACK_SUCCESSFUL"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"


# The statuses a deployment ends in.
FINAL_STATUSES = (Status.SUCCESSFUL, Status.STOPPED, Status.ROLLBACK_SUCCESSFUL, Status.ROLLBACK_FAILED)


class Stage(StrEnum):
    """Lifecycle stages, in the order a deployment passes through them."""

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


# A deployment passes through these but no lifecycle hook can run at them.
UNHOOKABLE_STAGES = (Stage.SCALE_UP, Stage.BAKE_TIME, Stage.CLEAN_UP)
HOOKABLE_STAGES = tuple(s for s in Stage if s not in UNHOOKABLE_STAGES)
# ECS refuses PAUSE hooks at the stages where traffic moves.
NO_PAUSE_STAGES = (Stage.TEST_TRAFFIC_SHIFT, Stage.PRODUCTION_TRAFFIC_SHIFT)


class Colour(StrEnum):
    """A task set's role: blue runs the current revision, green the new one."""

    BLUE = "blue"
    GREEN = "green"


# controller.backend: local processes or Docker containers.
Backend = Literal["process", "docker"]
