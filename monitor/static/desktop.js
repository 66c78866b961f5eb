// The agent desktop: one's own state, ready/pause/log off, the screen pop on a contact, the
// phone calls ring at (chosen at login) and click-to-dial.
import {
  api, el, fillHeader, loadSession, notice, openStream, PAUSE_REASONS, setText, since, syncClock,
  toLogin,
} from "/static/common.js";
import { attachScriptPane } from "/static/script-pane.js";
import { attachWork, onWrapUp } from "/static/desktop-work.js";

let scriptPane = null;
let dialOut = false;
let lastFrame = null;

const OUTBOUND_WORDS = {
  offered: "Dialling…",
  connected: "On call (outbound)",
  "wrap-up": "Wrap-up",
};

const STATE_WORDS = {
  offered: "Incoming call",
  connected: "On call",
  "wrap-up": "Wrap-up",
  queued: "Back in queue",
};

async function setState(state, reason = "") {
  try {
    await api("POST", "/api/desktop/state", { state, reason });
    notice("");
  } catch (failure) {
    notice(failure.message, "error");
  }
}

function renderAgent(agent) {
  const badge = document.getElementById("my-state");
  badge.className = `badge big state-${agent.state}`;
  setText(badge, agent.state);
  document.getElementById("my-time").dataset.since = agent.since;
  let reason = "";
  if (agent.pause_reason) {
    reason = agent.state === "paused"
      ? `Reason: ${agent.pause_reason}`
      : `Paused after this contact: ${agent.pause_reason}`;
  }
  setText(document.getElementById("my-reason"), reason);
  setText(document.getElementById("my-calls"), agent.calls_taken);
  // The ACD refuses a logout while talking; a pause then applies after the call.
  document.getElementById("go-out").disabled = agent.state === "busy";
  document.getElementById("go-ready").disabled = agent.state === "ready";
}

// -- the phone calls ring at ----------------------------------------------------------------

function describePhone(phone) {
  if (phone.external_number) return `external number ${phone.external_number}`;
  if (phone.extension) return `extension ${phone.extension}`;
  return "no phone";
}

function renderPhone(answer) {
  setText(document.getElementById("phone-now"), describePhone(answer.phone));
  const kind = document.getElementById("phone-kind");
  kind.value = answer.phone.kind;
  kind.querySelector('option[value="external"]').disabled = !answer.external_allowed;
  const value = document.getElementById("phone-value");
  value.value = answer.phone.kind === "external" ? answer.phone.external_number || ""
    : answer.phone.kind === "extension" ? answer.phone.extension || "" : "";
  value.hidden = answer.phone.kind === "configured";
  dialOut = answer.dial_out;
  updateDial();
}

async function loadPhone() {
  try {
    renderPhone(await api("GET", "/api/desktop/phone"));
  } catch (failure) {
    notice(failure.message, "error");
  }
}

async function savePhone(event) {
  event.preventDefault();
  const kind = document.getElementById("phone-kind").value;
  const value = document.getElementById("phone-value").value.trim();
  const body = { kind };
  if (kind === "extension") body.extension = value;
  if (kind === "external") body.external_number = value;
  try {
    renderPhone(await api("PUT", "/api/desktop/phone", body));
    notice("");
  } catch (failure) {
    notice(failure.message, "error");
  }
}

// -- click-to-dial ----------------------------------------------------------------------------

function onOutboundCall(frame) {
  const contact = frame && frame.contact;
  return Boolean(contact && contact.direction === "outbound"
    && (contact.state === "offered" || contact.state === "connected"));
}

function updateDial() {
  const agent = lastFrame && lastFrame.agent;
  const free = Boolean(agent && (agent.state === "ready" || agent.state === "paused"));
  document.getElementById("dial-go").disabled = !dialOut || !free;
  document.getElementById("dial-hangup").disabled = !onOutboundCall(lastFrame);
}

function fillDial(number) {
  const box = document.getElementById("dial-number");
  box.value = number;
  box.focus();
}

async function dial(event) {
  event.preventDefault();
  const number = document.getElementById("dial-number").value.trim();
  if (!number) return;
  try {
    await api("POST", "/api/desktop/dial", { number });
    notice("");
  } catch (failure) {
    notice(failure.message, "error");
  }
}

async function hangUp() {
  try {
    await api("POST", "/api/desktop/hangup");
    notice("");
  } catch (failure) {
    notice(failure.message, "error");
  }
}

/** A phone number that fills the dial box when clicked (text only, never markup). */
function numberButton(number, id) {
  return el("button", { type: "button", class: "dial-link", id, title: "Put in the dial box",
    onclick: () => fillDial(number) }, number);
}

function customerBlock(pop) {
  if (!pop || pop.status === "pending") {
    return el("p", { class: "muted lookup" }, "Looking up the caller…");
  }
  if (pop.status !== "found" || !pop.customer) {
    const why = {
      "no-directory": "no customer directory is connected",
      failed: "the customer directory did not answer",
    }[pop.status];
    return el(
      "div",
      { class: "unknown" },
      el("p", { class: "customer-name unknown-caller" }, "Unknown caller"),
      why ? el("p", { class: "muted small" }, why) : null,
    );
  }
  const c = pop.customer;
  const facts = [
    ["Customer no.", c.id],
    ["Account", c.account],
    ["Phone", c.phone ? numberButton(String(c.phone), "customer-phone") : null],
    ["E-mail", c.email],
    ["Priority", c.priority],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  return el(
    "div",
    { class: "found" },
    el(
      "p",
      { class: "customer-name" },
      el("span", { id: "customer-name" }, c.name),
      c.vip ? el("span", { class: "badge vip" }, "VIP") : null,
    ),
    el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
  );
}

function renderContact(contact) {
  document.getElementById("no-contact").hidden = Boolean(contact);
  const pop = document.getElementById("pop");
  pop.hidden = !contact;
  if (!contact) return;
  const badge = document.getElementById("pop-state");
  badge.className = `badge state-${contact.state}`;
  const outbound = contact.direction === "outbound";
  const words = outbound ? OUTBOUND_WORDS : STATE_WORDS;
  setText(badge, words[contact.state] || contact.state);
  setText(document.getElementById("pop-caller-label"), outbound ? "Dialled" : "Caller");
  document.getElementById("pop-time").dataset.since =
    contact.answered_at || contact.queued_at || contact.arrived_at;
  document.getElementById("pop-caller").replaceChildren(
    contact.caller ? numberButton(contact.caller, "pop-caller-number") : "anonymous");
  setText(document.getElementById("pop-queue"), contact.queue || "");
  const details = contact.pop;
  document.getElementById("customer").replaceChildren(customerBlock(details));
  const history = (details && details.history) || [];
  document.querySelector("#history tbody").replaceChildren(
    ...history.map((h) =>
      el(
        "tr",
        {},
        el("td", {}, new Date(h.arrived_at).toLocaleString()),
        el("td", {}, h.queue || ""),
        el("td", {}, h.agent_id || ""),
        el("td", {}, h.outcome),
        el("td", { class: "num" }, `${Math.round(h.talk_seconds)} s`),
      ),
    ),
  );
  document.getElementById("no-history").hidden = history.length > 0;
}

function tick() {
  for (const cell of document.querySelectorAll("[data-since]")) {
    setText(cell, since(cell.dataset.since));
  }
}

function onDesktop(frame) {
  lastFrame = frame;
  syncClock(frame.now);
  renderAgent(frame.agent);
  renderContact(frame.contact);
  onWrapUp(frame.agent, frame.contact);
  if (scriptPane) scriptPane.onContact(frame.contact);
  updateDial();
  tick();
}

async function main() {
  const session = await loadSession();
  if (!session.authenticated) {
    toLogin();
    return;
  }
  fillHeader(session.user);
  if (!session.user.agent_id) {
    notice("This account is not linked to an agent; ask an admin.", "error");
    return;
  }
  const select = document.getElementById("pause-reason");
  select.replaceChildren(...PAUSE_REASONS.map((r) => el("option", { value: r }, r)));
  document.getElementById("go-ready").addEventListener("click", () => setState("ready"));
  document.getElementById("go-pause").addEventListener("click", () =>
    setState("paused", select.value));
  document.getElementById("go-out").addEventListener("click", () => setState("logged-out"));
  scriptPane = attachScriptPane(document.getElementById("script-pane"));
  attachWork();
  const kind = document.getElementById("phone-kind");
  kind.addEventListener("change", () => {
    const value = document.getElementById("phone-value");
    value.hidden = kind.value === "configured";
    value.placeholder = kind.value === "external" ? "+49 170 1234567" : "extension";
  });
  document.getElementById("phone-form").addEventListener("submit", savePhone);
  document.getElementById("dial-form").addEventListener("submit", dial);
  document.getElementById("dial-hangup").addEventListener("click", hangUp);
  loadPhone();
  openStream("/api/desktop/events", { desktop: onDesktop });
  setInterval(tick, 1000);
}

main();
