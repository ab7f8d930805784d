"""Where task sets run: the Backend protocol (base), local processes
(process, the default), Docker containers (docker) and an in-memory fake
for unit tests of the controller (fake)."""

from shiftlab.controller.backends.base import Backend, Task, TaskDefinition, UnknownTask

__all__ = ["Backend", "Task", "TaskDefinition", "UnknownTask"]
