// The single-page client: #/ (avatars), #/new, #/setup/ID/STEP, #/chat/ID. Every view runs inside an error boundary.
import { h } from "./dom.js";
import { api, ApiError } from "./api.js";
import { renderAvatars, renderSignIn } from "./views/avatars.js";
import { renderWizard } from "./views/wizard.js";
import { renderChat } from "./views/chat.js";

interface Live {
  dispose(): void;
}

const root = document.getElementById("app") as HTMLElement;
let chat: Live | null = null; // the view holding a live session (chat, system test), closed on navigation
let generation = 0;

function go(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

function showFailure(error: unknown): void {
  const message = error instanceof ApiError ? error.text : error instanceof Error ? error.message : String(error);
  root.replaceChildren(h("section", { class: "failure", role: "alert" },
    h("h1", {}, "Something went wrong"),
    h("p", {}, message),
    h("button", { type: "button", id: "retry", onclick: () => void route() }, "Retry"),
    " ", h("a", { href: "#/" }, "Back to the avatars")));
}

async function route(): Promise<void> {
  chat?.dispose();
  chat = null;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const mine = ++generation;
  const stale = () => mine !== generation; // a newer navigation started while this one waited
  try {
    try {
      await api.me();
      if (stale()) return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        renderSignIn(root);
        return;
      }
      throw error;
    }
    if (parts[0] === "new") chat = renderWizard(root, null, 0, go);
    else if (parts[0] === "setup" && parts[1]) {
      const avatar = await api.avatar(parts[1]);
      if (stale()) return;
      localStorage.setItem("avatar.current", avatar.id);
      chat = renderWizard(root, avatar, Math.max(0, Math.min(3, Number(parts[2] ?? 0) || 0)), go);
    } else if (parts[0] === "chat" && parts[1]) {
      const avatar = await api.avatar(parts[1]);
      if (stale()) return;
      localStorage.setItem("avatar.current", avatar.id);
      if (!avatar.photo) {
        go(`#/setup/${avatar.id}/1`);
        return;
      }
      chat = renderChat(root, avatar);
    } else {
      await renderAvatars(root, go, stale);
    }
    // When the view can be used (tests and docs/measurements.md read it): milliseconds since navigation start.
    (window as unknown as { avatarInteractiveAt: number }).avatarInteractiveAt = performance.now();
    const heading = root.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      if (!root.querySelector("[autofocus], input:focus")) heading.focus({ preventScroll: true });
    }
  } catch (error) {
    if (!stale()) showFailure(error);
  }
}

window.addEventListener("hashchange", () => void route());
// Errors outside a view's own handling: a banner with the message and a retry, never a blank page.
function banner(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const box = document.getElementById("global-error") ?? document.body.insertBefore(h("div", { id: "global-error", class: "errors", role: "alert" }), document.body.firstChild);
  box.replaceChildren(h("div", { class: "error" }, h("strong", {}, "Something went wrong: "), message, " ",
    h("button", { type: "button", class: "link", onclick: () => { box.replaceChildren(); void route(); } }, "Retry")));
}
window.addEventListener("error", (event) => banner(event.error ?? event.message));
window.addEventListener("unhandledrejection", (event) => banner(event.reason));
void route();
