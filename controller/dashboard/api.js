// The controller API as the page sees it: JSON calls with the bearer token
// (kept in sessionStorage, so it leaves with the tab) and the SSE stream,
// reconnected after every kind of failure.

const TOKEN_KEY = "shiftlab.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

// Every call but a read sends JSON, an empty object when there is nothing to
// say: the API refuses a state-changing call of any other content type (that
// is what keeps other web pages out, see shiftlab/netsafety.py).
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const reads = method === "GET" || method === "HEAD";
  if (!reads) headers["Content-Type"] = "application/json";
  const sent = reads ? undefined : JSON.stringify(body === undefined ? {} : body);
  const resp = await fetch(path, { method, headers, body: sent });
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

const MESSAGE_TYPES = ["service", "deployment", "metrics", "event"];

// EventSource reconnects by itself after a dropped connection (sending
// Last-Event-ID, so the server replays missed log events), but gives up for
// good on an HTTP error such as 401: then this opens a new one, with
// `after=` standing in for Last-Event-ID.
export class Stream {
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.lastSeq = 0;
    this.source = null;
    this.retryMs = 1000;
    this.timer = null;
  }

  start() {
    this.stop();
    const params = new URLSearchParams();
    if (token()) params.set("token", token());
    if (this.lastSeq) params.set("after", String(this.lastSeq));
    const query = params.toString();
    const source = new EventSource(`/api/stream${query ? `?${query}` : ""}`);
    this.source = source;
    for (const type of MESSAGE_TYPES) {
      source.addEventListener(type, (e) => {
        const message = JSON.parse(e.data);
        if (type === "event") this.lastSeq = Math.max(this.lastSeq, message.event.seq);
        this.onMessage(message);
      });
    }
    source.onopen = () => {
      this.retryMs = 1000;
      this.onState("live");
    };
    source.onerror = () => {
      if (source !== this.source) return;
      this.onState("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        this.timer = setTimeout(() => this.start(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 15000);
      }
    };
  }

  stop() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
