"""shiftlab's control plane: it plays the Amazon ECS deployment controller.

A deployment is a pure state machine (controller.machine) over ECS's
lifecycle stages, fed by a thin asyncio driver (controller.service and the
parts it holds: runner, scheduler, monitor, lbsync) that carries out its
actions: start and stop task sets through a Backend (local processes or
Docker containers), move weights through a Router (the proxy's admin API;
a step is done only when read back), invoke lifecycle hooks, and evaluate
CloudWatch-style alarms over metrics scraped from the proxy's stats
endpoint. Every transition is written to SQLite before the
next action, so a restarted controller knows where it was. The controller
never touches a data-plane socket itself.
"""
