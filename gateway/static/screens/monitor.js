// The order-status monitor: order numbers in columns by status, live from the public board
// stream (GET /v1/order-board:watch). Numbers only: the stream carries nothing else.
import { $, QUEUE, connectionBadge, follow } from "/screens/common.js";

const FRESH_MS = 20000; // how long a number that just became ready stands out
const board = new Map(); // number -> { status, since (ms), freshUntil (ms) }
const lanes = Object.fromEntries(QUEUE.map((status) => [status, document.getElementById(status)]));
const announce = document.getElementById("announce");

let loaded = false; // the page's first snapshot: nothing on it is news

function apply(message, isSnapshot) {
  const now = Date.now();
  const previous = new Map(board);
  if (isSnapshot) board.clear();
  const ready = [];
  for (const entry of message.entries || []) {
    const number = String(entry.number);
    const before = previous.get(number);
    if (!QUEUE.includes(entry.status)) {
      board.delete(number);
      continue;
    }
    const since = Date.parse(entry.statusTime) || now;
    // Ready since we last knew: also after a reconnection, whose snapshot may bring it.
    const becameReady =
      entry.status === "ORDER_STATUS_READY" && loaded && (!before || before.status !== entry.status);
    board.set(number, {
      status: entry.status,
      since,
      freshUntil: becameReady ? now + FRESH_MS : before && before.status === entry.status ? before.freshUntil : 0,
    });
    if (becameReady) ready.push(number);
  }
  loaded = true;
  if (ready.length) announce.textContent = `Pedido ${ready.join(", ")} pronto para retirada`;
  render();
}

function render() {
  const now = Date.now();
  for (const [status, list] of Object.entries(lanes)) {
    const numbers = [...board.entries()].filter(([, o]) => o.status === status);
    // Ready: the newest first, so a number that just got ready is never pushed out of view.
    numbers.sort(([a, x], [b, y]) =>
      status === "ORDER_STATUS_READY" ? y.since - x.since || Number(b) - Number(a) : Number(a) - Number(b));
    list.replaceChildren(
      ...numbers.map(([number, o]) =>
        $("li", { class: o.freshUntil > now ? "number fresh" : "number", "data-number": number }, number)),
    );
    fit(list);
  }
}

// Hide what does not fit and count it: "+7" (the oldest stay in view; in Pronto, the newest).
function fit(list) {
  const items = [...list.querySelectorAll(".number")];
  const more = $("li", { class: "more", "aria-hidden": "true" });
  let hidden = 0;
  while (hidden < items.length && list.scrollHeight > list.clientHeight + 1) {
    items[items.length - 1 - hidden].hidden = true;
    hidden += 1;
    more.textContent = `+${hidden}`;
    if (!more.isConnected) list.append(more);
  }
}

// A fresh number stops standing out after a while.
setInterval(() => {
  const now = Date.now();
  if ([...board.values()].some((o) => o.freshUntil && o.freshUntil <= now)) {
    for (const o of board.values()) if (o.freshUntil <= now) o.freshUntil = 0;
    render();
  }
}, 1000);
addEventListener("resize", render);

follow("/v1/order-board:watch", {
  endless: true,
  onMessage: (message, isFirst) => apply(message, isFirst || message.snapshot),
  onState: connectionBadge(document.getElementById("connection")),
});
