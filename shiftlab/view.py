"""The live terminal view of a deployment (rich): stage, weights as bars,
per-group rates, alarms, a progress bar for bakes, recent events. Fed by
the SSE stream (`watch`) or in-process (`rehearse`, `demo`)."""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shiftlab.controller.vocabulary import Stage, Status

STATE_STYLE = {"OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow"}
STATUS_STYLE = {Status.SUCCESSFUL: "bold green", Status.ROLLBACK_SUCCESSFUL: "bold yellow",
                Status.ROLLBACK_FAILED: "bold red", Status.STOPPED: "yellow", Status.IN_PROGRESS: "cyan",
                Status.ROLLBACK_IN_PROGRESS: "bold yellow"}


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class WatchState:
    """What the view shows, updated message by message."""

    def __init__(self) -> None:
        self.deployment: dict[str, Any] | None = None
        self.metrics: dict[str, Any] = {}
        self.service: dict[str, Any] | None = None
        self.events: deque[str] = deque(maxlen=8)
        # Target group -> (running, desired) tasks of its task set.
        self.tasks: dict[str, tuple[int, int]] = {}
        # A headless service's active revisions, as the latest `activation` message says.
        self.active: list[str] | None = None

    def update(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "deployment":
            self.deployment = message["deployment"]
            for ts in self.deployment.get("shiftlab", {}).get("taskSets") or []:
                self.tasks[ts["targetGroup"]] = (ts["runningCount"], ts["desiredCount"])
        elif kind == "metrics":
            self.metrics = message
        elif kind == "service":
            self.service = message["service"]
            for ts in self.service.get("taskSets") or []:
                running = sum(1 for t in ts["tasks"] if t["lastStatus"] == "RUNNING")
                self.tasks[ts["targetGroup"]] = (running, ts["desiredCount"])
        elif kind == "activation":
            self.active = [rev for rev, on in message["revisions"].items() if on]
        elif kind == "event":
            ev = message["event"]
            at = time.strftime("%H:%M:%S", time.localtime(ev["at"]))
            self.events.append(f"{at} {ev['message']}")


def weight_bar(label: str, green_percent: float, source: str, target: str, width: int = 32) -> Text:
    """The share of the running revision (drawn blue) and the new one (green),
    named by revision: the target groups called blue and green swap roles
    with every deployment, and the table below names groups."""
    g = round(width * green_percent / 100)
    text = Text(f"{label:<11}")
    text.append("█" * (width - g), style="blue")
    text.append("█" * g, style="green")
    text.append(f" revision {source} {100 - green_percent:g}% / revision {target} {green_percent:g}%")
    return text


def render(state: WatchState) -> RenderableType:
    parts: list[RenderableType] = []
    d = state.deployment
    if d is not None:
        sl = d["shiftlab"]
        status = d["status"]
        head = Text()
        head.append(f"deployment {sl['id'][:12]}  ", style="bold")
        head.append(f"{sl['strategy']}  revision {sl['sourceRevision']} -> {sl['targetRevision']}  "
                    f"timeScale {sl['timeScale']:g}\n")
        head.append("status ")
        head.append(status, style=STATUS_STYLE.get(status, ""))
        head.append(f"   stage {d['lifecycleStage'] or '-'}")
        steps = sl.get("steps") or []
        if steps and d["lifecycleStage"] in (Stage.PRE_PRODUCTION_TRAFFIC_SHIFT, Stage.PRODUCTION_TRAFFIC_SHIFT):
            head.append(f"   step {sl['stepIndex'] + 1}/{len(steps)}")
        if d.get("statusReason"):
            head.append(f"\n{d['statusReason']}", style="dim")
        parts.append(head)
        revisions = (sl["sourceRevision"], sl["targetRevision"])
        if sl.get("exposure") == "headless":
            # No traffic to shift: the activation flags say which revision works.
            active = state.active if state.active is not None else sl.get("activeRevisions") or []
            parts.append(Text(f"{'active':<11}" + (", ".join(f"revision {r}" for r in active) or "none")
                              + "   (headless: no load balancer)"))
        else:
            parts.append(weight_bar("production", sl["productionTrafficWeight"], *revisions))
            parts.append(weight_bar("test", sl["testTrafficWeight"], *revisions))
        dns_records = sl.get("dnsRecords")
        if dns_records:
            ttl = max(dns_records["ttl"].values(), default=0)
            parts.append(Text(f"DNS {dns_records['name']}  weights "
                              + ", ".join(f"{k} {v}" for k, v in dns_records["weights"].items())
                              + f"  TTL {ttl} s (clients follow within a TTL)"))
        started = _ts(sl.get("stageStartedAt"))
        for label, until in (("bake       ", _ts(sl.get("bakeUntil"))), ("NLB delay  ", _ts(sl.get("delayUntil")))):
            # The delay ECS adds to a traffic shift behind a network load balancer shows as a bake does.
            if until and started and status.endswith("IN_PROGRESS"):
                total = max(until - started, 1e-6)
                done = min(max(time.time() - started, 0), total)
                row = Table.grid(padding=(0, 1))
                row.add_row(Text(label), ProgressBar(total=total, completed=done, width=32),
                            Text(f"{max(until - time.time(), 0):5.1f} s left"))
                parts.append(row)
        if sl.get("awaitingApproval"):
            parts.append(Text("waiting for approval: shiftlab approve (or stop --rollback)", style="bold magenta"))
    groups = state.metrics.get("groups") or {}
    if groups or state.tasks:
        t = Table(box=None, header_style="bold", pad_edge=False)
        # A network load balancer counts connections: new ones a second, resets a second, open ones.
        network = state.metrics.get("loadBalancerType") == "network"
        cols = ("req/s", "5xx/s", "p99") if not network else ("conn/s", "resets/s", "open")
        for col in ("target group", "tasks", "healthy", *cols):
            t.add_column(col, justify="right" if col != "target group" else "left")
        for name in [*groups, *(n for n in state.tasks if n not in groups)]:
            g = groups.get(name)
            running, desired = state.tasks.get(name, (None, None))
            tasks = f"{running}/{desired}" if running is not None else "-"
            if g is None:
                t.add_row(name, tasks, "-", "-", "-", "-")
                continue
            p99 = g.get("p99")
            last = str(g.get("activeFlows", 0)) if network else f"{p99 * 1000:.0f} ms" if p99 is not None else "-"
            t.add_row(name, tasks, str(g.get("healthy", 0)), f"{g.get('rps', 0):.1f}",
                      Text(f"{g.get('errorsPerSecond', 0):.1f}", style="red" if g.get("errorsPerSecond") else ""),
                      last)
        parts.append(t)
    alarms = state.metrics.get("alarms") or []
    if alarms:
        t = Table(box=None, header_style="bold", pad_edge=False)
        t.add_column("alarm")
        t.add_column("state")
        for a in alarms:
            t.add_row(a["AlarmName"], Text(a["StateValue"], style=STATE_STYLE.get(a["StateValue"], "")))
        parts.append(t)
    if state.events:
        parts.append(Text("\n".join(state.events), style="dim"))
    if not parts:
        parts.append(Text("waiting for the controller..."))
    return Panel(Group(*parts), title="shiftlab", border_style="cyan")
