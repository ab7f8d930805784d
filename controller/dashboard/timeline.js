// The ECS lifecycle of one deployment, drawn from DescribeServiceDeployments'
// shiftlab section: each stage once on a rail (steps and hook runs under
// it), the rollback route on a second rail, and the marks the chart shows.

export const STAGES = [
  "RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT",
  "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT",
  "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP",
];
const ROLLING_STAGES = ["RECONCILE_SERVICE", "SCALE_UP", "BAKE_TIME", "CLEAN_UP"];
export const FINAL = ["SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"];
const HOOK_MARK = { SUCCEEDED: "\u2713", FAILED: "\u2717", IN_PROGRESS: "\u2026" };

export function ts(iso) {
  return iso ? Date.parse(iso) / 1000 : null;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 0.1) return "<0.1 s";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} m ${Math.round(seconds - m * 60)} s`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

// Text whose underscores are line-break opportunities (<wbr>), so long
// stage names wrap between words and copy without extra characters.
export function breakable(text) {
  return text.split("_").flatMap((part, i) => (i ? ["_", document.createElement("wbr"), part] : [part]));
}

function isFinal(d) {
  return FINAL.includes(d.status);
}

export function renderTimeline(container, d, now) {
  const sl = d.shiftlab;
  const order = sl.strategy === "ROLLING" ? ROLLING_STAGES : STAGES;
  const rollbackAt = ts(d.rollback?.startedAt);
  const forward = sl.stages.filter((s) => !s.rollback);
  const back = sl.stages.filter((s) => s.rollback);
  const hooks = sl.hookRuns.map((r) => ({ ...r, t: ts(r.startedAt) }));
  const columns = `repeat(${order.length}, minmax(0, 1fr))`;
  const interrupted = rollbackAt !== null ? forward.filter((s) => ts(s.startedAt) <= rollbackAt).at(-1) : null;

  // A stage not visited before the furthest one reached was skipped (RECONCILE_SERVICE with one revision).
  const reached = Math.max(-1, ...forward.map((s) => order.indexOf(s.stage)));
  const track = el("div", { class: "track", style: `grid-template-columns: ${columns}` });
  for (const [i, stage] of order.entries()) {
    const visits = forward.filter((s) => s.stage === stage);
    const box = stageBox(stage, visits, d, now);
    if (!visits.length && (isFinal(d) || rollbackAt !== null || i < reached)) box.classList.add("skipped");
    const cut = interrupted && visits.includes(interrupted);
    if (cut) {
      box.classList.remove("done", "current");
      box.classList.add("failed");
    }
    if (stage === "PRODUCTION_TRAFFIC_SHIFT") {
      const chips = stepChips(d, visits);
      if (cut && chips.length >= visits.length) chips[visits.length - 1].dataset.status = "FAILED";
      box.append(...chips);
    }
    for (const r of hooks.filter((h) => h.lifecycleStage === stage && (rollbackAt === null || h.t < rollbackAt))) {
      box.append(hookChip(r));
    }
    track.append(box);
  }
  const parts = [track];
  if (back.length) {
    const rail = el("div", { class: "track rollback-track", style: `grid-template-columns: ${columns}` });
    for (const stage of order) {
      const visits = back.filter((s) => s.stage === stage);
      if (!visits.length) {
        rail.append(el("div"));
        continue;
      }
      const box = stageBox(stage, visits, d, now);
      for (const r of hooks.filter((h) => h.lifecycleStage === stage && h.t >= rollbackAt)) box.append(hookChip(r));
      rail.append(box);
    }
    parts.push(el("div", { class: "track-label" }, el("b", {}, "rollback"), d.rollback ? ` \u00b7 ${d.rollback.reason}` : ""), rail);
  }
  container.replaceChildren(...parts);
}

function stageBox(stage, visits, d, now) {
  const box = el("div", { class: "stage", dataset: { stage } }, el("span", { class: "dot" }),
    el("div", { class: "name" }, breakable(stage)));
  if (!visits.length) return box;
  const running = visits.some((v) => !v.endedAt) && !isFinal(d);
  box.classList.add(running ? "current" : "done");
  const spent = visits.reduce((sum, v) => sum + ((ts(v.endedAt) ?? now) - ts(v.startedAt)), 0);
  box.append(el("div", { class: "time" }, fmtDuration(Math.max(0, spent)) + (visits.length > 1 ? ` \u00d7${visits.length}` : "")));
  return box;
}

function stepChips(d, visits) {
  const sl = d.shiftlab;
  if (!sl.steps || !sl.steps.length) return [];
  return sl.steps.map((percent, i) => {
    let status = "";
    if (i < visits.length - 1 || (i === visits.length - 1 && visits[i].endedAt)) status = "SUCCEEDED";
    else if (i === visits.length - 1 && !isFinal(d)) status = "IN_PROGRESS";
    return el("div", { class: "hook step", dataset: { status }, title: `traffic step ${i + 1} of ${sl.steps.length}` },
      `step ${percent}%`);
  });
}

function hookChip(r) {
  const took = r.durationSeconds !== null ? ` ${fmtDuration(r.durationSeconds)}` : "";
  const waiting = r.status === "IN_PROGRESS" && r.kind === "PAUSE" ? " awaiting approval" : "";
  const title = `${r.kind} hook ${r.hookIndex} at ${r.lifecycleStage}: ${r.status}` +
    `\nexecution ${r.executionId}, ${r.attempts} call(s)` + (r.error ? `\n${r.error}` : "");
  return el("div", { class: "hook", dataset: { status: r.status, kind: r.kind }, title },
    `${r.kind} ${HOOK_MARK[r.status] || ""}${waiting || took}`);
}

// Every stage visit in order, with its step and hook runs: the drawer's view.
export function renderStageTable(container, d, now) {
  const sl = d.shiftlab;
  let step = 0;
  const rows = sl.stages.map((s) => {
    const from = ts(s.startedAt);
    const to = ts(s.endedAt);
    const notes = [];
    if (s.stage === "PRODUCTION_TRAFFIC_SHIFT" && !s.rollback && sl.steps?.[step] !== undefined) {
      notes.push(el("span", { class: "hook step", dataset: { status: "" } }, `step ${sl.steps[step]}%`));
      step += 1;
    }
    for (const r of sl.hookRuns) {
      const t = ts(r.startedAt);
      if (r.lifecycleStage === s.stage && t >= from && (to === null || t <= to)) notes.push(hookChip(r));
    }
    return el("tr", { class: s.rollback ? "rollback" : "" },
      el("td", {}, s.stage + (s.rollback ? " (rollback)" : "")),
      el("td", { class: "mono" }, new Date(from * 1000).toLocaleTimeString([], { hour12: false })),
      el("td", {}, fmtDuration((to ?? (isFinal(d) ? from : now)) - from)),
      el("td", {}, el("div", { class: "notes" }, notes)));
  });
  container.replaceChildren(el("table", { class: "stage-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "stage"), el("th", {}, "started"), el("th", {}, "took"), el("th", {}, "steps and hooks"))),
    el("tbody", {}, rows)));
}

const MARK_LABEL = {
  SCALE_UP: "scale up", TEST_TRAFFIC_SHIFT: "test traffic", BAKE_TIME: "bake", CLEAN_UP: "clean up",
};

// The stage changes worth a vertical mark on the chart.
export function stageMarkers(d) {
  const sl = d.shiftlab;
  const marks = [];
  let step = 0;
  let rollbackMarked = false;
  for (const s of sl.stages) {
    const t = ts(s.startedAt);
    if (s.rollback) {
      if (!rollbackMarked) marks.push({ t, label: "rollback", rollback: true });
      rollbackMarked = true;
    } else if (s.stage === "PRODUCTION_TRAFFIC_SHIFT") {
      const percent = sl.steps?.[step];
      step += 1;
      marks.push({ t, label: percent !== undefined ? `\u2192 ${percent}%` : "traffic" });
    } else if (MARK_LABEL[s.stage]) {
      marks.push({ t, label: MARK_LABEL[s.stage] });
    }
  }
  if (d.finishedAt) marks.push({ t: ts(d.finishedAt), label: d.status.toLowerCase().replaceAll("_", " "),
    rollback: d.status.startsWith("ROLLBACK") });
  return marks;
}
