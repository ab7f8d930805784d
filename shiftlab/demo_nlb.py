"""`shiftlab demo --scenario nlb`: a canary behind a network load balancer.

The line service (shiftlab.line_service) runs as blue; a few clients hold
long-lived connections to the production listener and keep talking on
them, while new clients connect, ask once and leave. A canary moves the
weights: new connections follow them (some to green during the canary
step, all of them once production is on green), the long-lived ones stay
on blue until blue stops, as on an NLB, which routes flows, not requests.
ECS's 10-minute delay after each traffic shift (scaled) shows in the log.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from shiftlab.controller import eventlog
from shiftlab.settings import Settings, load_settings, on_free_ports

KEPT = 4  # long-lived connections opened before the deployment
NEW_EVERY = 0.1  # seconds between two new connections (wall clock)
TALK_EVERY = 0.25  # seconds between two lines on each long-lived connection
DEPLOYMENT = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 25, "canaryBakeTimeInMinutes": 2},
              "bakeTimeInMinutes": 1}


def nlb_settings(time_scale: float, state_dir: str) -> Settings:
    text = resources.files("shiftlab").joinpath("examples/nlb.yaml").read_text(encoding="utf-8")
    data = on_free_ports(copy.deepcopy(yaml.safe_load(text)))
    data["timeScale"] = time_scale
    data["deploymentConfiguration"] = {**data["deploymentConfiguration"], **DEPLOYMENT}
    data["controller"] = {**data["controller"], "backend": "process", "stateDir": state_dir}
    return load_settings(data)


@dataclass
class Seen:
    """What the clients saw: per long-lived connection, the revisions that
    answered it (in order) and whether it was closed under it; per new
    connection, production's green share when it opened and who answered."""

    kept: list[list[str]] = field(default_factory=lambda: [[] for _ in range(KEPT)])
    kept_closed: list[bool] = field(default_factory=lambda: [False] * KEPT)
    new: list[tuple[float, str]] = field(default_factory=list)
    refused: int = 0
    deployment: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str | None:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    return answer.decode().split()[1] if answer else None


async def run(settings: Settings, on_line: Any = None) -> Seen:
    """Start the stack, open the long-lived connections, deploy, keep
    talking until the deployment ends; return what was seen."""
    from shiftlab.stack import Stack

    seen = Seen()
    port = settings.load_balancer.Listeners[0].Port
    stack = Stack(settings)
    await stack.start()
    say = on_line or (lambda _line: None)
    try:
        ctl = stack.controller
        assert ctl is not None
        kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(KEPT)]
        for i, (r, w) in enumerate(kept):
            rev = await _ask(r, w, "hello")
            seen.kept[i].append(rev or "?")
        say(f"{KEPT} long-lived connections open, answered by revision {', '.join(k[0] for k in seen.kept)}")
        d = ctl.create_deployment({"env": {}})
        say(f"deployment {d.id[:12]}: CANARY 25 % then 100 %, revision {d.source_revision} -> {d.target_revision}")
        done = asyncio.Event()

        async def talk(i: int) -> None:
            r, w = kept[i]
            while not done.is_set() and not seen.kept_closed[i]:
                try:
                    rev = await _ask(r, w, f"line {len(seen.kept[i])}")
                except (OSError, TimeoutError):
                    rev = None
                if rev is None:
                    seen.kept_closed[i] = True
                    break
                seen.kept[i].append(rev)
                await asyncio.sleep(TALK_EVERY)
            w.close()

        async def newcomers() -> None:
            while not done.is_set():
                share = ctl.current.production_percent if ctl.current is not None else 0.0
                try:
                    r, w = await asyncio.open_connection("127.0.0.1", port)
                    rev = await _ask(r, w, "new")
                    w.close()
                except (OSError, TimeoutError):
                    rev = None
                if rev is None:
                    seen.refused += 1
                else:
                    seen.new.append((share, rev))
                await asyncio.sleep(NEW_EVERY)

        talkers = [asyncio.create_task(talk(i)) for i in range(KEPT)]
        arrivals = asyncio.create_task(newcomers())
        last_seq = 0
        while True:
            assert stack.records is not None
            for e in stack.records.events(d.id):
                if e["seq"] > last_seq:
                    last_seq = e["seq"]
                    say(e["message"])
            current = ctl.current
            if current is not None and current.final:
                break
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*talkers, arrivals)
        seen.deployment = ctl.current
        assert stack.records is not None
        seen.events = stack.records.events(d.id)
    finally:
        await stack.stop()
    return seen


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    seen: str


def checks(seen: Seen) -> list[Check]:
    d = seen.deployment
    out = [Check("the deployment ends SUCCESSFUL", d is not None and d.status == "SUCCESSFUL",
                 d.status if d is not None else "no deployment")]
    answers = [rev for k in seen.kept for rev in k]
    out.append(Check("every long-lived connection is answered by blue (revision 1) only, for as long as it is open",
                     bool(answers) and set(answers) == {"1"},
                     f"{len(answers)} answers: {sorted(set(answers))}; closed when blue stopped: "
                     f"{sum(seen.kept_closed)} of {KEPT}"))
    canary = [rev for share, rev in seen.new if 0 < share < 100]
    out.append(Check("during the canary, new connections reach both revisions",
                     {"1", "2"} <= set(canary), f"{len(canary)} new connections: "
                     f"{canary.count('1')} blue, {canary.count('2')} green"))
    after = [rev for share, rev in seen.new if share == 100]
    out.append(Check("once production is on green, every new connection reaches green (revision 2)",
                     bool(after) and set(after) == {"2"}, f"{len(after)} new connections: {sorted(set(after))}"))
    delayed = [e["data"]["stage"] for e in seen.events if e["type"] == eventlog.STAGE_DELAYED.name]
    out.append(Check("ECS's NLB delay after each traffic shift (test, canary, final)",
                     delayed == ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"],
                     ", ".join(delayed) or "none"))
    return out
