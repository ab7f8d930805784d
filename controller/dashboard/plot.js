// The live chart, drawn by hand on a <canvas>: four strips over one time
// axis (production weight, request rate, 5xx rate, p99 latency), one colour
// per target group, with the deployment's stage changes as vertical marks.

// The time axis shows the last WINDOW_SECONDS; until the page has seen that
// much, it spans what it has (at least MIN_WINDOW_SECONDS), so lines fill it.
export const WINDOW_SECONDS = 120;
export const MIN_WINDOW_SECONDS = 10;

// A bounded, time-ordered list of metric samples:
// {t, weights: {group: percent}, groups: {group: {rps, errorsPerSecond, p99}}, alarm: bool}
export class Samples {
  constructor(max = 4000) {
    this.items = [];
    this.max = max;
  }

  push(sample) {
    const last = this.items[this.items.length - 1];
    if (last && sample.t <= last.t) return;
    this.items.push(sample);
    if (this.items.length > this.max) this.items.splice(0, this.items.length - this.max);
  }

  since(t0) {
    let i = this.items.length;
    while (i > 0 && this.items[i - 1].t >= t0) i -= 1;
    // One sample before the window, so lines enter from the left edge.
    return this.items.slice(Math.max(0, i - 1));
  }
}

const PANELS = [
  { title: "production weight %", value: (s, g) => s.weights?.[g], stacked: true, max: 100, fmt: (v) => `${Math.round(v)}%` },
  { title: "requests / s", value: (s, g) => s.groups?.[g]?.rps, floor: 1, fmt: rate },
  { title: "5xx / s", value: (s, g) => s.groups?.[g]?.errorsPerSecond, floor: 1, fmt: rate, alarmShade: true },
  { title: "p99 latency (ms)", value: (s, g) => scaleMs(s.groups?.[g]?.p99), floor: 10, fmt: (v) => `${Math.round(v)}` },
];

function tickLabel(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function rate(v) {
  return v === 0 || v >= 10 ? `${Math.round(v)}` : v.toFixed(1);
}

function scaleMs(seconds) {
  return seconds === null || seconds === undefined ? seconds : seconds * 1000;
}

export function niceMax(value, floor = 1) {
  const v = Math.max(value, floor);
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp + 1e-9) return m * exp;
  return 10 * exp;
}

function present(v) {
  return v !== null && v !== undefined && Number.isFinite(v);
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// view: {samples: Samples, groups: [name], colors: {name: "#rrggbb"}, now: seconds,
//        markers: [{t, label, rollback}], theme: {text, muted, faint, line, band, red, amber, font}}
// Returns how many samples fell in the window.
export function drawChart(canvas, view) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const th = view.theme;
  const m = { left: 48, right: 58, top: 20, bottom: 20 };
  const plotW = Math.max(10, w - m.left - m.right);
  const t1 = view.now;
  const oldest = view.samples.items[0]?.t ?? t1;
  const span = Math.min(WINDOW_SECONDS, Math.max(MIN_WINDOW_SECONDS, t1 - oldest));
  const t0 = t1 - span;
  const shown = view.samples.since(t0);
  const x = (t) => m.left + ((t - t0) / span) * plotW;
  const gap = 10;
  const ph = (h - m.top - m.bottom - gap * (PANELS.length - 1)) / PANELS.length;

  PANELS.forEach((panel, i) => {
    const top = m.top + i * (ph + gap);
    const bottom = top + ph;
    let max = panel.max;
    if (max === undefined) {
      let seen = 0;
      for (const s of shown) for (const g of view.groups) {
        const v = panel.value(s, g);
        if (present(v)) seen = Math.max(seen, v);
      }
      max = niceMax(seen, panel.floor);
    }
    const y = (v) => bottom - (Math.min(v, max) / max) * ph;

    ctx.fillStyle = th.band;
    ctx.fillRect(m.left, top, plotW, ph);
    if (panel.alarmShade) shadeAlarms(ctx, shown, x, top, ph, m.left, m.left + plotW, th);

    ctx.font = `11px ${th.font}`;
    ctx.textBaseline = "middle";
    ctx.strokeStyle = th.line;
    ctx.lineWidth = 1;
    for (const frac of [0, 0.5, 1]) {
      const yy = Math.round(bottom - frac * ph) + 0.5;
      ctx.beginPath();
      ctx.moveTo(m.left, yy);
      ctx.lineTo(m.left + plotW, yy);
      ctx.stroke();
      ctx.fillStyle = th.faint;
      ctx.textAlign = "right";
      ctx.fillText(panel.stacked ? panel.fmt(frac * max) : tickLabel(frac * max), m.left - 6, yy);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(m.left, top, plotW, ph);
    ctx.clip();
    if (panel.stacked) drawStacked(ctx, shown, view.groups, view.colors, panel, x, y);
    else for (const g of view.groups) drawLine(ctx, shown, (s) => panel.value(s, g), view.colors[g], x, y, bottom);
    ctx.restore();

    ctx.font = `600 11px ${th.font}`;
    ctx.fillStyle = withAlpha(th.band, 0.8);
    ctx.fillRect(m.left + 4, top + 3, ctx.measureText(panel.title).width + 8, 15);
    ctx.fillStyle = th.muted;
    ctx.textAlign = "left";
    ctx.fillText(panel.title, m.left + 8, top + 10.5);
    lastValues(ctx, shown, view.groups, view.colors, panel, y, m.left + plotW + 6, top, bottom, th);
  });

  drawMarkers(ctx, view.markers || [], x, t0, t1, m, h, th);

  ctx.fillStyle = th.faint;
  ctx.font = `11px ${th.font}`;
  ctx.textBaseline = "alphabetic";
  const tick = [5, 10, 15, 30].find((t) => span / t <= 6) || 30;
  ctx.textAlign = "right";
  ctx.fillText("now", x(t1), h - 5);
  ctx.textAlign = "center";
  for (let ago = tick; ago <= span - tick / 3; ago += tick) ctx.fillText(`-${ago} s`, x(t1 - ago), h - 5);
  return shown.filter((s) => s.t >= t0).length;
}

function drawLine(ctx, samples, value, color, x, y, bottom) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      ctx.beginPath();
      run.forEach(([px, py], k) => (k ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
      ctx.stroke();
      ctx.lineTo(run[run.length - 1][0], bottom);
      ctx.lineTo(run[0][0], bottom);
      ctx.closePath();
      ctx.fillStyle = withAlpha(color, 0.1);
      ctx.fill();
    }
    run = [];
  };
  for (const s of samples) {
    const v = value(s);
    if (present(v)) run.push([x(s.t), y(v)]);
    else flush();
  }
  flush();
}

function drawStacked(ctx, samples, groups, colors, panel, x, y) {
  const rows = samples.filter((s) => groups.some((g) => present(panel.value(s, g))));
  if (rows.length < 2) return;
  let below = rows.map(() => 0);
  for (const g of groups) {
    const above = rows.map((s, k) => below[k] + (panel.value(s, g) || 0));
    ctx.beginPath();
    rows.forEach((s, k) => (k ? ctx.lineTo(x(s.t), y(above[k])) : ctx.moveTo(x(s.t), y(above[k]))));
    for (let k = rows.length - 1; k >= 0; k -= 1) ctx.lineTo(x(rows[k].t), y(below[k]));
    ctx.closePath();
    ctx.fillStyle = withAlpha(colors[g], 0.55);
    ctx.fill();
    below = above;
  }
}

function shadeAlarms(ctx, samples, x, top, ph, left, right, th) {
  ctx.fillStyle = withAlpha(th.red, 0.16);
  for (let k = 0; k < samples.length - 1; k += 1) {
    if (!samples[k].alarm) continue;
    const a = Math.max(left, x(samples[k].t));
    const b = Math.min(right, x(samples[k + 1].t));
    if (b > a) ctx.fillRect(a, top, b - a + 0.5, ph);
  }
}

function lastValues(ctx, samples, groups, colors, panel, y, left, top, bottom, th) {
  const labels = [];
  let below = 0;
  for (const g of groups) {
    let v;
    for (let k = samples.length - 1; k >= 0 && !present(v); k -= 1) v = panel.value(samples[k], g);
    if (!present(v)) continue;
    // A stacked strip labels each band at its middle.
    const at = panel.stacked ? below + v / 2 : v;
    below += panel.stacked ? v : 0;
    if (panel.stacked && v < 0.5) continue;
    labels.push({ y: y(at), text: panel.fmt(v), color: colors[g] });
  }
  // Kept inside the strip and 13 px apart, bottom up (most values sit near zero).
  labels.sort((a, b) => b.y - a.y);
  for (let k = 0; k < labels.length; k += 1) {
    const floor = k ? labels[k - 1].y - 13 : bottom - 5;
    labels[k].y = Math.max(Math.min(labels[k].y, floor), top + 6);
  }
  ctx.font = `700 11.5px ${th.font}`;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (const l of labels) {
    ctx.fillStyle = l.color;
    ctx.fillText(l.text, left, l.y);
  }
}

// Marks a few pixels apart share one label ("-> 100% · bake"); then, newest
// first, a label that would cover a newer one is left out (its line stays).
function drawMarkers(ctx, markers, x, t0, t1, m, h, th) {
  const visible = markers.filter((mk) => mk.t >= t0 && mk.t <= t1).sort((a, b) => a.t - b.t);
  const clusters = [];
  for (const mk of visible) {
    const px = Math.round(x(mk.t)) + 0.5;
    const last = clusters[clusters.length - 1];
    if (last && px - last.px < 24) {
      if (mk.label) last.labels.push(mk.label);
      last.rollback ||= mk.rollback;
    } else {
      clusters.push({ px, labels: mk.label ? [mk.label] : [], rollback: mk.rollback });
    }
    ctx.strokeStyle = mk.rollback ? withAlpha(th.amber, 0.7) : withAlpha(th.muted, 0.45);
    ctx.setLineDash([3, 4]);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(px, m.top - 4);
    ctx.lineTo(px, h - m.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
  }
  ctx.font = `10.5px ${th.font}`;
  ctx.textBaseline = "alphabetic";
  ctx.textAlign = "left";
  let nextLeft = Infinity;
  for (const c of clusters.reverse()) {
    if (!c.labels.length) continue;
    const text = c.labels.join(" \u00b7 ");
    const width = ctx.measureText(text).width;
    const left = Math.min(c.px + 3, x(t1) - width);
    if (left + width + 6 > nextLeft) continue;
    ctx.fillStyle = c.rollback ? th.amber : th.muted;
    ctx.fillText(text, left, m.top - 7);
    nextLeft = left;
  }
}
