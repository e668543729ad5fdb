// soctriage analyst console: row links, citation jumps, and the case assistant's streamed answers.
// No inline script anywhere (the pages' CSP allows only this file and htmx).
"use strict";

(function () {
  const csrf = () => document.body.dataset.csrf || "";

  // A queue row opens its case (links inside keep their own behaviour).
  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button, input, select, textarea")) {
      window.location.assign(row.dataset.href);
    }
  });

  // A citation opens its timeline entry, scrolls to it and marks it.
  function showEntry(seq) {
    const entry = document.getElementById("seq-" + seq);
    if (!entry) return false;
    const details = entry.querySelector("details");
    if (details) details.open = true;
    document.querySelectorAll(".entry.flash-target").forEach((el) => el.classList.remove("flash-target"));
    entry.classList.add("flash-target");
    entry.scrollIntoView({ block: "center", behavior: "smooth" });
    return true;
  }
  document.addEventListener("click", (event) => {
    const cite = event.target.closest("a.cite[data-seq]");
    if (!cite) return;
    if (showEntry(cite.dataset.seq)) {
      event.preventDefault();
      history.replaceState(null, "", "#seq-" + cite.dataset.seq);
    }
  });
  window.addEventListener("DOMContentLoaded", () => {
    const match = /^#seq-(\d+)$/.exec(window.location.hash);
    if (match) showEntry(match[1]);
  });

  // ---- the case assistant -------------------------------------------------------------------------------
  function message(kind, who, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    const body = document.createElement("div");
    body.className = "answer-text";
    body.textContent = text || "";
    div.append(label, body);
    return div;
  }

  function refresh(id) {
    const el = document.getElementById(id);
    if (!el || !window.htmx) return Promise.resolve();
    return htmx.ajax("GET", el.dataset.src, { target: "#" + id, swap: "outerHTML" });
  }

  async function ask(form) {
    const input = form.querySelector("textarea[name=question]");
    const button = form.querySelector("button[type=submit]");
    const question = input.value.trim();
    if (!question) return;
    const log = document.getElementById("chat-log");
    log.append(message("q", "you", question));
    const answer = message("a streaming", "assistant", "");
    log.append(answer);
    log.scrollTop = log.scrollHeight;
    input.value = "";
    button.disabled = true;
    const text = answer.querySelector(".answer-text");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf(), Accept: "text/event-stream" },
        body: new URLSearchParams({ question }),
        credentials: "same-origin",
      });
      if (!response.ok || !response.body) throw new Error("the console answered " + response.status);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          const payload = data ? JSON.parse(data) : {};
          if (name === "token") {
            text.textContent += payload.text;
            log.scrollTop = log.scrollHeight;
          } else if (name === "answer") {
            // The answer's citations may name entries written while answering (its lookups): bring the
            // timeline and the actions (a proposal is a pending action) up to date before showing it.
            await Promise.all([refresh("timeline"), refresh("actions"), refresh("integrity")]);
            text.innerHTML = payload.html; // server-escaped; only its [seq N] links are markup
            answer.classList.remove("streaming");
            answer.dataset.seq = payload.answer_seq;
            answer.setAttribute("data-testid", "chat-answer");
          } else if (name === "error") {
            answer.className = "msg error";
            text.textContent = payload.detail;
          }
        }
      }
    } catch (error) {
      answer.className = "msg error";
      text.textContent = "The question could not be sent: " + error.message;
    } finally {
      answer.classList.remove("streaming");
      button.disabled = false;
      log.scrollTop = log.scrollHeight;
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "chat-form") {
      event.preventDefault();
      ask(form);
    }
  });
  document.addEventListener("keydown", (event) => {
    const input = event.target;
    if (input.matches && input.matches("#chat-form textarea") && event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      input.form.requestSubmit();
    }
  });
  document.addEventListener("click", (event) => {
    const chip = event.target.closest("button[data-ask]");
    const form = document.getElementById("chat-form");
    if (chip && form) {
      form.querySelector("textarea").value = chip.dataset.ask;
      form.requestSubmit();
    }
  });
})();
