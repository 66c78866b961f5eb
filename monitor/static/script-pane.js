// Dialog scripts in the browser: the agent desktop's script pane, and the step renderer the
// public self-service page shares. A step arrives as the server's StepView JSON; everything
// from it goes into the page as text (textContent, text nodes, attributes), never as HTML.
import { api, ApiError, el, setText } from "/static/common.js";

const KIND_WORDS = { question: "Question", information: "Information", end: "End" };
const STATUS_WORDS = {
  waiting: "in progress",
  acting: "working…",
  completed: "completed",
  abandoned: "abandoned",
  failed: "stopped",
};

/** Paragraphs of a step text (the server separates them with blank lines). */
function paragraphs(text, cls) {
  return String(text || "")
    .split(/\n\s*\n/)
    .filter((part) => part.trim() !== "")
    .map((part) => el("p", { class: cls }, part));
}

/** The answer field(s) of a question; `submit(value)` sends an answer. */
function answerControls(view, submit) {
  const type = view.answer_type;
  if (view.kind === "information") {
    return [el("button", { type: "submit", id: "script-next", class: "next" }, "Next")];
  }
  if (type === "choice") {
    return [
      el(
        "div",
        { class: "choices", role: "group", "aria-label": "choices" },
        ...view.choices.map((choice) =>
          el(
            "button",
            {
              type: "button",
              class: view.prefill === choice.value ? "choice chosen" : "choice",
              dataset: { value: choice.value },
              onclick: () => submit(choice.value),
            },
            choice.label,
          ),
        ),
      ),
    ];
  }
  if (type === "yesno") {
    const yes = view.prefill === true;
    const no = view.prefill === false;
    return [
      el(
        "div",
        { class: "choices", role: "group", "aria-label": "yes or no" },
        el("button", { type: "button", id: "script-yes", class: yes ? "choice chosen" : "choice",
          onclick: () => submit(true) }, "Yes"),
        el("button", { type: "button", id: "script-no", class: no ? "choice chosen" : "choice",
          onclick: () => submit(false) }, "No"),
      ),
    ];
  }
  let input;
  if (type === "text") {
    input = el("textarea", {
      id: "script-answer",
      rows: 3,
      maxlength: view.max_length || 2000,
      "aria-label": "answer",
    });
  } else if (type === "number") {
    input = el("input", {
      id: "script-answer",
      type: "number",
      inputmode: view.integer ? "numeric" : "decimal",
      step: view.integer ? "1" : "any",
      min: view.min ?? undefined,
      max: view.max ?? undefined,
      "aria-label": "answer",
    });
  } else {
    input = el("input", {
      id: "script-answer",
      type: "date",
      min: view.min_date || undefined,
      max: view.max_date || undefined,
      "aria-label": "answer",
    });
  }
  if (view.prefill !== null && view.prefill !== undefined) input.value = String(view.prefill);
  return [input, el("button", { type: "submit", id: "script-next", class: "next" }, "Next")];
}

/** The value of the free-entry field of a form, as the server takes it. */
function enteredValue(form) {
  const input = form.querySelector("#script-answer");
  return input ? input.value : null;
}

/**
 * Render one run into `root`: its step (text, answer field), Back, Skip and the end; for
 * agents also the hint, the disposition and the results of the actions the last answer ran.
 * `handlers.answer(step, value)` and `handlers.back()` return promises; their errors are shown
 * under the step.
 */
export function renderRun(root, data, handlers, { forAgent = true } = {}) {
  const view = data.view;
  const run = data.run;
  const error = el("p", { id: "script-error", class: "error", role: "alert", hidden: true });
  const fail = (failure) => {
    error.textContent = failure instanceof ApiError ? failure.message : "The server cannot be reached.";
    error.hidden = false;
  };
  const submit = async (value) => {
    error.hidden = true;
    for (const button of root.querySelectorAll("button")) button.disabled = true;
    try {
      await handlers.answer(view.step, value);
    } catch (failure) {
      fail(failure);
      for (const button of root.querySelectorAll("button")) button.disabled = false;
    }
  };
  const parts = [
    el(
      "div",
      { class: "script-head" },
      el("span", { id: "script-title", class: "script-title" }, run.title),
      el("span", { id: "script-status", class: `badge run-${run.status}` },
        STATUS_WORDS[run.status] || run.status),
    ),
  ];
  const ended = run.status !== "waiting" && run.status !== "acting";
  parts.push(
    el("h3", { id: "script-step-title", dataset: { step: view.step, kind: view.kind } },
      view.title || KIND_WORDS[view.kind] || view.step),
  );
  const text = el("div", { id: "script-text", class: "script-text" }, ...paragraphs(view.text));
  parts.push(text);
  if (forAgent && view.hint) {
    parts.push(el("div", { id: "script-hint", class: "script-hint" }, ...paragraphs(view.hint)));
  }
  if (ended) {
    parts.push(
      el("p", { id: "script-end", class: "script-end" },
        run.status === "completed"
          ? (forAgent && run.disposition ? `Finished: ${run.disposition}.` : "Done. Thank you!")
          : `This run was ${STATUS_WORDS[run.status] || run.status}.`),
    );
  } else {
    const form = el("form", { id: "script-form", class: "script-form", novalidate: true });
    form.append(...answerControls(view, submit));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(view.kind === "information" ? null : enteredValue(form));
    });
    const row = el("div", { class: "script-moves" });
    if (view.can_go_back) {
      row.append(el("button", {
        type: "button", id: "script-back", class: "quiet",
        onclick: async () => {
          error.hidden = true;
          try {
            await handlers.back();
          } catch (failure) {
            fail(failure);
          }
        },
      }, "Back"));
    }
    if (view.kind === "question" && !view.required) {
      row.append(el("button", { type: "button", id: "script-skip", class: "quiet",
        onclick: () => submit(null) }, "Skip"));
    }
    parts.push(form, row);
  }
  parts.push(error);
  if (data.actions && data.actions.length) {
    parts.push(
      el(
        "ul",
        { id: "script-actions", class: "script-actions" },
        ...data.actions.map((action) =>
          el(
            "li",
            { class: `action action-${action.result.status}` },
            el("span", { class: "action-name" }, action.name),
            " ",
            el("span", { class: "badge" }, action.result.status),
            action.result.message ? el("span", { class: "muted small" }, ` ${action.result.message}`) : null,
          ),
        ),
      ),
    );
  }
  root.replaceChildren(...parts);
  const field = root.querySelector("#script-answer");
  if (field) field.focus();
}

/**
 * The desktop's pane: follows the agent's contact, starts (or resumes) the queue's script for
 * it once the customer lookup is done, and lets the agent answer and step back.
 */
export function attachScriptPane(section) {
  const body = el("div", { id: "script-body" });
  section.replaceChildren(el("h2", { id: "script-pane-title" }, "Dialog script"), body);
  let contactId = null;
  let runId = null;

  const show = (data) => {
    runId = data.run.id;
    renderRun(body, data, {
      answer: async (step, value) => {
        show(await api("POST", `/api/scripts/runs/${encodeURIComponent(runId)}/answer`,
          { step, value }));
      },
      back: async () => {
        show(await api("POST", `/api/scripts/runs/${encodeURIComponent(runId)}/back`));
      },
    });
  };

  const start = async (contact) => {
    body.replaceChildren(el("p", { class: "muted" }, "Opening the script…"));
    try {
      show(await api("POST", `/api/scripts/contacts/${encodeURIComponent(contact.id)}`));
    } catch (failure) {
      const message = failure instanceof ApiError ? failure.message : "The server cannot be reached.";
      body.replaceChildren(el("p", { id: "script-none", class: "muted" }, message));
      if (!(failure instanceof ApiError)) contactId = null; // try again with the next frame
    }
  };

  return {
    onContact(contact) {
      if (!contact) {
        section.hidden = true;
        contactId = null;
        runId = null;
        return;
      }
      section.hidden = false;
      if (contact.id === contactId) return;
      // Wait for the screen pop: the run starts for the customer it finds.
      if (contact.pop && contact.pop.status === "pending") {
        setText(body, "Looking up the caller…");
        return;
      }
      contactId = contact.id;
      runId = null;
      start(contact);
    },
  };
}
