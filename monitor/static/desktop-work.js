// The agent desktop's wrap-up (disposition, "done"), voicemail list with playback, and the
// voicemail callback panel (listen, call back from one's phone, "Done").
import { api, DISPOSITIONS, el, notice, setText } from "/static/common.js";

let contactId = null;
const saved = new Map(); // contact id -> disposition saved for it
let callbackAsked = null; // the connected contact we last asked /api/desktop/callback about

async function sendWrapUp(body) {
  try {
    const answer = await api("POST", "/api/desktop/wrap-up", { contact_id: contactId, ...body });
    notice("");
    return answer;
  } catch (failure) {
    notice(failure.message, "error");
    return null;
  }
}

async function saveDisposition() {
  const disposition = document.getElementById("disposition").value;
  const answer = await sendWrapUp({ disposition });
  if (answer) {
    saved.set(contactId, disposition);
    setText(document.getElementById("disposition-state"), answer.stored
      ? `Saved: ${disposition}` : `Saved: ${disposition} (kept with the call when it ends)`);
  }
}

async function done() {
  const disposition = document.getElementById("disposition").value;
  const body = { done: true };
  if (saved.get(contactId) !== disposition) body.disposition = disposition;
  await sendWrapUp(body);
}

/** Show the wrap-up controls while the agent is on a contact or wrapping it up. */
export function onWrapUp(agent, contact) {
  onCallback(contact);
  const box = document.getElementById("wrap-up");
  const active = contact && ["connected", "wrap-up"].includes(contact.state);
  box.hidden = !active;
  if (!active) return;
  if (contact.id !== contactId) {
    contactId = contact.id;
    document.getElementById("disposition").value = DISPOSITIONS[0];
    setText(document.getElementById("disposition-state"), saved.has(contact.id)
      ? `Saved: ${saved.get(contact.id)}` : "");
  }
  // "Done" ends the wrap-up; during the call there is nothing to end yet.
  document.getElementById("wrap-done").disabled = agent.state !== "wrap-up";
}

/** Show the callback panel while the agent is on a voicemail callback (asked once per contact). */
export async function onCallback(contact) {
  const panel = document.getElementById("callback");
  if (!contact || contact.state !== "connected") {
    panel.hidden = true;
    callbackAsked = null;
    return;
  }
  if (contact.id === callbackAsked) return;
  callbackAsked = contact.id;
  let answer;
  try {
    answer = await api("GET", "/api/desktop/callback");
  } catch (failure) {
    notice(failure.message, "error");
    return;
  }
  const callback = answer.callback;
  if (!callback || callback.contact_id !== contact.id || callbackAsked !== contact.id) return;
  setText(document.getElementById("callback-number"), callback.number || "anonymous");
  const message = document.getElementById("callback-message");
  message.replaceChildren();
  if (callback.message) {
    const m = callback.message;
    const audio = el("audio", { class: "voicemail", controls: true, preload: "none",
      src: `/api/voicemail/${encodeURIComponent(m.id)}` });
    audio.addEventListener("play", () => markHeard(m, null), { once: true });
    message.append(el("span", { class: "muted small" },
      `Left ${new Date(m.recorded_at).toLocaleString()} in box ${m.box}, ${minutes(m.seconds)} `),
    audio);
  } else {
    message.append(el("span", { class: "muted small" }, "The message is no longer stored."));
  }
  const done = document.getElementById("callback-done");
  done.disabled = false;
  done.onclick = async () => {
    done.disabled = true;
    try {
      await api("POST", "/api/desktop/callback/done", { contact_id: callback.contact_id });
      notice("");
    } catch (failure) {
      done.disabled = false;
      notice(failure.message, "error");
    }
  };
  panel.hidden = false;
}

function minutes(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

async function markHeard(message, row) {
  if (message.heard) return;
  try {
    const mark = await api("POST", `/api/voicemail/${encodeURIComponent(message.id)}/heard`);
    message.heard = mark.heard;
    message.heard_at = mark.heard_at;
    if (!row) return;
    row.classList.remove("unheard");
    setText(row.querySelector(".heard"), "yes");
  } catch (failure) {
    notice(failure.message, "error");
  }
}

function messageRow(message) {
  const src = `/api/voicemail/${encodeURIComponent(message.id)}`;
  const listen = el("td", { class: "listen" });
  const row = el("tr", { class: message.heard ? "" : "unheard",
    dataset: { id: message.id, contact: message.contact_id, box: message.box } },
  el("td", {}, new Date(message.recorded_at).toLocaleString()),
  el("td", { class: "caller" }, message.caller || "anonymous"),
  el("td", {}, message.box),
  el("td", { class: "num" }, minutes(message.seconds)),
  el("td", { class: "heard" }, message.heard ? "yes" : "no"),
  listen);
  listen.append(el("button", {
    class: "play quiet", type: "button",
    onclick: () => {
      const audio = el("audio", { class: "voicemail", controls: true, preload: "auto", src });
      audio.addEventListener("play", () => markHeard(message, row), { once: true });
      listen.replaceChildren(audio);
      audio.play().catch(() => {}); // a browser may want a second click to play
    },
  }, "Play"));
  return row;
}

/** Load the agent's voicemail list (own box and their queues' boxes). */
export async function loadVoicemail() {
  try {
    const answer = await api("GET", "/api/voicemail");
    document.querySelector("#vm-list tbody").replaceChildren(...answer.messages.map(messageRow));
    setText(document.getElementById("vm-count"), answer.total
      ? `(${answer.total}, ${answer.unheard} new)` : "");
    document.getElementById("no-vm").hidden = answer.messages.length > 0;
  } catch (failure) {
    notice(failure.message, "error");
  }
}

/** Wire the wrap-up and voicemail controls once. */
export function attachWork() {
  document.getElementById("disposition").replaceChildren(
    ...DISPOSITIONS.map((d) => el("option", { value: d }, d)));
  document.getElementById("save-disposition").addEventListener("click", saveDisposition);
  document.getElementById("wrap-done").addEventListener("click", done);
  document.getElementById("vm-refresh").addEventListener("click", loadVoicemail);
  loadVoicemail();
  setInterval(loadVoicemail, 60000);
}
