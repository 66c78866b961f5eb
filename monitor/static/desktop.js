// The agent desktop: one's own state, ready/pause/log off, and the screen pop on a contact.
import {
  api, el, fillHeader, loadSession, notice, openStream, PAUSE_REASONS, setText, since, syncClock,
  toLogin,
} from "/static/common.js";
import { attachScriptPane } from "/static/script-pane.js";
import { attachWork, onWrapUp } from "/static/desktop-work.js";

let scriptPane = null;

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
    ["Phone", c.phone],
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
  setText(badge, STATE_WORDS[contact.state] || contact.state);
  document.getElementById("pop-time").dataset.since =
    contact.answered_at || contact.queued_at || contact.arrived_at;
  setText(document.getElementById("pop-caller"), contact.caller || "anonymous");
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
  syncClock(frame.now);
  renderAgent(frame.agent);
  renderContact(frame.contact);
  onWrapUp(frame.agent, frame.contact);
  if (scriptPane) scriptPane.onContact(frame.contact);
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
  openStream("/api/desktop/events", { desktop: onDesktop });
  setInterval(tick, 1000);
}

main();
