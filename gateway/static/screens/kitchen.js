// The kitchen display: the queue in the kitchen's order (Pronto, Em preparação, Recebido;
// oldest first), each card with its items, notes, waiting times and one button for its next
// step, live from the staff stream GET /v1/kitchen/orders:watch.
//
// The staff token is typed once and kept in this browser's localStorage (until "Sair"). It
// travels as `Authorization: Bearer <token>`, which is why the stream is read with fetch()
// and not EventSource (which cannot send headers; a token in the URL would end up in logs).
import { $, ApiError, Code, STATUS, api, connectionBadge, durationMs, elapsed, follow } from "/screens/common.js";

const TOKEN_KEY = "comanda.kitchen.token";
const RANK = { ORDER_STATUS_READY: 0, ORDER_STATUS_IN_PREPARATION: 1, ORDER_STATUS_RECEIVED: 2 };
const NEXT = {
  ORDER_STATUS_RECEIVED: ["ORDER_STATUS_IN_PREPARATION", "Iniciar preparo"],
  ORDER_STATUS_IN_PREPARATION: ["ORDER_STATUS_READY", "Marcar como pronto"],
  ORDER_STATUS_READY: ["ORDER_STATUS_COMPLETED", "Entregue ao cliente"],
};
const LATE_MIN = 10; // minutes since received: amber, then red at twice as long

const queue = new Map(); // order id -> { order, waitingMs, statusMs, at (client ms) }
const el = (id) => document.getElementById(id);
const setConnection = connectionBadge(el("connection"));
let stream = null;
const REFUSED = "Token inválido ou sem permissão para a cozinha. Digite-o de novo.";
const refused = (error) => error.code === Code.UNAUTHENTICATED || error.code === Code.PERMISSION_DENIED;

function showLogin(message = "") {
  if (stream) stream.stop();
  stream = null;
  localStorage.removeItem(TOKEN_KEY);
  queue.clear();
  el("queue").hidden = el("empty").hidden = el("logout").hidden = true;
  el("login").hidden = false;
  el("login-error").textContent = message;
  el("token").value = "";
  el("token").focus();
}

function start(token) {
  el("login").hidden = true;
  el("queue").hidden = el("logout").hidden = false;
  stream = follow("/v1/kitchen/orders:watch", {
    token,
    endless: true,
    onMessage: (message, isFirst) => apply(message, isFirst || message.snapshot),
    onState: (state, error) => {
      setConnection(state);
      if (state === "refused" && error instanceof ApiError && refused(error)) showLogin(REFUSED);
    },
  });
}

function apply(message, isSnapshot) {
  if (isSnapshot) queue.clear();
  const now = Date.now();
  const waits = new Map((message.waits || []).map((w) => [w.orderId, w]));
  for (const order of message.orders || []) {
    const wait = waits.get(order.id);
    if (!(order.status in RANK) || !wait) {
      queue.delete(order.id);
      continue;
    }
    queue.set(order.id, {
      order,
      waitingMs: durationMs(wait.waiting),
      statusMs: durationMs(wait.statusWaiting),
      at: now,
    });
  }
  render();
}

function render() {
  const cards = [...queue.values()].sort(
    (a, b) =>
      RANK[a.order.status] - RANK[b.order.status] ||
      Date.parse(a.order.createTime) - Date.parse(b.order.createTime) ||
      (a.order.id < b.order.id ? -1 : 1),
  );
  const focused = document.activeElement?.dataset?.orderId;
  el("queue").replaceChildren(...cards.map(card));
  if (focused) document.querySelector(`button[data-order-id="${focused}"]`)?.focus();
  el("empty").hidden = cards.length > 0;
  const count = (status) => cards.filter((c) => c.order.status === status).length;
  el("counts").textContent =
    `${count("ORDER_STATUS_READY")} prontos · ${count("ORDER_STATUS_IN_PREPARATION")} em preparação · ` +
    `${count("ORDER_STATUS_RECEIVED")} recebidos`;
  tick();
}

function card({ order }) {
  const [next, label] = NEXT[order.status];
  const heading = `order-${order.id}`;
  return $("article", { class: `ticket ${order.status.toLowerCase()}`, "aria-labelledby": heading, "data-order-id": order.id },
    $("header", {},
      $("h2", { id: heading }, `Pedido ${order.number}`),
      $("span", { class: "chip" }, STATUS[order.status])),
    $("p", { class: "waits" },
      $("span", { class: "waiting", "data-order-id": order.id }, ""),
      $("span", { class: "in-status", "data-order-id": order.id }, "")),
    $("ul", { class: "items" },
      (order.items || []).map((item) =>
        $("li", {},
          $("span", { class: "qty" }, `${item.quantity}×`), " ", item.name,
          item.notes ? $("span", { class: "notes" }, `Obs.: ${item.notes}`) : null))),
    $("button", {
      type: "button",
      class: "advance",
      "data-order-id": order.id,
      "aria-label": `${label}: pedido ${order.number}`,
      onclick: (event) => advance(order, next, event.currentTarget),
    }, label));
}

// Waiting times move every second from what the server measured (no clock to trust here).
function tick() {
  const now = Date.now();
  for (const [id, entry] of queue) {
    const waited = entry.waitingMs + (now - entry.at);
    const inStatus = entry.statusMs + (now - entry.at);
    const waiting = document.querySelector(`.waiting[data-order-id="${id}"]`);
    if (!waiting) continue;
    waiting.textContent = `Espera: ${elapsed(waited)}`;
    document.querySelector(`.in-status[data-order-id="${id}"]`).textContent =
      `Nesta etapa: ${elapsed(inStatus)}`;
    const minutes = waited / 60000;
    const ticket = waiting.closest(".ticket");
    ticket.classList.toggle("late", minutes >= LATE_MIN && minutes < 2 * LATE_MIN);
    ticket.classList.toggle("very-late", minutes >= 2 * LATE_MIN);
  }
}
setInterval(tick, 1000);

async function advance(order, status, button) {
  button.disabled = true;
  const token = localStorage.getItem(TOKEN_KEY);
  try {
    await api("POST", `/v1/kitchen/orders/${order.id}:advance`, { body: { status }, token });
  } catch (error) {
    button.disabled = false;
    if (refused(error)) {
      showLogin(REFUSED);
    } else if (error.code === Code.FAILED_PRECONDITION) {
      toast(`O pedido ${order.number} já mudou em outro terminal; a fila foi atualizada.`);
    } else {
      toast(`Não foi possível avançar o pedido ${order.number}. Tente de novo.`);
    }
    console.warn("advance failed:", error.message);
  }
}

let toastTimer = null;
function toast(text) {
  el("toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el("toast").textContent = ""), 6000);
}

el("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = el("token").value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  start(token);
});
el("logout").addEventListener("click", () => showLogin());

const saved = localStorage.getItem(TOKEN_KEY);
if (saved) start(saved);
else showLogin();
