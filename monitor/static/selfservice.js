// The public self-service page: runs one dialog script without an agent. The visitor's run
// is named only by an HttpOnly cookie the server sets; state-changing requests carry the
// double-submit CSRF token from /api/session, like the sign-in page.
import { api, ApiError, loadSession } from "/static/common.js";
import { renderRun } from "/static/script-pane.js";

const scriptId = decodeURIComponent(location.pathname.replace(/^\/self-service\//, ""));
const base = `/api/self-service/${encodeURIComponent(scriptId)}`;

function showError(failure) {
  const line = document.getElementById("ss-error");
  line.textContent = failure instanceof ApiError ? failure.message : "The server cannot be reached.";
  line.hidden = false;
}

function show(data) {
  document.getElementById("ss-error").hidden = true;
  document.getElementById("ss-title").textContent = data.script.title;
  document.title = data.script.title;
  const intro = document.getElementById("ss-intro");
  const holder = document.getElementById("ss-run");
  const again = document.getElementById("ss-again");
  if (!data.run) {
    intro.hidden = false;
    holder.hidden = true;
    again.hidden = true;
    return;
  }
  intro.hidden = true;
  holder.hidden = false;
  renderRun(holder, data, {
    answer: async (step, value) => show(await api("POST", `${base}/answer`, { step, value })),
    back: async () => show(await api("POST", `${base}/back`)),
  }, { forAgent: false });
  again.hidden = data.run.status === "waiting" || data.run.status === "acting";
}

async function start() {
  try {
    show(await api("POST", `${base}/start`));
  } catch (failure) {
    showError(failure);
  }
}

async function main() {
  await loadSession(); // the CSRF token for our POSTs
  document.getElementById("ss-start").addEventListener("click", start);
  document.getElementById("ss-restart").addEventListener("click", start);
  try {
    show(await api("GET", base));
  } catch (failure) {
    showError(failure);
  }
}

main();
