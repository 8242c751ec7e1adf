// Shared by Shoal's review pages: the token (kept in this tab's sessionStorage and sent as a
// Bearer header, never as a cookie), calls to the gateway, and building elements without HTML
// strings, so that anything a service returns is shown as text.
"use strict";

const Shoal = {
  token() { return sessionStorage.getItem("shoal-token") || ""; },
  setToken(value) {
    if (value) sessionStorage.setItem("shoal-token", value); else sessionStorage.removeItem("shoal-token");
  },
  headers(extra) {
    const headers = Object.assign({}, extra || {});
    const token = Shoal.token();
    if (token) headers["Authorization"] = "Bearer " + token;
    return headers;
  },
  async call(method, path, body) {
    const options = { method, headers: Shoal.headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) options.body = JSON.stringify(body);
    const response = await fetch(path, options);
    const text = await response.text();
    let value = {};
    try { value = text ? JSON.parse(text) : {}; } catch (e) { value = { error: text }; }
    if (!response.ok) {
      const message = value.error || value.message || response.statusText;
      throw new Error(response.status + ": " + message);
    }
    return value;
  },
  get(path) { return Shoal.call("GET", path); },
  post(path, body) { return Shoal.call("POST", path, body); },
  // A service's method with its request as proto3 JSON: Shoal.rpc("feedback", "Stats", {setId}).
  rpc(service, method, request) { return Shoal.post("/review/api/" + service + "/" + method, request || {}); },
  // A feedback TileRecord as the pages use it: numbers as numbers, validity by class.
  tile(record) {
    const byClass = (list) => Object.fromEntries((list || []).map((v) => [v.className, v.validity]));
    return {
      tile_id: record.tileId, z: Number(record.z || 0), x: Number(record.x || 0), y: Number(record.y || 0),
      scores: record.scores || {}, validity: byClass(record.validity),
      features: (record.features || []).map((f) => ({
        feature_id: f.featureId, class_name: f.className, score: Number(f.score || 0),
        geometry: JSON.parse(f.geometry || "null"), validity: byClass(f.validity),
      })),
    };
  },
  // A binary resource (a tile, a spectrogram, a clip) as an object URL, fetched with the token.
  async blobURL(path) {
    const response = await fetch(path, { headers: Shoal.headers() });
    if (!response.ok) throw new Error(response.status + ": " + (await response.text()));
    return URL.createObjectURL(await response.blob());
  },
  // An element with attributes and children; strings become text nodes.
  el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  },
  svg(tag, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  },
  param(name) { return new URLSearchParams(location.search).get(name) || ""; },
  showError(error) {
    const box = document.getElementById("error");
    if (box) box.textContent = String(error && error.message ? error.message : error);
  },
  clearError() { const box = document.getElementById("error"); if (box) box.textContent = ""; },
  // The page header: the pages, and who is signed in.
  header(title) {
    const who = Shoal.token() ? "signed in with a token" : "no token (loopback acts as the mesh)";
    const header = Shoal.el("header", {},
      Shoal.el("h1", {}, title),
      Shoal.el("nav", {},
        Shoal.el("a", { href: "/review/" }, "Sets and datasets"),
        Shoal.el("a", { href: "/review/runs.html" }, "Runs")),
      Shoal.el("span", { class: "who", id: "who" }, who),
      Shoal.el("button", { id: "sign-out", onclick: () => { Shoal.setToken(""); location.href = "/review/"; } }, "Sign out"));
    document.body.prepend(header);
  },
};
