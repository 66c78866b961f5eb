// Shared helpers of Caruso's pages. Data from the server is only ever put into the page as
// text (textContent, text nodes, setAttribute): never as HTML.

let csrfToken = null;
let clockOffset = 0; // server time minus browser time, in ms

/** An API answer with an error status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Who is signed in (and the CSRF token for later requests). */
export async function loadSession() {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  const body = await response.json();
  csrfToken = body.csrf_token;
  return body;
}

export function setCsrfToken(token) {
  csrfToken = token;
}

/** Go to the sign-in page, coming back here afterwards. */
export function toLogin() {
  location.assign("/login?next=" + encodeURIComponent(location.pathname));
}

/** Call the JSON API; state-changing requests carry the CSRF token. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/api/login") toLogin();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Build an element; children and `text` become text nodes, never markup. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the text of an element only when it changed (keeps the DOM quiet). */
export function setText(node, text) {
  const value = text === undefined || text === null ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** Align our clock on the server's (every frame carries the server's `now`). */
export function syncClock(serverNow) {
  const at = Date.parse(serverNow);
  if (!Number.isNaN(at)) clockOffset = at - Date.now();
}

export function serverNow() {
  return Date.now() + clockOffset;
}

/** "m:ss" or "h:mm:ss" since an ISO time, on the server's clock. */
export function since(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.floor((serverNow() - Date.parse(iso)) / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export const PAUSE_REASONS = ["Break", "Lunch", "Meeting", "Training", "Coaching", "Admin work"];

/** Wrap-up dispositions the desktop offers (any short text is accepted by the server). */
export const DISPOSITIONS = [
  "Resolved", "Follow-up needed", "Callback scheduled", "Escalated", "Information given",
  "Complaint", "Wrong number",
];

/** A <select> of pause reasons. */
export function reasonSelect(label) {
  return el(
    "select",
    { class: "reason", "aria-label": label },
    ...PAUSE_REASONS.map((reason) => el("option", { value: reason }, reason)),
  );
}

/** Fill the header: the user, links to the pages their role may open, and sign-out. */
export function fillHeader(user) {
  const who = document.getElementById("who");
  who.replaceChildren(
    el("span", { class: "user-name" }, user.name),
    el("span", { class: "user-role" }, user.role),
  );
  const nav = document.getElementById("nav");
  const links = [];
  if (user.role !== "agent") links.push(el("a", { href: "/monitor" }, "Monitor"));
  if (user.role !== "agent") links.push(el("a", { href: "/reports" }, "Reports"));
  if (user.agent_id) links.push(el("a", { href: "/desktop" }, "Desktop"));
  nav.replaceChildren(...links);
  document.getElementById("sign-out").addEventListener("click", async () => {
    try {
      await api("POST", "/api/logout");
    } finally {
      location.assign("/login");
    }
  });
}

/** Show the stream's health in the header. */
export function setLink(state) {
  const link = document.getElementById("link");
  link.dataset.state = state;
  setText(link, { live: "live", connecting: "connecting…", lost: "reconnecting…" }[state]);
}

/** Open an event stream; after a failed reconnect, check whether we are still signed in. */
export function openStream(path, handlers) {
  setLink("connecting");
  const source = new EventSource(path);
  source.addEventListener("open", () => setLink("live"));
  source.addEventListener("error", async () => {
    setLink("lost");
    if (source.readyState === EventSource.CLOSED) {
      const session = await loadSession().catch(() => null);
      if (!session || !session.authenticated) toLogin();
      else setTimeout(() => openStream(path, handlers), 2000);
    }
  });
  for (const [event, handler] of Object.entries(handlers)) {
    source.addEventListener(event, (message) => {
      setLink("live");
      handler(JSON.parse(message.data), source);
    });
  }
  return source;
}

/** Show a short message in the page's notice line. */
export function notice(text, kind = "info") {
  const line = document.getElementById("notice");
  if (!line) return;
  line.dataset.kind = kind;
  setText(line, text);
  line.hidden = !text;
}
