"""One run as a picture a CI job can attach: a self-contained HTML page (no
script, no external resource) with an inline SVG per configuration, three
panels over the same minutes: green's share of production traffic, the
share of requests that failed (green's and all), and each alarm's state
as a band (OK, ALARM, INSUFFICIENT_DATA), with the fault's start, the
rollback's start and traffic back on blue marked."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from shiftlab.simulate.engine import RunResult, Sample
from shiftlab.simulate.report import Summary, table

WIDTH, LEFT, RIGHT = 900, 70, 20
PANEL, GAP, BAND = 140, 40, 18
STATE_COLOURS = {"OK": "#3a9d5d", "ALARM": "#d64541", "INSUFFICIENT_DATA": "#b0b0b0"}


def _x(t: float, t0: float, t1: float) -> float:
    span = max(t1 - t0, 1e-9)
    return round(LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT), 2)


def _polyline(points: list[tuple[float, float]], colour: str, cls: str, step: bool = False) -> str:
    if not points:
        return ""
    out: list[tuple[float, float]] = []
    for x, y in points:
        if step and out:
            out.append((x, out[-1][1]))
        out.append((x, y))
    coords = " ".join(f"{x},{y}" for x, y in out)
    return f'<polyline class="{cls}" fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def svg(run: RunResult) -> str:
    samples = run.samples
    t0 = min([0.0, *(s.t for s in samples[:1])])
    t1 = max([run.duration or 0.0, *(s.t for s in samples[-1:]), 1.0])
    alarms = sorted({name for s in samples for name in s.alarms})
    top_w, top_e = 20, 20 + PANEL + GAP
    top_a = top_e + PANEL + GAP
    height = top_a + max(len(alarms), 1) * (BAND + 6) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(run.label)}">']
    parts.append('<style>text{font:12px sans-serif;fill:#333}.axis{stroke:#999}.mark{stroke-dasharray:4 3}</style>')
    # Panel frames and axes.
    first = "green active (headless: no traffic; its activation flag)" if run.headless \
        else "green share of production traffic"
    for top, title in ((top_w, first), (top_e, "failed requests" + (" (none: headless)" if run.headless else ""))):
        parts.append(f'<text x="{LEFT}" y="{top - 6}">{escape(title)}</text>')
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{top + PANEL}" x2="{WIDTH - RIGHT}" y2="{top + PANEL}"/>')
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{top + PANEL}"/>')
    err_max = max([0.01, *((s.green_error_rate or 0.0) for s in samples), *(s.error_rate for s in samples)])
    parts.append(f'<text x="{LEFT - 8}" y="{top_w + 4}" text-anchor="end">100%</text>')
    parts.append(f'<text x="{LEFT - 8}" y="{top_w + PANEL}" text-anchor="end">0%</text>')
    parts.append(f'<text x="{LEFT - 8}" y="{top_e + 4}" text-anchor="end">{100 * err_max:.3g}%</text>')
    parts.append(f'<text x="{LEFT - 8}" y="{top_e + PANEL}" text-anchor="end">0%</text>')
    # Weights (a step line), error rates.
    weights = [(_x(s.t, t0, t1), round(top_w + PANEL * (1 - s.green_percent / 100), 2)) for s in samples]
    parts.append(_polyline(weights, "#2b6cb0", "weights", step=True))
    green = [(_x(s.t, t0, t1), round(top_e + PANEL * (1 - (s.green_error_rate or 0.0) / err_max), 2))
             for s in samples]
    every = [(_x(s.t, t0, t1), round(top_e + PANEL * (1 - s.error_rate / err_max), 2)) for s in samples]
    parts.append(_polyline(green, "#d64541", "green-errors"))
    parts.append(_polyline(every, "#555555", "all-errors"))
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{top_e - 6}" text-anchor="end">'
                 f'<tspan fill="#d64541">green</tspan> / <tspan fill="#555">all</tspan></text>')
    # Alarm bands.
    parts.append(f'<text x="{LEFT}" y="{top_a - 6}">alarm states</text>')
    for i, name in enumerate(alarms):
        y = top_a + i * (BAND + 6)
        parts.append(f'<text x="{LEFT - 8}" y="{y + 13}" text-anchor="end">alarm {i + 1}</text>')
        for start, end, state in _spans(samples, name):
            x0, x1 = _x(start, t0, t1), _x(end, t0, t1)
            parts.append(f'<rect class="alarm" data-alarm="{escape(name)}" data-state="{state}" data-from="{start:g}" '
                         f'data-to="{end:g}" x="{x0}" y="{y}" width="{max(round(x1 - x0, 2), 0.5)}" height="{BAND}" '
                         f'fill="{STATE_COLOURS[state]}"><title>{escape(name)}: {state} from {start:g} min</title>'
                         f'</rect>')
        # The name over its band, where every state's colour keeps it readable.
        parts.append(f'<text class="alarm-name" x="{LEFT + 4}" y="{y + 13}" fill="#fff" '
                     f'style="fill:#fff;paint-order:stroke;stroke:#333;stroke-width:2px">{escape(name)}</text>')
    # The time axis and the marks.
    bottom = height - 20
    step = _tick_step(t1 - t0)
    t = 0.0
    while t <= t1:
        x = _x(t, t0, t1)
        parts.append(f'<text x="{x}" y="{bottom}" text-anchor="middle">{t:g}</text>')
        t += step
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{bottom + 14}" text-anchor="end">minutes (AWS time)</text>')
    marks = ((run.fault_at, "fault", "#d64541"), (run.detected_at, "rollback", "#b7791f"),
             (run.back_on_blue_at, "on blue", "#2b6cb0"))
    for row, (at, what, colour) in enumerate(marks):
        if at is None:
            continue
        x = _x(at, t0, t1)
        parts.append(f'<line class="mark" data-mark="{what}" x1="{x}" y1="{top_w}" x2="{x}" y2="{bottom - 14}" '
                     f'stroke="{colour}"/>')
        # One row per mark: a rollback and traffic back on blue often share a minute.
        anchor = "end" if x > WIDTH - 120 else "start"
        dx = -3 if anchor == "end" else 3
        parts.append(f'<text x="{x + dx}" y="{top_w + 12 + 14 * row}" text-anchor="{anchor}" '
                     f'style="fill:{colour}">{what} {at:.1f} min</text>')
    parts.append("</svg>")
    return "\n".join(p for p in parts if p)


def _spans(samples: Sequence[Sample], alarm: str) -> list[tuple[float, float, str]]:
    """An alarm's states as (from, to, state) in minutes, one span per state held."""
    out: list[tuple[float, float, str]] = []
    for i, s in enumerate(samples):
        state = s.alarms.get(alarm, "INSUFFICIENT_DATA")
        end = samples[i + 1].t if i + 1 < len(samples) else s.t
        if out and out[-1][2] == state:
            out[-1] = (out[-1][0], end, state)
        else:
            out.append((s.t, end, state))
    return out


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 240):
        if span / step <= 12:
            return float(step)
    return 480.0


def html(summaries: Sequence[Summary], examples: Sequence[RunResult], title: str = "shiftlab simulate") -> str:
    """The page: the table of every configuration, then one run of each as a chart."""
    body = [f"<h1>{escape(title)}</h1>", f"<pre>{escape(table(summaries))}</pre>"]
    for run in examples:
        body.append(f'<section><h2>{escape(run.label)} (seed {run.seed})</h2>'
                    f'<p>{escape(run.status)}: {escape(run.reason or "")}</p>{svg(run)}</section>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")
