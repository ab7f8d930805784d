// The dashboard: state fed by the SSE stream (deployment transitions, a
// metrics frame per scrape, log events) and by a few reads the stream does
// not carry (task sets, target health, weights in force, history).

import { api, ApiError, Stream, setToken, token } from "./api.js";
import { Samples, drawChart } from "./plot.js";
import { FINAL, breakable, el, fmtDuration, renderStageTable, renderTimeline, stageMarkers, ts } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

const THEME = {
  text: css("--text"), muted: css("--muted"), faint: css("--faint"), line: css("--line"), band: "#111820",
  red: css("--red"), amber: css("--amber"), font: css("--sans"),
};
const NAMED_COLOURS = { blue: css("--blue"), green: css("--green") };
const PALETTE = [css("--blue"), css("--green"), css("--cyan"), css("--amber"), css("--violet")];
const MAX_EVENTS = 250;
// The weights are read again this often besides after each message that may
// follow a weight change: a safety net for a change no message announces.
const REFRESH_MS = 2000;
const REREAD_DELAY_MS = 100;
// Log events after which the weights (or tasks) in force may have changed:
// "weights" comes once a weight change is verified, "recovery" when the
// controller put back weights or targets the load balancer had lost.
const REREAD_KINDS = ["weights", "recovery", "task", "service"];

const state = {
  service: null,
  deployment: null,     // the deployment on show: the one in progress, else the latest
  deployments: [],
  traffic: null,        // GET /api/traffic: weights in force and target health
  trafficError: null,   // why the last read of the load balancer failed (the bars are then stale)
  trafficAt: null,      // when the weights shown were read (browser clock, ms)
  reads: { asked: 0, shown: 0 },  // numbered reads: an answer older than the one shown is dropped
  metrics: null,        // the latest metrics frame
  events: new Map(),    // seq -> event
  newestSeq: 0,
  groups: [],           // target groups in first-seen order (the chart's stacking order)
  colours: {},
  samples: new Samples(),
  skew: 0,              // browser clock minus controller clock, seconds
  connection: "connecting",
};

// -- small helpers ---------------------------------------------------------

function clock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toLocaleTimeString([], { hour12: false });
}

function now() {
  return Date.now() / 1000 - state.skew;
}

function notice(text, kind = "error") {
  const b = $("banner");
  b.textContent = text;
  b.dataset.kind = kind;
  b.hidden = false;
  clearTimeout(notice.timer);
  if (kind !== "sticky") notice.timer = setTimeout(() => { b.hidden = true; }, 8000);
}

function colourOf(group) {
  if (!state.colours[group]) {
    const named = Object.keys(NAMED_COLOURS).find((k) => group.toLowerCase().includes(k));
    state.colours[group] = named ? NAMED_COLOURS[named] : PALETTE[Object.keys(state.colours).length % PALETTE.length];
  }
  if (!state.groups.includes(group)) state.groups.push(group);
  return state.colours[group];
}

function isFinal(d) {
  return FINAL.includes(d.status);
}

function productionPercent() {
  return state.traffic?.rules.find((r) => r.kind === "production")?.percent || null;
}

// -- reads -------------------------------------------------------------------

// A 401 stops the stream (it would only be refused again) until a token is given.
function handleReadError(err) {
  if (err instanceof ApiError && err.status === 401) {
    stream.stop();
    setConnection("locked", "token needed");
    notice(token() ? "The controller refused this token: paste the right one (top right)."
      : "This controller needs a bearer token: paste it with the token button (top right).", "sticky");
    openTokenBox(true);
    return true;
  }
  return false;
}

// Two reads can be under way at once (a message's and the timer's) and the
// older can answer last: it must not put back weights a newer one replaced.
async function refresh() {
  const n = ++state.reads.asked;
  const [service, traffic] = await Promise.allSettled([api("GET", "/api/service"), api("GET", "/api/traffic")]);
  const failed = [service, traffic].find((r) => r.status === "rejected");
  if (failed && handleReadError(failed.reason)) return false;
  if (n < state.reads.shown) return !failed;
  state.reads.shown = n;
  if (service.status === "fulfilled") setService(service.value);
  if (traffic.status === "fulfilled") {
    state.traffic = traffic.value;
    state.trafficError = null;
    state.trafficAt = Date.now();
  } else {
    state.trafficError = traffic.reason.message;
  }
  renderWeights();
  renderTaskSets();
  return !failed;
}

async function refreshHistory() {
  try {
    const data = await api("GET", "/api/deployments");
    const shown = state.deployment;
    state.deployments = data.serviceDeployments.map((x) =>
      (shown && shown.shiftlab.id === x.shiftlab.id && shown.shiftlab.version > x.shiftlab.version ? shown : x));
    // The newest one, unless it is what is shown already or older: this also
    // catches up with a transition the stream missed while it was down.
    if (state.deployments.length) setDeployment(state.deployments[0]);
    for (const x of state.deployments) renderDrawer(x);
    renderHistory();
  } catch (err) {
    handleReadError(err);
  }
}

// Everything again: at start and after the stream was down.
async function reload() {
  await Promise.all([refresh(), refreshHistory()]);
  if (state.connection === "locked") return;
  // The log starts with the shown deployment's events (without one, the
  // controller's latest ones).
  const d = state.deployment;
  try {
    const data = await api("GET", d ? `/api/deployments/${d.shiftlab.id}` : `/api/events?tail=${MAX_EVENTS}`);
    addEvents(data.events, false);
  } catch (err) {
    handleReadError(err);
  }
}

// A read that starts after the message that asked for it. Messages that come
// while one waits to start ride on it; one that comes after it started gets
// the next. (Pushing the read back with every message, as a debounce does,
// would put it off for as long as messages keep coming.)
let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, REREAD_DELAY_MS);
}

let historyTimer = null;
function refreshHistorySoon() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(refreshHistory, 400);
}

// -- the stream ------------------------------------------------------------------

function onMessage(msg) {
  if (msg.type === "service") {
    setService(msg.service);
  } else if (msg.type === "deployment") {
    setDeployment(msg.deployment);
    refreshSoon();
    refreshHistorySoon();
  } else if (msg.type === "metrics") {
    onMetrics(msg);
  } else if (msg.type === "activation") {
    if (state.service) setService({ ...state.service, activation: msg.revisions });
  } else if (msg.type === "event") {
    addEvents([msg.event], true);
    addDrawerEvent(msg.event);
    if (REREAD_KINDS.includes(msg.event.kind)) refreshSoon();
  }
}

function setConnection(s, text = s) {
  state.connection = s;
  const badge = $("conn");
  badge.dataset.state = s;
  badge.textContent = text;
}

const stream = new Stream({
  onMessage,
  onState(s) {
    setConnection(s);
    if (s === "live") {
      reload();  // the first time too: the stream itself carries no history
    } else {
      refresh();  // a 401 stops the stream and asks for a token; a dead controller just fails
    }
  },
});

// -- state changes --------------------------------------------------------------------

function setService(service) {
  state.service = service;
  for (const set of service.taskSets) colourOf(set.targetGroup);
  const line = $("service-line");
  line.replaceChildren(
    el("b", {}, service.serviceName), ` \u00b7 revision ${service.runningRevision} running in `,
    el("b", { style: `color: ${colourOf(service.primaryTargetGroup)}` }, service.primaryTargetGroup),
    ` \u00b7 timeScale ${service.timeScale}` + (service.timeScale > 1 ? ` (an ECS minute lasts ${fmtDuration(60 / service.timeScale)})` : ""),
  );
  if (service.exposure === "headless" && service.activation) {
    // No load balancer: the traffic state is which revisions are active (work the queue).
    const active = Object.keys(service.activation).filter((r) => service.activation[r]);
    line.append(" \u00b7 headless, active: ",
      el("b", { id: "active-revisions" }, active.length ? active.map((r) => `revision ${r}`).join(", ") : "none"));
  }
  if (service.alarms && !state.metrics) renderAlarms(service.alarms);
  renderTaskSets();
  renderWeights();  // the labels name the revision each group runs
}

// Snapshots arrive by two paths (the stream, and the answer to a POST or a
// read) in no set order: one older than what is shown is dropped.
function setDeployment(d) {
  const cur = state.deployment;
  if (cur && cur.shiftlab.id !== d.shiftlab.id && ts(d.createdAt) < ts(cur.createdAt)) return;
  if (cur && cur.shiftlab.id === d.shiftlab.id && d.shiftlab.version < cur.shiftlab.version) return;
  state.deployment = d;
  const i = state.deployments.findIndex((x) => x.shiftlab.id === d.shiftlab.id);
  if (i >= 0) state.deployments[i] = d;
  else state.deployments.unshift(d);
  renderDeployment();
  renderHistory();
  renderDrawer(d);
  if (state.metrics) renderAlarms(state.metrics.alarms);
}

function onMetrics(msg) {
  state.metrics = msg;
  state.skew = Date.now() / 1000 - msg.at;
  for (const g of Object.keys(msg.groups)) colourOf(g);
  state.samples.push({
    t: msg.at, groups: msg.groups, weights: productionPercent(),
    alarm: msg.alarms.some((a) => a.StateValue === "ALARM"),
  });
  renderLegend();
  renderAlarms(msg.alarms);
  drawSoon();
}

function addEvents(events, live) {
  let added = false;
  for (const ev of events) {
    if (state.events.has(ev.seq)) continue;
    state.events.set(ev.seq, ev);
    added = true;
  }
  if (!added) return;
  const keep = [...state.events.keys()].sort((a, b) => b - a).slice(0, MAX_EVENTS);
  const kept = new Set(keep);
  for (const seq of state.events.keys()) if (!kept.has(seq)) state.events.delete(seq);
  renderEvents(live);
}

// -- rendering -------------------------------------------------------------------------

function renderDeployment() {
  const d = state.deployment;
  if (!d) return;
  const sl = d.shiftlab;
  const final = isFinal(d);
  $("dep-title").replaceChildren("Deployment ", el("span", { class: "id" }, sl.id.slice(0, 12)));
  const step = sl.steps.length > 1 && !final ? ` \u00b7 step ${sl.stepIndex + 1} of ${sl.steps.length}` : "";
  $("dep-sub").textContent = `${sl.strategy} \u00b7 revision ${sl.sourceRevision} \u2192 ${sl.targetRevision}` +
    ` \u00b7 ${final ? "ended in" : "stage"} ${d.lifecycleStage || "\u2013"}${step}`;
  const pill = $("status");
  pill.textContent = d.status.replaceAll("_", " ");
  pill.dataset.status = d.status;
  $("approve").disabled = final || !sl.awaitingApproval;
  $("stop-rollback").disabled = final || d.status.startsWith("ROLLBACK") || d.status === "STOP_REQUESTED";
  const approval = $("approval");
  approval.hidden = final || !sl.awaitingApproval;
  if (!approval.hidden) {
    approval.textContent = `\u23f8  ${d.lifecycleStage} is held by a PAUSE hook: approve to go on, or stop & roll back.`;
  }
  const reason = $("dep-reason");
  reason.hidden = !d.statusReason;
  reason.textContent = d.statusReason || "";
  reason.classList.toggle("bad", d.status.startsWith("ROLLBACK") || d.status === "STOPPED");
  renderTimeline($("timeline"), d, now());
  renderBake();
}

function renderBake() {
  const d = state.deployment;
  const row = $("bake-row");
  // A bake, or the delay ECS adds to a traffic shift behind a network load balancer.
  const delay = d && ts(d.shiftlab.delayUntil);
  const until = d && (ts(d.shiftlab.bakeUntil) || delay);
  const from = d && ts(d.shiftlab.stageStartedAt);
  if (!d || !until || !from || isFinal(d)) {
    row.hidden = true;
    return;
  }
  row.hidden = false;
  const total = Math.max(until - from, 1e-6);
  const done = Math.min(Math.max(now() - from, 0), total);
  $("bake-fill").style.width = `${(100 * done) / total}%`;
  const left = Math.max(until - now(), 0);
  const what = delay ? "of the NLB delay" : d.lifecycleStage === "BAKE_TIME" ? "before clean-up" : "at this step";
  $("bake-left").textContent = `${left.toFixed(1)} s left ${what}`;
}

// Which revision a target group runs and its role: the groups called blue
// and green swap roles with every deployment, so a group's name alone does
// not say whether it is the new revision.
function groupInfo(g) {
  const set = state.service?.taskSets.find((t) => t.targetGroup === g);
  if (!set) return null;
  // A set without tasks keeps the revision it last ran: it serves none.
  const serves = set.desiredCount > 0 || set.tasks.length > 0;
  return { revision: serves ? set.revision : null, role: set.role };
}

function renderBar(bar, percent, what) {
  const segs = [];
  for (const g of state.groups) {
    const p = percent?.[g];
    if (p === undefined) continue;
    const info = groupInfo(g);
    const rev = info?.revision ? ` \u00b7 rev ${info.revision}` : "";
    const label = p >= 25 ? `${g}${rev} ${fmtPercent(p)}` : p >= 12 ? `${g} ${fmtPercent(p)}` : p >= 6 ? fmtPercent(p) : "";
    const about = info ? ` (${info.revision ? `revision ${info.revision}` : "no tasks"}, ${info.role})` : "";
    const title = `${g}${about}: ${fmtPercent(p)} of ${what}`;
    segs.push(el("div", { class: "seg", style: `flex-grow: ${p}; flex-basis: 0; background: ${colourOf(g)}`,
      dataset: { group: g, percent: String(p) }, title }, label));
  }
  bar.replaceChildren(...segs);
}

function fmtPercent(p) {
  return `${Math.round(p * 10) / 10}%`;
}

// Every rule as the load balancer has it: test rules that agree share a row,
// one that differs (a header rule and a test listener can) gets its own.
function renderWeights() {
  const rules = state.traffic?.rules || [];
  const prod = rules.find((r) => r.kind === "production");
  const tests = rules.filter((r) => r.kind === "test");
  for (const r of rules) for (const g of Object.keys(r.percent)) colourOf(g);
  const weights = $("weights");
  // Weighted DNS records (route53): clients follow a change only once their answer's TTL ends.
  const dns = prod?.dnsRecords;
  const ttl = dns ? Math.max(0, ...Object.values(dns.ttl)) : null;
  renderBar($("bar-production"), prod?.percent,
    `production traffic (${prod?.rule || "no rule"}${dns ? `, DNS TTL ${ttl} s` : ""})`);
  weights.dataset.production = JSON.stringify(prod?.percent || {});
  weights.dataset.test = JSON.stringify(Object.fromEntries(tests.map((r) => [r.rule, r.percent])));
  const rows = new Map();
  for (const r of tests) {
    const key = JSON.stringify(state.groups.filter((g) => g in r.percent).map((g) => [g, r.percent[g]]));
    if (!rows.has(key)) rows.set(key, { percent: r.percent, rules: [] });
    rows.get(key).rules.push(r.rule);
  }
  $("test-rows").replaceChildren(...[...rows.values()].map(({ percent, rules: ids }) => {
    const bar = el("div", { class: "bar" });
    renderBar(bar, percent, `test traffic (${ids.join(", ")})`);
    return el("div", { class: "weight-row", dataset: { kind: "test", rules: ids.join(" ") } },
      el("span", { class: "label", title: ids.join(", ") }, "test", rows.size > 1 ? el("span", { class: "rule" }, ids.join(", ")) : null),
      bar);
  }));
  // A failed read leaves the last weights read: say so rather than show them as current.
  const note = $("weights-note");
  note.hidden = !state.trafficError;
  if (state.trafficError) {
    weights.dataset.stale = "";
    note.textContent = `Cannot read the load balancer (${state.trafficError}): ` +
      (state.trafficAt ? `these are its weights as read at ${clock(state.trafficAt / 1000)}.` : "weights unknown.");
  } else {
    delete weights.dataset.stale;
  }
}

function renderLegend() {
  const groups = state.metrics?.groups || {};
  const total = (g) => state.service?.taskSets.find((t) => t.targetGroup === g)?.desiredCount;
  $("legend").replaceChildren(...state.groups.filter((g) => groups[g]).map((g) => {
    const m = groups[g];
    const p99 = m.p99 === null || m.p99 === undefined ? "\u2013" : `${Math.round(m.p99 * 1000)} ms`;
    const err = m.errorsPerSecond || 0;
    return el("span", { class: "group" }, el("span", { class: "swatch", style: `background: ${colourOf(g)}` }),
      el("b", {}, g), ` ${(m.rps ?? 0).toFixed(1)} req/s \u00b7 `,
      el("span", { class: err > 0 ? "err" : "" }, `${err.toFixed(1)} 5xx/s`),
      ` \u00b7 p99 ${p99} \u00b7 ${m.healthy}${total(g) !== undefined ? `/${total(g)}` : ""} healthy`);
  }));
}

function renderAlarms(alarms) {
  const list = $("alarms");
  if (!alarms.length) {
    list.replaceChildren(el("li", { class: "empty" }, "no alarms configured"));
    return;
  }
  const dep = state.deployment && !isFinal(state.deployment) ? state.deployment.alarms : null;
  const triggered = state.deployment?.alarms.triggeredAlarmNames || [];
  list.replaceChildren(...alarms.map((a) => {
    const watched = dep && dep.status !== "DISABLED" && dep.alarmNames.includes(a.AlarmName);
    return el("li", { dataset: { alarm: a.AlarmName, state: a.StateValue } },
      el("span", { class: "name", title: a.AlarmName }, a.AlarmName,
        watched ? el("span", { class: "tag" }, "watched by the deployment") : null,
        triggered.includes(a.AlarmName) ? el("span", { class: "tag trig" }, "triggered the rollback") : null),
      el("span", { class: "pill", dataset: { status: a.StateValue } }, a.StateValue.replaceAll("_", " ")),
      a.StateReason ? el("span", { class: "why", title: a.StateReason }, a.StateReason) : null);
  }));
}

function renderTaskSets() {
  const s = state.service;
  if (!s) return;
  const health = state.traffic?.targetHealth || {};
  const sets = [...s.taskSets].sort((a, b) => state.groups.indexOf(a.targetGroup) - state.groups.indexOf(b.targetGroup));
  $("tasksets").replaceChildren(...sets.map((t) => {
    const running = t.tasks.filter((k) => k.lastStatus === "RUNNING").length;
    const tasks = t.tasks.map((k) => {
      const h = health[t.targetGroup]?.[k.address] || (k.lastStatus === "RUNNING" ? "unregistered" : "");
      return el("li", { dataset: { task: k.taskId } },
        el("span", { class: "h", dataset: { health: h }, title: `target health: ${h || "\u2013"}` }),
        el("span", { class: "mono", title: k.taskId }, `${k.taskId.slice(0, 10)}  ${k.address}`),
        el("span", { class: "state" }, `rev ${k.revision} \u00b7 ${k.lastStatus.toLowerCase()}${h ? ` \u00b7 ${h}` : ""}`));
    });
    return el("div", { class: "taskset", dataset: { group: t.targetGroup } },
      el("div", { class: "head" }, el("span", { class: "swatch", style: `background: ${colourOf(t.targetGroup)}` }),
        el("b", {}, t.targetGroup), el("span", { class: "sub" }, t.role),
        el("span", { class: "meta" }, `rev ${t.revision} \u00b7 ${running}/${t.desiredCount} running`)),
      tasks.length ? el("ul", { class: "tasks" }, tasks) : el("div", { class: "empty" }, "no tasks"));
  }));
  renderLegend();
}

// Log lines that read as trouble, by the event's type and fields
// (controller/eventlog.py); the message is only shown. Events written
// before they had types (type null) get no tone.
function eventTone(ev) {
  const d = ev.data || {};
  switch (ev.type) {
    case "alarm.state": return d.state === "ALARM" ? "bad" : "";
    case "alarm.ignored": case "task.failed": case "task.stopped": case "warning.failure_ignored": return "bad";
    case "hook.answered": case "hook.finished": return d.status === "FAILED" ? "bad" : "";
    case "status.changed": case "recovery.restarted": return d.status.startsWith("ROLLBACK") ? "bad" : "";
    default: return "";
  }
}

function renderEvents(live) {
  const list = $("events");
  const seqs = [...state.events.keys()].sort((a, b) => b - a);
  const before = state.newestSeq;
  list.replaceChildren(...seqs.map((seq) => {
    const ev = state.events.get(seq);
    return el("li", { class: live && seq > before ? "fresh" : "",
      dataset: { kind: ev.kind, type: ev.type || "", seq: String(seq), tone: eventTone(ev) },
      title: `${new Date(ev.at * 1000).toISOString()}${ev.deploymentId ? `  deployment ${ev.deploymentId}` : ""}` },
    el("span", { class: "at" }, clock(ev.at)), el("span", { class: "kind" }, ev.kind),
    el("span", { class: "msg" }, breakable(ev.message)));
  }));
  if (!seqs.length) list.replaceChildren(el("li", { class: "empty" }, "no events yet"));
  state.newestSeq = Math.max(before, seqs[0] || 0);
  $("event-count").textContent = seqs.length ? `${seqs.length} shown, newest first` : "";
}

function renderHistory() {
  const body = $("history");
  const open = $("drawer").dataset.id;
  body.replaceChildren(...state.deployments.map((d) => {
    const sl = d.shiftlab;
    const took = ts(d.finishedAt) && ts(d.createdAt) ? fmtDuration(ts(d.finishedAt) - ts(d.createdAt)) : "running";
    return el("tr", { class: open === sl.id ? "selected" : "", dataset: { id: sl.id }, onclick: () => openDrawer(sl.id) },
      el("td", {}, clock(ts(d.createdAt))), el("td", { class: "mono" }, sl.id.slice(0, 8)), el("td", {}, sl.strategy),
      el("td", {}, `${sl.sourceRevision} \u2192 ${sl.targetRevision}`),
      el("td", {}, el("span", { class: "pill", dataset: { status: d.status } }, d.status.replaceAll("_", " "))),
      el("td", {}, took));
  }));
  if (!state.deployments.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "none yet")));
}

let drawPending = false;
function drawSoon() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const canvas = $("chart");
    const points = drawChart(canvas, {
      samples: state.samples, groups: state.groups, colors: state.colours, now: now(),
      markers: state.deployment ? stageMarkers(state.deployment) : [], theme: THEME,
    });
    canvas.dataset.points = String(points);
  });
}

// -- the drawer: one deployment's DescribeServiceDeployments ------------------------------

// The drawer follows its deployment: a newer snapshot (from the stream or a
// history read) redraws its facts, and the deployment's new log events are
// added, so nothing in it stays as it was when it was opened.
const drawerShown = { version: -1, key: "" };

async function openDrawer(id) {
  const drawer = $("drawer");
  drawer.dataset.id = id;
  drawerShown.version = -1;
  drawerShown.key = "";
  $("drawer-title").textContent = `Deployment ${id}`;
  $("drawer-body").replaceChildren(el("p", { class: "sub" }, "loading\u2026"));
  drawer.hidden = false;
  $("drawer-backdrop").hidden = false;
  renderHistory();
  let d;
  try {
    d = await api("GET", `/api/deployments/${id}`);
  } catch (err) {
    $("drawer-body").replaceChildren(el("p", { class: "reason bad" }, err.message));
    return;
  }
  if (drawer.dataset.id !== id) return;
  const { events, ...describe } = d;
  const log = el("ol", { class: "events", id: "drawer-events" }, [...events].reverse().map(drawerEventItem));
  $("drawer-body").replaceChildren(
    el("dl", { class: "facts", id: "drawer-facts" }),
    el("div", { class: "timeline", id: "drawer-stages" }),
    el("details", { open: true }, el("summary", {}, "DescribeServiceDeployments"),
      el("pre", { class: "json", id: "describe-json" })),
    el("details", {}, el("summary", { id: "drawer-events-count" }, `events (${events.length})`), log),
  );
  const newer = state.deployments.find((x) => x.shiftlab.id === id);
  renderDrawer(newer && newer.shiftlab.version > describe.shiftlab.version ? newer : describe);
  // Events the stream brought while the description was on its way.
  const last = Math.max(0, ...events.map((ev) => ev.seq));
  [...state.events.values()].filter((ev) => ev.seq > last).sort((a, b) => a.seq - b.seq).forEach(addDrawerEvent);
}

function renderDrawer(d) {
  if ($("drawer").dataset.id !== d.shiftlab.id || !$("drawer-facts") || d.shiftlab.version < drawerShown.version) return;
  drawerShown.version = d.shiftlab.version;
  // Every alarm evaluation makes a new version: redraw (and lose a reader's
  // selection) only when something else changed.
  const key = JSON.stringify({ ...d, updatedAt: null, shiftlab: { ...d.shiftlab, version: null } });
  if (key === drawerShown.key) return;
  drawerShown.key = key;
  const sl = d.shiftlab;
  const target = d.targetServiceRevision;
  const facts = [
    ["status", el("span", { class: "pill", dataset: { status: d.status } }, d.status)],
    ["statusReason", d.statusReason || "\u2013"],
    ["lifecycleStage", d.lifecycleStage || "\u2013"],
    ["strategy", sl.strategy + (sl.steps.length ? ` (steps ${sl.steps.join("%, ")}%)` : "")],
    ["source \u2192 target", `revision ${sl.sourceRevision} \u2192 ${sl.targetRevision}`],
    ["created / finished", `${clock(ts(d.createdAt))} / ${d.finishedAt ? clock(ts(d.finishedAt)) : "\u2013"}`],
    // The record's requestedProductionTrafficWeight / requestedTestTrafficWeight:
    // what the deployment asked of the load balancer, as ECS reports them (a
    // snapshot). What the load balancer has is in the weight bars.
    ["requested weights", el("span", { dataset: { fact: "requested-weights" } },
      `production ${target.requestedProductionTrafficWeight}%, test ${target.requestedTestTrafficWeight}% ` +
      `to revision ${sl.targetRevision}`,
      el("span", { class: "sub" }, " (the deployment's record; the bars show the load balancer's weights)"))],
    ["circuit breaker", `${d.deploymentCircuitBreaker.status}, ${d.deploymentCircuitBreaker.failureCount} of ${d.deploymentCircuitBreaker.threshold} failures`],
    ["alarms", `${d.alarms.status}` + (d.alarms.alarmNames.length ? `: ${d.alarms.alarmNames.join(", ")}` : "") +
      (d.alarms.triggeredAlarmNames.length ? ` (triggered: ${d.alarms.triggeredAlarmNames.join(", ")})` : "")],
    ["rollback", d.rollback ? `${d.rollback.reason} (at ${clock(ts(d.rollback.startedAt))})` : "\u2013"],
  ];
  $("drawer-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  renderStageTable($("drawer-stages"), d, now());
  $("describe-json").textContent = JSON.stringify(d, null, 2);
}

function drawerEventItem(ev) {
  return el("li", { dataset: { kind: ev.kind, type: ev.type || "", seq: String(ev.seq), tone: eventTone(ev) } },
    el("span", { class: "at" }, clock(ev.at)), el("span", { class: "kind" }, ev.kind), el("span", { class: "msg" }, ev.message));
}

function addDrawerEvent(ev) {
  const log = $("drawer-events");
  if (!log || $("drawer").dataset.id !== ev.deploymentId || log.querySelector(`li[data-seq="${ev.seq}"]`)) return;
  log.prepend(drawerEventItem(ev));
  $("drawer-events-count").textContent = `events (${log.children.length})`;
}

function closeDrawer() {
  $("drawer").hidden = true;
  $("drawer-backdrop").hidden = true;
  delete $("drawer").dataset.id;
  renderHistory();
}

// -- actions ------------------------------------------------------------------------------

async function act(button, path, body) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    setDeployment(await api("POST", path, body));
  } catch (err) {
    notice(err.message);
    renderDeployment();
  } finally {
    button.removeAttribute("aria-busy");
  }
}

function parseEnv(text) {
  const env = {};
  const problems = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) problems.push(`environment: "${line}" is not NAME=value`);
    else env[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return { env, problems };
}

function showProblems(lines, ok = false) {
  const list = $("deploy-problems");
  list.classList.toggle("ok", ok);
  list.replaceChildren(...lines.map((p) => el("li", {}, p)));
  list.hidden = !lines.length;
}

async function deploy(e) {
  e.preventDefault();
  const { env, problems } = parseEnv($("env").value);
  const body = { taskDefinition: { env } };
  if ($("strategy").value) body.strategy = $("strategy").value;
  const dcText = $("dc").value.trim();
  if (dcText) {
    try {
      const dc = JSON.parse(dcText);
      if (dc === null || typeof dc !== "object" || Array.isArray(dc)) problems.push("deploymentConfiguration: must be a JSON object");
      else body.deploymentConfiguration = dc;
    } catch (err) {
      problems.push(`deploymentConfiguration: not JSON (${err.message})`);
    }
  }
  if (problems.length) {
    showProblems(problems);
    return;
  }
  const button = $("deploy");
  button.disabled = true;
  try {
    const d = await api("POST", "/api/deployments", body);
    setDeployment(d);
    showProblems([`deployment ${d.shiftlab.id.slice(0, 12)} started: revision ${d.shiftlab.targetRevision}`], true);
  } catch (err) {
    showProblems(err.problems?.length ? err.problems : [err.message]);
  } finally {
    button.disabled = false;
  }
}

function openTokenBox(open) {
  $("token-form").hidden = !open;
  $("token-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("token-input").focus();
}

async function useToken(value) {
  setToken(value);
  openTokenBox(false);
  $("banner").hidden = true;
  await boot();
}

// The stream starts once a first read shows the API takes us (an
// EventSource refused with 401 would only log errors and retry).
async function boot() {
  setConnection("connecting");
  await refresh();
  if (state.connection !== "locked") stream.start();
}

// -- start ----------------------------------------------------------------------------------

function start() {
  $("deploy-form").addEventListener("submit", deploy);
  for (const chip of $("presets").querySelectorAll("button")) {
    chip.addEventListener("click", () => { $("env").value = chip.dataset.env; });
  }
  $("approve").addEventListener("click", (e) => act(e.currentTarget, `/api/deployments/${state.deployment.shiftlab.id}/approve`));
  $("stop-rollback").addEventListener("click", (e) => act(e.currentTarget, `/api/deployments/${state.deployment.shiftlab.id}/stop`, { rollback: true }));
  $("token-toggle").addEventListener("click", () => openTokenBox($("token-form").hidden));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    useToken($("token-input").value.trim());
  });
  $("token-clear").addEventListener("click", () => {
    $("token-input").value = "";
    useToken("");
  });
  $("drawer-close").addEventListener("click", closeDrawer);
  $("drawer-backdrop").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("drawer").hidden) closeDrawer(); });
  new ResizeObserver(drawSoon).observe($("chart"));
  // Bake countdowns, stage clocks and the chart's time axis move between messages.
  setInterval(() => {
    renderBake();
    if (state.deployment && !isFinal(state.deployment)) renderTimeline($("timeline"), state.deployment, now());
    drawSoon();
  }, 250);
  setInterval(() => { if (state.connection === "live") refresh(); }, REFRESH_MS);
  renderHistory();
  renderEvents(false);
  boot();
}

start();
