// What the three screens share: building elements, calling the API, following a stream,
// and the Portuguese words for statuses and amounts. No framework, no CDN, no build step.
"use strict";

export const $ = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
};

export const STATUS = {
  ORDER_STATUS_PENDING_PAYMENT: "Aguardando pagamento",
  ORDER_STATUS_RECEIVED: "Recebido",
  ORDER_STATUS_IN_PREPARATION: "Em preparação",
  ORDER_STATUS_READY: "Pronto",
  ORDER_STATUS_COMPLETED: "Finalizado",
  ORDER_STATUS_CANCELLED: "Cancelado",
};
export const QUEUE = ["ORDER_STATUS_RECEIVED", "ORDER_STATUS_IN_PREPARATION", "ORDER_STATUS_READY"];

// Integer centavos (a JSON string for int64) as "R$ 1.234,50", without floating point.
export function reais(centavos) {
  const value = BigInt(centavos || 0);
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return `${sign}R$ ${whole},${(abs % 100n).toString().padStart(2, "0")}`;
}

// A duration in milliseconds, as a kitchen reads it: "45 s", "12 min", "1 h 05 min".
export function elapsed(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// A google.protobuf.Duration in JSON ("12.5s") as milliseconds.
export const durationMs = (text) => Math.round(parseFloat(text || "0") * 1000);

export class ApiError extends Error {
  constructor(httpStatus, status) {
    super(status.message || `HTTP ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = status.code || 0; // google.rpc.Code
    this.details = status.details || [];
  }
}
export const Code = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, FAILED_PRECONDITION: 9, UNAUTHENTICATED: 16, PERMISSION_DENIED: 7 };

async function statusOf(response) {
  try {
    return await response.json();
  } catch {
    return { code: 2, message: `HTTP ${response.status}` };
  }
}

// Calls the API; returns the parsed JSON, or throws ApiError with the google.rpc.Status.
export async function api(method, path, { body, token, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new ApiError(response.status, await statusOf(response));
  return response.json();
}

// A random key for Idempotency-Key (crypto.randomUUID needs a secure context; this does not).
export function randomKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Follows a server stream of the gateway (newline-delimited JSON), reconnecting on its own.
//
// fetch() rather than EventSource: it can send the kitchen's Authorization header, it sees the
// HTTP status and google.rpc.Status of a refused connection (EventSource gives up silently on
// any non-200 answer), and its reconnections back off with jitter, so a thousand screens do
// not all come back in the same instant after a restart. Every (re)connection starts with
// the stream's snapshot, so nothing is lost in between.
//
// onMessage(message, isFirst) gets each message (isFirst: the first of a connection);
// onState(state, error) is told "connecting", "live", "retrying", "ended" or "refused";
// onEnd() when the stream ended normally (WatchOrder of a finished order). `endless` is for the
// board and the kitchen, which never end and send a heartbeat every 20 s: an ending is followed
// by a reconnection, and so is 45 s of silence (a connection that died without closing).
export function follow(path, { token, onMessage, onState = () => {}, onEnd = () => {}, endless = false }) {
  const SILENCE_MS = 45000; // the streams send a heartbeat every 20 s
  let stopped = false;
  let controller = null;
  let failures = 0;
  let retryTimer = null;

  const retry = (error) => {
    if (stopped) return;
    failures += 1;
    const base = Math.min(15000, 500 * 2 ** Math.min(failures - 1, 5));
    const delay = base / 2 + Math.random() * base; // jitter: 0.5x to 1.5x
    // A stream the server ended (a restart, a connection recycled every few minutes) is
    // usually back at the first attempt: say "reconnecting" only if that one fails too.
    onState(failures > 1 ? "retrying" : "connecting", error);
    retryTimer = setTimeout(connect, delay);
  };

  async function connect() {
    if (stopped) return;
    controller = new AbortController();
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      if (endless) watchdog = setTimeout(() => controller.abort(new Error("no message for 45 s")), SILENCE_MS);
    };
    onState("connecting");
    try {
      arm();
      const headers = { Accept: "application/x-ndjson" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
      if (!response.ok) {
        const error = new ApiError(response.status, await statusOf(response));
        const final = [400, 401, 403, 404].includes(response.status);
        clearTimeout(watchdog);
        if (final) {
          stopped = true;
          onState("refused", error);
        } else retry(error);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let first = true;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (!line) continue;
          const frame = JSON.parse(line);
          if (frame.error) throw new ApiError(200, frame.error);
          arm();
          if (first) onState("live");
          failures = 0;
          onMessage(frame.result, first);
          first = false;
          if (stopped) return;
        }
      }
      clearTimeout(watchdog);
      if (endless) retry(new Error("the stream ended"));
      else {
        stopped = true;
        onState("ended");
        onEnd();
      }
    } catch (error) {
      clearTimeout(watchdog);
      if (!stopped) retry(error);
    }
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      if (controller) controller.abort();
    },
  };
}

// The small connection badge every screen shows.
export function connectionBadge(node) {
  const words = {
    connecting: "conectando…",
    live: "ao vivo",
    retrying: "sem conexão — reconectando…",
    ended: "encerrado",
    refused: "recusado",
  };
  return (state) => {
    node.textContent = words[state] || state;
    node.dataset.state = state;
  };
}
