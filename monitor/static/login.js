// The sign-in page: fetch a sign-in CSRF token, post the credentials, go to the user's home.
import { api, ApiError, loadSession, setCsrfToken } from "/static/common.js";

/** Only same-site paths are followed after sign-in (no open redirect). */
function safeNext() {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\")
    ? next
    : null;
}

async function main() {
  const session = await loadSession();
  if (session.authenticated) {
    location.replace(safeNext() || session.user.home);
    return;
  }
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = document.getElementById("sign-in");
    button.disabled = true;
    try {
      const answer = await api("POST", "/api/login", {
        name: document.getElementById("name").value,
        password: document.getElementById("password").value,
      });
      setCsrfToken(answer.csrf_token);
      location.assign(safeNext() || answer.user.home);
    } catch (failure) {
      error.textContent =
        failure instanceof ApiError ? failure.message : "The server cannot be reached.";
      error.hidden = false;
      if (failure instanceof ApiError && failure.body && failure.body.error === "csrf-check-failed") {
        await loadSession();
      }
    } finally {
      button.disabled = false;
    }
  });
}

main();
