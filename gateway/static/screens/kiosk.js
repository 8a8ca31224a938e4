// The self-service kiosk: the menu by category, a cart with quantities and notes, optional
// identification by CPF (or registration), checkout with an Idempotency-Key, the Pix QR code
// (an image drawn by the payment service) with its "copia e cola" text, and the order's live
// status once paid (WatchOrder). In development it also plays the customer's bank app
// (the fake checkout's pay and decline).
import { $, ApiError, Code, QUEUE, STATUS, api, follow, randomKey, reais } from "/screens/common.js";

const CATEGORIES = {
  CATEGORY_BURGER: "Lanches",
  CATEGORY_SIDE: "Acompanhamentos",
  CATEGORY_DRINK: "Bebidas",
  CATEGORY_DESSERT: "Sobremesas",
};
const MAX_QUANTITY = 99;
const RESET_AFTER_MS = 120000; // the "paid" screen gives the kiosk back to the next customer

const el = (id) => document.getElementById(id);
const state = {
  products: [],
  category: "CATEGORY_BURGER",
  cart: [], // { productId, name, priceCentavos, quantity, notes }
  customer: null, // { cpf, name }
  checkoutKey: null, // one per checkout attempt of this cart: a retry returns the same order
  order: null,
  payment: null,
  stream: null,
  devCheckout: false,
};
let resetTimer = null;
let expiryTimer = null;

// -- steps ---------------------------------------------------------------------------------
function show(step) {
  for (const node of document.querySelectorAll(".step")) node.hidden = node.id !== `step-${step}`;
  const heading = el(`step-${step}`).querySelector("h2");
  if (step !== "menu" && heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

// -- the menu --------------------------------------------------------------------------------
async function loadMenu() {
  const products = [];
  let token = "";
  do {
    const page = await api("GET", `/v1/products?pageSize=100${token ? `&pageToken=${encodeURIComponent(token)}` : ""}`);
    products.push(...(page.products || []));
    token = page.nextPageToken || "";
  } while (token);
  state.products = products;
  renderProducts();
}

function renderProducts() {
  el("category-title").textContent = CATEGORIES[state.category];
  for (const button of document.querySelectorAll(".categories button")) {
    button.setAttribute("aria-pressed", String(button.dataset.category === state.category));
  }
  const shown = state.products.filter((p) => p.category === state.category);
  el("products").replaceChildren(
    ...shown.map((p) =>
      $("li", { class: "product" },
        $("h3", {}, p.name),
        $("p", { class: "description" }, p.description),
        $("p", { class: "price" }, reais(p.priceCentavos)),
        $("button", { type: "button", class: "add", "aria-label": `Adicionar ${p.name}`, onclick: () => add(p) }, "Adicionar"))),
  );
  if (!shown.length) el("products").replaceChildren($("li", { class: "empty" }, "Nada nesta categoria agora."));
}

// -- the cart --------------------------------------------------------------------------------
function add(product) {
  const line = state.cart.find((l) => l.productId === product.id);
  if (line) line.quantity = Math.min(MAX_QUANTITY, line.quantity + 1);
  else state.cart.push({ productId: product.id, name: product.name, priceCentavos: product.priceCentavos, quantity: 1, notes: "" });
  changed();
}

function changed() {
  state.checkoutKey = null; // a different cart is a different checkout
  state.cart = state.cart.filter((l) => l.quantity > 0);
  renderCart();
}

const total = () => state.cart.reduce((sum, l) => sum + BigInt(l.priceCentavos) * BigInt(l.quantity), 0n);

function renderCart() {
  const focused = document.activeElement?.id;
  el("cart-lines").replaceChildren(
    ...state.cart.map((line, i) =>
      $("li", { class: "line" },
        $("div", { class: "line-head" },
          $("span", { class: "name" }, line.name),
          $("span", { class: "subtotal" }, reais(BigInt(line.priceCentavos) * BigInt(line.quantity)))),
        $("div", { class: "quantity", role: "group", "aria-label": `Quantidade de ${line.name}` },
          $("button", { type: "button", id: `minus-${i}`, "aria-label": `Tirar um ${line.name}`, onclick: () => { line.quantity -= 1; changed(); } }, "−"),
          $("output", { "aria-live": "polite" }, String(line.quantity)),
          $("button", { type: "button", id: `plus-${i}`, "aria-label": `Mais um ${line.name}`, disabled: line.quantity >= MAX_QUANTITY, onclick: () => { line.quantity += 1; changed(); } }, "+")),
        $("label", { for: `notes-${i}`, class: "notes-label" }, `Observações (${line.name})`),
        $("input", { id: `notes-${i}`, class: "notes", maxlength: 140, value: line.notes, placeholder: "ex.: sem cebola",
          oninput: (event) => { line.notes = event.target.value; state.checkoutKey = null; } }))),
  );
  if (focused && el(focused)) el(focused).focus();
  el("cart-empty").hidden = state.cart.length > 0;
  el("cart-total").textContent = reais(total());
  el("to-identify").disabled = state.cart.length === 0;
}

// -- identification ---------------------------------------------------------------------------
const cpfDigits = (text) => text.replace(/\D/g, "");

async function identify(event) {
  event.preventDefault();
  const cpf = cpfDigits(el("cpf").value);
  el("identify-error").textContent = "";
  if (cpf.length !== 11) {
    el("identify-error").textContent = "Digite os 11 números do CPF.";
    el("cpf").focus();
    return;
  }
  try {
    const customer = await api("POST", "/v1/customers:identify", { body: { cpf } });
    state.customer = { cpf, name: customer.name };
    review();
  } catch (error) {
    if (error.code === Code.NOT_FOUND) {
      el("register-form").hidden = false;
      el("name").focus();
    } else if (error.code === Code.INVALID_ARGUMENT) {
      el("identify-error").textContent = "Esse CPF não é válido. Confira os números.";
    } else {
      el("identify-error").textContent = "Não foi possível identificar agora. Tente de novo ou continue sem CPF.";
    }
  }
}

async function register(event) {
  event.preventDefault();
  const cpf = cpfDigits(el("cpf").value);
  const name = el("name").value.trim();
  const email = el("email").value.trim();
  el("register-error").textContent = "";
  if (!name || !email) {
    el("register-error").textContent = "Preencha nome e e-mail.";
    return;
  }
  try {
    const customer = await api("POST", "/v1/customers", { body: { cpf, name, email } });
    state.customer = { cpf, name: customer.name };
    review();
  } catch (error) {
    const field = error.details?.flatMap((d) => d.fieldViolations || [])[0]?.field;
    el("register-error").textContent =
      field === "email" ? "Esse e-mail não parece válido."
      : field === "name" ? "Digite seu nome."
      : error.code === Code.INVALID_ARGUMENT ? "Confira os dados digitados."
      : "Não foi possível cadastrar agora. Tente de novo ou continue sem CPF.";
  }
}

function anonymous() {
  state.customer = null;
  review();
}

// -- review and checkout ----------------------------------------------------------------------
function review() {
  el("greeting").textContent = state.customer ? `Olá, ${state.customer.name.split(" ")[0]}!` : "";
  el("review-lines").replaceChildren(
    ...state.cart.map((l) =>
      $("li", {}, `${l.quantity}× ${l.name}`, l.notes ? $("span", { class: "notes" }, ` (${l.notes})`) : null,
        $("span", { class: "subtotal" }, reais(BigInt(l.priceCentavos) * BigInt(l.quantity))))));
  el("review-total").textContent = reais(total());
  el("review-customer").textContent = state.customer ? `Pedido em nome de ${state.customer.name}.` : "Pedido sem identificação.";
  el("checkout-error").textContent = "";
  show("review");
}

async function checkout() {
  const button = el("checkout");
  button.disabled = true;
  el("checkout-error").textContent = "";
  state.checkoutKey = state.checkoutKey || randomKey("kiosk");
  try {
    const order = await api("POST", "/v1/orders", {
      headers: { "Idempotency-Key": state.checkoutKey },
      body: {
        customerCpf: state.customer ? state.customer.cpf : "",
        items: state.cart.map((l) => ({ productId: l.productId, quantity: l.quantity, notes: l.notes.trim() })),
      },
    });
    pay(order);
  } catch (error) {
    el("checkout-error").textContent =
      error instanceof ApiError && error.code === Code.INVALID_ARGUMENT
        ? "Algum item mudou no cardápio. Volte ao cardápio e confira o pedido."
        : "Não foi possível finalizar agora. Toque de novo em “Pagar com Pix”.";
    console.warn("checkout failed:", error.message);
  } finally {
    button.disabled = false;
  }
}

// -- paying -----------------------------------------------------------------------------------
function pay(order) {
  state.order = order;
  state.payment = null;
  el("pay-number").textContent = order.number;
  el("pay-total").textContent = reais(order.totalCentavos);
  el("pay-status").textContent = "Gerando o QR code Pix…";
  el("pix").hidden = true;
  el("dev").hidden = true;
  show("pay");
  if (state.stream) state.stream.stop();
  state.stream = follow(`/v1/orders/${order.id}:watch`, { onMessage: onOrder });
}

function onOrder(order) {
  state.order = order;
  if (order.paymentId && !state.payment) loadPayment(order);
  if (order.status === "ORDER_STATUS_PENDING_PAYMENT") return;
  clearInterval(expiryTimer);
  if (order.status === "ORDER_STATUS_CANCELLED") {
    const reason = {
      PAYMENT_STATUS_DECLINED: "O pagamento foi recusado pelo banco.",
      PAYMENT_STATUS_EXPIRED: "O prazo para pagar o Pix acabou.",
    }[order.paymentStatus] || "O pedido foi cancelado.";
    el("failed-reason").textContent = `${reason} Nada foi cobrado.`;
    state.checkoutKey = null; // trying again is a new checkout
    show("failed");
    return;
  }
  if (el("step-done").hidden) {
    el("done-number").textContent = order.number;
    show("done");
    clearTimeout(resetTimer);
    resetTimer = setTimeout(startOver, RESET_AFTER_MS);
  }
  const reached = [...QUEUE, "ORDER_STATUS_COMPLETED"].indexOf(order.status);
  for (const [i, item] of [...el("progress").children].entries()) {
    item.classList.toggle("reached", i <= reached);
    if (item.dataset.status === order.status) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
  el("done-status").textContent =
    order.status === "ORDER_STATUS_READY" ? `Seu pedido ${order.number} está pronto! Retire no balcão.` : `Status: ${STATUS[order.status]}.`;
}

async function loadPayment(order) {
  state.payment = { loading: true };
  try {
    const payment = await api("GET", `/v1/orders/${order.id}/payment`);
    if (state.order?.id !== order.id) return; // a late answer about an order left behind
    state.payment = payment;
    if (state.order.status !== "ORDER_STATUS_PENDING_PAYMENT") return;
    el("qr").src = `/v1/payments/${payment.id}/qr-code`;
    el("pix-code").value = payment.qrCode;
    el("pix").hidden = false;
    el("dev").hidden = !state.devCheckout;
    el("pay-status").textContent = "Aguardando o pagamento…";
    const expires = Date.parse(payment.expireTime);
    const countdown = () => {
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      el("expiry").textContent = `O código vale por mais ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}.`;
    };
    clearInterval(expiryTimer);
    countdown();
    expiryTimer = setInterval(countdown, 1000);
  } catch (error) {
    console.warn("payment not read:", error.message);
    state.payment = null;
    setTimeout(() => {
      const current = state.order;
      if (current?.id === order.id && !state.payment && current.status === "ORDER_STATUS_PENDING_PAYMENT") {
        loadPayment(current);
      }
    }, 1000);
  }
}

async function fakeCheckout(verb) {
  if (!state.payment?.id) return;
  for (const id of ["fake-pay", "fake-decline"]) el(id).disabled = true;
  try {
    await api("POST", `/v1/fake-checkout/${state.payment.id}:${verb}`, { body: {} });
    el("pay-status").textContent = verb === "pay" ? "Pagamento enviado, confirmando…" : "Recusa enviada…";
  } catch (error) {
    el("pay-status").textContent = "O app do banco simulado não respondeu. Tente de novo.";
    console.warn("fake checkout failed:", error.message);
  } finally {
    for (const id of ["fake-pay", "fake-decline"]) el(id).disabled = false;
  }
}

async function cancelOrder() {
  if (!state.order) return;
  try {
    await api("POST", `/v1/orders/${state.order.id}:cancel`, { body: { reason: "cancelado no quiosque" } });
  } catch (error) {
    console.warn("cancel failed:", error.message);
  }
}

async function copyCode() {
  const text = el("pix-code").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    el("pix-code").select();
    document.execCommand("copy");
  }
  el("copy").textContent = "Copiado!";
  setTimeout(() => (el("copy").textContent = "Copiar código"), 2000);
}

// -- starting over ----------------------------------------------------------------------------
function startOver() {
  clearTimeout(resetTimer);
  clearInterval(expiryTimer);
  if (state.stream) state.stream.stop();
  Object.assign(state, { cart: [], customer: null, checkoutKey: null, order: null, payment: null, stream: null });
  el("cpf").value = el("name").value = el("email").value = "";
  el("register-form").hidden = true;
  el("greeting").textContent = "";
  renderCart();
  show("menu");
}

function retry() {
  if (state.stream) state.stream.stop();
  state.order = state.payment = state.stream = null;
  renderCart();
  show("menu");
}

// The fake checkout exists only in development. Ask it about a payment id that cannot exist:
// a development gateway answers 400 (the id is not a UUID) and nothing is paid; where the fake
// checkout is off or not routed, the answer is 501 or 404 and the page offers nothing.
async function detectDevCheckout() {
  try {
    await api("POST", "/v1/fake-checkout/-:pay", { body: {} });
  } catch (error) {
    state.devCheckout = error instanceof ApiError && error.httpStatus === 400;
  }
}

// -- wiring -----------------------------------------------------------------------------------
for (const button of document.querySelectorAll(".categories button")) {
  button.addEventListener("click", () => {
    state.category = button.dataset.category;
    renderProducts();
  });
}
for (const button of document.querySelectorAll("[data-back]")) button.addEventListener("click", () => show(button.dataset.back));
el("to-identify").addEventListener("click", () => {
  el("register-form").hidden = true;
  show("identify");
});
el("identify-form").addEventListener("submit", identify);
el("register-form").addEventListener("submit", register);
el("anonymous").addEventListener("click", anonymous);
el("checkout").addEventListener("click", checkout);
el("fake-pay").addEventListener("click", () => fakeCheckout("pay"));
el("fake-decline").addEventListener("click", () => fakeCheckout("decline"));
el("cancel-order").addEventListener("click", cancelOrder);
el("copy").addEventListener("click", copyCode);
el("new-order").addEventListener("click", startOver);
el("start-over").addEventListener("click", startOver);
el("retry").addEventListener("click", retry);

renderCart();
detectDevCheckout();
loadMenu().catch((error) => {
  el("products").replaceChildren($("li", { class: "error", role: "alert" }, "Não foi possível carregar o cardápio. Recarregue a página."));
  console.warn("menu failed:", error.message);
});
