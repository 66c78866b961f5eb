// The live status monitor: a full snapshot, then deltas, over Server-Sent Events.
import {
  api, el, fillHeader, loadSession, notice, openStream, reasonSelect, setText, since, syncClock,
  toLogin,
} from "/static/common.js";

const floor = { rev: 0, agents: new Map(), contacts: new Map(), queues: new Map() };
const agentRows = new Map(); // agent id -> { row, cells }
// Listen / whisper / barge: what the backend supports, and the phone that rings by default.
const supervision = { modes: [], phone: null, pending: new Set() };
const SPY_LABELS = { listen: "Listen", whisper: "Whisper", barge: "Barge" };
const SPY_DOING = { listen: "listen to", whisper: "whisper to", barge: "barge into" };

function applyFrame(kind, frame, source) {
  if (kind === "delta") {
    if (frame.rev <= floor.rev) return;
    if (frame.base !== floor.rev) {
      // We missed a frame: start over from a fresh snapshot.
      source.close();
      start();
      return;
    }
  } else {
    floor.agents.clear();
    floor.contacts.clear();
    floor.queues.clear();
  }
  for (const section of ["agents", "contacts", "queues"]) {
    for (const [id, item] of Object.entries(frame[section] || {})) floor[section].set(id, item);
    for (const id of frame[`${section}_gone`] || []) floor[section].delete(id);
  }
  floor.rev = frame.rev;
  syncClock(frame.now);
  render();
}

function render() {
  renderQueues();
  renderWaiting();
  renderAgents();
  tick();
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)} %`;
}

function renderQueues() {
  const rows = [...floor.queues.values()].map((q) =>
    el(
      "tr",
      { dataset: { queue: q.name } },
      el("td", { class: "name" }, q.name),
      el("td", { class: "num waiting" }, q.waiting),
      el("td", { class: "num longest", dataset: { since: q.oldest_queued_at || "" } }),
      el("td", { class: "num" }, `${q.agents_ready} / ${q.agents_logged_in}`),
      el("td", { class: "num" }, q.offered_today),
      el("td", { class: "num answered" }, q.answered_today),
      el("td", { class: "num abandoned" }, q.abandoned_today),
      el(
        "td",
        { class: "num", title: `answered within ${q.service_level_seconds} s` },
        percent(q.service_level_today),
      ),
    ),
  );
  document.querySelector("#queues tbody").replaceChildren(...rows);
}

/** The remaining wait the ACD expects, as of the last frame ("–": nobody can serve it). */
function estimate(contact) {
  if (contact.state !== "queued") return "";
  if (contact.estimated_wait === null || contact.estimated_wait === undefined) return "–";
  const seconds = Math.round(contact.estimated_wait);
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function renderWaiting() {
  const contacts = [...floor.contacts.values()].sort(
    (a, b) => (a.position ?? 1e9) - (b.position ?? 1e9) || b.priority - a.priority
      || Date.parse(a.queued_at) - Date.parse(b.queued_at),
  );
  const rows = contacts.map((c) =>
    el(
      "tr",
      { dataset: { contact: c.id }, class: `contact-${c.state}` },
      el("td", { class: "num" }, c.position ?? ""),
      el("td", { class: "caller" }, c.caller || "anonymous"),
      el("td", {}, c.queue || ""),
      el("td", {}, el("span", { class: `badge state-${c.state}` }, c.state)),
      el("td", { class: "num" }, c.priority),
      el("td", { class: "num wait", dataset: { since: c.queued_at || c.arrived_at } }),
      el("td", { class: "num ewt", title: "the ACD's estimate of the remaining wait" },
        estimate(c)),
    ),
  );
  document.querySelector("#waiting tbody").replaceChildren(...rows);
  document.getElementById("no-waiting").hidden = rows.length > 0;
  setText(document.getElementById("waiting-count"), rows.length ? `(${rows.length})` : "");
}

/** "paused: Lunch"; a pause asked for during a call shows as "busy, then paused: Lunch". */
function badgeText(agent) {
  if (!agent.pause_reason) return agent.state;
  if (agent.state === "paused") return `paused: ${agent.pause_reason}`;
  return `${agent.state}, then paused: ${agent.pause_reason}`;
}

async function act(agentId, state, reason) {
  try {
    await api("POST", `/api/agents/${encodeURIComponent(agentId)}/state`, { state, reason });
    notice("");
  } catch (failure) {
    notice(`${agentId}: ${failure.message}`, "error");
  }
}

/** What to send as the supervisor's phone: nothing when it is the account's default. */
function spyPhone() {
  const value = document.getElementById("spy-phone").value.trim();
  const phone = supervision.phone;
  if (!value || (phone && value === (phone.extension || phone.external_number))) return {};
  return value.startsWith("+") ? { external_number: value } : { extension: value };
}

async function spy(agentId, mode) {
  supervision.pending.add(agentId);
  renderAgents();
  notice(`Ringing your phone to ${SPY_DOING[mode]} ${agentId}…`);
  try {
    await api("POST", `/api/agents/${encodeURIComponent(agentId)}/spy`, { mode, ...spyPhone() });
    notice("");
  } catch (failure) {
    notice(`${agentId}: ${failure.message}`, "error");
  } finally {
    supervision.pending.delete(agentId);
    renderAgents();
  }
}

async function stopSpy(agentId) {
  const agent = floor.agents.get(agentId);
  for (const session of (agent && agent.spies) || []) {
    try {
      await api("DELETE", `/api/supervision/sessions/${encodeURIComponent(session.id)}`);
      notice("");
    } catch (failure) {
      if (failure.status !== 404) notice(`${agentId}: ${failure.message}`, "error");
    }
  }
}

/** The row's Listen / Whisper / Barge / Stop buttons (none when the backend cannot). */
function spyButtons(agentId) {
  if (!supervision.modes.length) return null;
  return el(
    "div",
    { class: "action-row spy-row" },
    ...supervision.modes.map((mode) => el("button", {
      class: `spy spy-${mode} quiet`, type: "button", title: `${SPY_DOING[mode]} ${agentId}'s call`,
      dataset: { mode }, onclick: () => spy(agentId, mode),
    }, SPY_LABELS[mode] || mode)),
    el("button", { class: "spy-stop", type: "button", onclick: () => stopSpy(agentId) }, "Stop"),
  );
}

/** "listened to by sue (listen)", for every supervisor on the agent's call. */
function spyText(agent) {
  return (agent.spies || []).map((s) => `listened to by ${s.supervisor} (${s.mode})`).join("; ");
}

function agentRow(agent) {
  const cells = {
    name: el("td", { class: "name" }),
    state: el("td", {}, el("span", { class: "badge" })),
    time: el("td", { class: "num time" }),
    contact: el("td", { class: "contact" }),
    skills: el("td", { class: "skills" }),
    calls: el("td", { class: "num" }),
  };
  const skillList = el("span", { class: "skill-list" });
  const editing = { active: false };
  cells.skills.append(skillList, el("button", {
    class: "edit-skills quiet", type: "button", title: `edit ${agent.id}'s skills`,
    onclick: () => editSkills(agent.id, cells.skills, skillList, editing),
  }, "Edit"));
  const reason = reasonSelect(`pause reason for ${agent.id}`);
  const actions = el(
    "td",
    { class: "actions" },
    el(
      "div",
      { class: "action-row" },
      el("button", { class: "ready", onclick: () => act(agent.id, "ready", "") }, "Ready"),
      reason,
      el("button", { class: "pause", onclick: () => act(agent.id, "paused", reason.value) },
        "Pause"),
      el("button", { class: "logout quiet", onclick: () => act(agent.id, "logged-out", "") },
        "Log out"),
    ),
    spyButtons(agent.id),
  );

  const row = el(
    "tr",
    { dataset: { agent: agent.id } },
    cells.name, cells.state, cells.time, cells.contact, cells.skills, cells.calls, actions,
  );
  const contactText = el("span", { class: "contact-text" });
  const spyNote = el("div", { class: "spy-note" });
  cells.contact.append(contactText, spyNote);
  return { row, cells, skillList, editing, contactText, spyNote };
}

/** "support 50, billing 10" -> {support: 50, billing: 10}; null if it does not read. */
function parseSkills(text) {
  const skills = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const match = /^(\S+)\s+(\d{1,3})$/.exec(part);
    if (!match) return null;
    skills[match[1]] = Number(match[2]);
  }
  return skills;
}

function skillsText(skills) {
  return Object.entries(skills).map(([s, l]) => `${s} ${l}`).join(", ");
}

/** Turn the skills cell into a small editor; Save sends the new skills to the ACD. */
function editSkills(agentId, cell, list, editing) {
  if (editing.active) return;
  editing.active = true;
  const current = floor.agents.get(agentId);
  const input = el("input", {
    class: "skills-input", value: skillsText(current ? current.skills : {}),
    "aria-label": `skills of ${agentId}`, placeholder: "skill level, skill level",
  });
  const close = () => {
    editing.active = false;
    cell.replaceChildren(list, editButton);
    renderAgents();
  };
  const save = async () => {
    const skills = parseSkills(input.value);
    if (skills === null) {
      notice(`${agentId}: write skills as "name level, name level" (levels 1-100)`, "error");
      return;
    }
    try {
      await api("PUT", `/api/agents/${encodeURIComponent(agentId)}/skills`, { skills });
      notice("");
      close();
    } catch (failure) {
      notice(`${agentId}: ${failure.message}`, "error");
    }
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") save();
    if (event.key === "Escape") close();
  });
  const editButton = cell.querySelector("button.edit-skills");
  cell.replaceChildren(el("span", { class: "skills-edit" }, input,
    el("button", { class: "save-skills", type: "button", onclick: save }, "Save"),
    el("button", { class: "quiet", type: "button", onclick: close }, "Cancel")));
  input.focus();
}

function renderAgents() {
  const body = document.querySelector("#agents tbody");
  const agents = [...floor.agents.values()].sort((a, b) => a.id.localeCompare(b.id));
  for (const [id, entry] of agentRows) {
    if (!floor.agents.has(id)) {
      entry.row.remove();
      agentRows.delete(id);
    }
  }
  const counts = {};
  agents.forEach((agent, index) => {
    let entry = agentRows.get(agent.id);
    if (!entry) {
      entry = agentRow(agent);
      agentRows.set(agent.id, entry);
    }
    if (body.children[index] !== entry.row) body.insertBefore(entry.row, body.children[index] || null);
    const { cells, row } = entry;
    counts[agent.state] = (counts[agent.state] || 0) + 1;
    row.dataset.state = agent.state;
    setText(cells.name, agent.name === agent.id ? agent.id : `${agent.name} (${agent.id})`);
    const badge = cells.state.firstChild;
    badge.className = `badge state-${agent.state}`;
    setText(badge, badgeText(agent));
    cells.time.dataset.since = agent.since;
    setText(entry.contactText, agent.contact_id
      ? `${agent.contact_caller || "anonymous"} · ${agent.contact_queue || ""}` : "");
    setText(entry.spyNote, spyText(agent));
    renderSpyButtons(entry.row, agent);
    setText(entry.skillList, skillsText(agent.skills));
    setText(cells.calls, agent.calls_taken);
    // The ACD refuses a logout while talking; a pause then applies after the call.
    row.querySelector("button.logout").disabled = agent.state === "busy";
  });
  const summary = ["ready", "busy", "reserved", "wrap-up", "paused"]
    .filter((s) => counts[s])
    .map((s) => `${counts[s]} ${s}`)
    .join(" · ");
  setText(document.getElementById("agent-summary"), summary ? `(${summary})` : "");
}

/** Spy buttons while the agent talks; Stop while someone listens. */
function renderSpyButtons(row, agent) {
  const buttons = row.querySelector(".spy-row");
  if (!buttons) return;
  const talking = agent.state === "busy" && Boolean(agent.contact_id);
  const listened = (agent.spies || []).length > 0;
  const pending = supervision.pending.has(agent.id);
  buttons.hidden = !talking && !listened;
  for (const button of buttons.querySelectorAll("button.spy")) {
    button.hidden = listened;
    button.disabled = pending || !talking;
  }
  buttons.querySelector("button.spy-stop").hidden = !listened;
}

/** Durations move every second without any traffic from the server. */
function tick() {
  for (const cell of document.querySelectorAll("[data-since]")) {
    setText(cell, since(cell.dataset.since));
  }
}

/** What the backend can do for supervisors, and the phone that rings for this one. */
async function loadSupervision() {
  try {
    const info = await api("GET", "/api/supervision");
    supervision.modes = info.modes;
    supervision.phone = info.phone;
  } catch (failure) {
    supervision.modes = [];
  }
  document.getElementById("spy-phone-field").hidden = supervision.modes.length === 0;
  const phone = supervision.phone;
  document.getElementById("spy-phone").value =
    phone ? phone.extension || phone.external_number || "" : "";
}

function start() {
  floor.rev = 0;
  openStream("/api/monitor/events", {
    full: (frame, source) => applyFrame("full", frame, source),
    delta: (frame, source) => applyFrame("delta", frame, source),
  });
}

async function main() {
  const session = await loadSession();
  if (!session.authenticated) {
    toLogin();
    return;
  }
  fillHeader(session.user);
  await loadSupervision();
  start();
  setInterval(tick, 1000);
}

main();
