// The API page: renders /openapi.json (operations by service, parameters, schemas as
// examples) and lets you try each operation against this gateway. No framework, no CDN.
"use strict";

const $ = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
};

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// A little Markdown: paragraphs, "- " lists, `code` and **bold**; everything else is escaped.
function markdown(text) {
  const inline = (s) => escapeHtml(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>");
  const html = [];
  for (const block of String(text || "").split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim());
    if (lines.every((l) => /^\s*- /.test(l) || /^\s{2,}\S/.test(l))) {
      const items = [];
      for (const line of lines) {
        if (/^\s*- /.test(line)) items.push(line.replace(/^\s*- /, ""));
        else items[items.length - 1] += " " + line.trim();
      }
      html.push("<ul>" + items.map((i) => `<li>${inline(i)}</li>`).join("") + "</ul>");
    } else if (block.trim()) {
      html.push(`<p>${inline(block.replace(/\n/g, " "))}</p>`);
    }
  }
  const div = document.createElement("div");
  div.innerHTML = html.join("");
  return div;
}

let spec = null;
const resolve = (schema) => {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    const name = schema.$ref.replace("#/components/schemas/", "");
    schema = { ...spec.components.schemas[name], ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$ref")) };
  }
  return schema || {};
};

function typeLabel(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop().split(".").pop();
  if (schema.type === "array") return typeLabel(schema.items) + "[]";
  if (schema.type === "object" && schema.additionalProperties) return "map<string, " + typeLabel(schema.additionalProperties) + ">";
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
  return schema.format ? `${type} (${schema.format})` : type;
}

// An example value of a schema; `forRequest` leaves read-only fields out.
function example(schema, forRequest, depth = 0) {
  schema = resolve(schema);
  if (depth > 6) return null;
  if (schema.enum) return schema.enum.find((v) => !/_UNSPECIFIED$/.test(v)) || schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "object") {
    if (schema.additionalProperties && !schema.properties) return {};
    const out = {};
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      if (forRequest && resolve(prop).readOnly) continue;
      out[name] = example(prop, forRequest, depth + 1);
    }
    return out;
  }
  if (type === "array") return [example(schema.items, forRequest, depth + 1)];
  if (type === "string") {
    if (schema.format === "date-time") return new Date().toISOString();
    if (schema.format === "int64" || schema.format === "uint64") return "0";
    return "";
  }
  if (type === "integer" || type === "number") return 0;
  if (type === "boolean") return false;
  return null;
}

function schemaTable(schema) {
  const resolved = resolve(schema);
  if (!resolved.properties) return $("p", {}, $("code", {}, typeLabel(schema)), " ", markdown(resolved.description));
  const required = new Set(resolved.required || []);
  return $("table", {},
    $("tr", {}, $("th", {}, "field"), $("th", {}, "type"), $("th", {}, "description")),
    Object.entries(resolved.properties).map(([name, prop]) =>
      $("tr", {},
        $("td", { class: "mono" }, name, required.has(name) ? " *" : ""),
        $("td", { class: "mono" }, typeLabel(prop), resolve(prop).readOnly ? " (output only)" : ""),
        $("td", {}, markdown(prop.description || resolve(prop).description || "")))));
}

function operationView(path, method, op) {
  const body = $("div", { class: "body" });
  body.append(markdown(op.description));
  const params = op.parameters || [];
  if (params.length) {
    body.append($("h4", {}, "Parameters"), $("table", {},
      $("tr", {}, $("th", {}, "name"), $("th", {}, "in"), $("th", {}, "type"), $("th", {}, "description")),
      params.map((p) => $("tr", {}, $("td", { class: "mono" }, p.name, p.required ? " *" : ""), $("td", {}, p.in),
        $("td", { class: "mono" }, typeLabel(p.schema)), $("td", {}, markdown(p.description))))));
  }
  const requestContent = op.requestBody && op.requestBody.content;
  const jsonBody = requestContent && requestContent["application/json"];
  if (requestContent) {
    body.append($("h4", {}, "Request body"));
    body.append(jsonBody ? schemaTable(jsonBody.schema) : $("p", {}, "Raw bytes, passed on as they come (any content type)."));
  }
  const ok = op.responses["200"];
  body.append($("h4", {}, "Response"), markdown(ok.description));
  for (const [type, media] of Object.entries(ok.content || {})) {
    body.append($("p", { class: "muted" }, type));
    if (type === "application/json") body.append($("pre", {}, JSON.stringify(example(media.schema, false), null, 2)));
  }
  body.append($("p", { class: "muted" }, "Errors: a google.rpc.Status {code, message, details}."));
  body.append(tryIt(path, method, op, jsonBody, requestContent));
  const roles = op["x-roles"] || [];
  const locked = op.security && op.security.length ? $("span", { class: "lock", title: "needs a staff token with one of these roles" }, roles.length ? roles.join(" · ") : "staff") : null;
  return $("details", { class: "op", id: op.operationId },
    $("summary", {}, $("span", { class: `verb ${method}` }, method.toUpperCase()), $("span", { class: "path" }, path),
      $("span", { class: "summary" }, op.summary || ""), locked),
    body);
}

function tryIt(path, method, op, jsonBody, requestContent) {
  const inputs = {};
  const rows = (op.parameters || []).map((p) => {
    inputs[p.name] = $("input", { class: "param", placeholder: typeLabel(p.schema) });
    return $("tr", {}, $("td", { class: "mono" }, p.name), $("td", {}, p.in), $("td", {}, inputs[p.name]));
  });
  const textarea = requestContent ? $("textarea", { spellcheck: "false" }) : null;
  if (textarea) textarea.value = jsonBody ? JSON.stringify(example(jsonBody.schema, true), null, 2) : "";
  const output = $("pre", { hidden: "" });
  const status = $("p", { hidden: "" });
  let controller = null;
  const stop = $("button", { type: "button", hidden: "", onclick: () => controller && controller.abort() }, "Stop");

  async function send() {
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const p of op.parameters || []) {
      const value = inputs[p.name].value;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
      else if (value && p.in === "query") for (const v of value.split(",")) query.append(p.name, v.trim());
      else if (value && p.in === "header") headers[p.name] = value;
    }
    if (query.toString()) url += "?" + query;
    const token = document.getElementById("token").value.trim();
    if (token) headers.Authorization = "Bearer " + token;
    if (jsonBody) headers["Content-Type"] = "application/json";
    const streaming = !!(op.responses["200"].content || {})["application/x-ndjson"];
    controller = new AbortController();
    output.hidden = false; status.hidden = false; stop.hidden = !streaming;
    output.textContent = ""; status.textContent = "…";
    try {
      const response = await fetch(url, { method: method.toUpperCase(), headers, body: textarea ? textarea.value : undefined, signal: controller.signal });
      status.className = response.ok ? "status-ok" : "status-err";
      status.textContent = `${response.status} ${response.statusText} · x-request-id ${response.headers.get("x-request-id")}`;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        output.textContent = pretty(text, streaming);
      }
    } catch (error) {
      if (error.name !== "AbortError") output.textContent += "\n" + error;
    } finally {
      stop.hidden = true;
    }
  }

  return $("div", {},
    $("h4", {}, "Try it"),
    rows.length ? $("table", {}, rows) : null,
    textarea,
    $("p", {}, $("button", { type: "button", onclick: send }, "Send"), " ", stop),
    status, output);
}

function pretty(text, streaming) {
  if (streaming) {
    return text.split("\n").filter(Boolean).map((line) => {
      try { return JSON.stringify(JSON.parse(line), null, 2); } catch { return line; }
    }).join("\n");
  }
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

async function main() {
  const token = document.getElementById("token");
  token.value = localStorage.getItem("comanda-staff-token") || "";
  token.addEventListener("change", () => localStorage.setItem("comanda-staff-token", token.value));
  const root = document.getElementById("api");
  try {
    spec = await (await fetch("/openapi.json")).json();
  } catch (error) {
    root.textContent = "Could not load /openapi.json: " + error;
    return;
  }
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  root.replaceChildren(markdown(spec.info.description));
  const toc = document.getElementById("toc");
  const byTag = new Map((spec.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["Other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  for (const [tag, ops] of byTag) {
    const info = (spec.tags || []).find((t) => t.name === tag) || {};
    root.append($("h2", { id: "tag-" + tag }, tag), markdown(info.description));
    toc.append($("h3", {}, tag));
    for (const [path, method, op] of ops) {
      root.append(operationView(path, method, op));
      toc.append($("a", { href: "#" + op.operationId, onclick: () => { document.getElementById(op.operationId).open = true; } },
        $("span", { class: "mono" }, method.toUpperCase(), " "), path));
    }
  }
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) { target.open = true; target.scrollIntoView(); }
  }
}

main();
