// The avatar list: talk, set up (edit), delete with confirmation.
import { h } from "../dom.js";
import { api, ApiError, Avatar } from "../api.js";

export async function renderAvatars(root: HTMLElement, go: (hash: string) => void, stale: () => boolean = () => false): Promise<void> {
  const avatars = await api.avatars();
  if (stale()) return;
  const errors = h("div", { class: "form-errors", role: "alert" });
  const list = h("ul", { class: "avatar-list", id: "avatar-list" }, ...avatars.map(card));
  root.replaceChildren(h("section", { "aria-labelledby": "avatars-title" },
    h("h1", { id: "avatars-title" }, "Your avatars"),
    avatars.length === 0 ? h("p", {}, "No avatar yet. Create one: a photo, a few voice samples if you have them, a persona and the consent statement.") : null,
    errors, list,
    h("p", {}, h("a", { href: "#/new", class: "button", id: "new-avatar" }, "+ New avatar"))));

  function card(avatar: Avatar): HTMLElement {
    const item: HTMLLIElement = h("li", { class: "avatar-card", "data-id": avatar.id },
      avatar.photo ? h("img", { src: avatar.photo.previewUrl, alt: "", width: 96, height: 96 }) : h("div", { class: "no-photo", "aria-hidden": "true" }, "?"),
      h("div", {},
        h("h2", {}, avatar.name),
        h("p", { class: "muted" }, [avatar.age !== undefined ? `${avatar.age} years` : "", avatar.interests.join(", "), avatar.childSafe ? "child-safe" : ""].filter(Boolean).join(" · ")),
        h("div", { class: "actions" },
          avatar.photo
            ? h("a", { class: "button", href: `#/chat/${avatar.id}` }, `Talk to ${avatar.name}`)
            : h("a", { class: "button", href: `#/setup/${avatar.id}/1` }, "Add a photo"),
          h("a", { class: "button secondary", href: `#/setup/${avatar.id}/0` }, "Edit"),
          h("button", { type: "button", class: "danger", onclick: () => void remove(avatar, item), "aria-label": `Delete ${avatar.name}` }, "Delete"))));
    return item;
  }

  async function remove(avatar: Avatar, item: HTMLElement): Promise<void> {
    if (!window.confirm(`Delete ${avatar.name}? Its photo, voice samples, videos, conversation and memory are deleted for good.`)) return;
    try {
      await api.remove(avatar.id);
      item.remove();
      if (localStorage.getItem("avatar.current") === avatar.id) localStorage.removeItem("avatar.current");
    } catch (error) {
      errors.replaceChildren(h("p", { class: "error" }, error instanceof ApiError ? error.text : String(error)));
    }
  }
  void go;
}

export function renderSignIn(root: HTMLElement): void {
  const token = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "avt_…", "aria-describedby": "token-help" });
  const form = h("form", { id: "sign-in" },
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), token),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (token.value.trim()) location.href = `/login?token=${encodeURIComponent(token.value.trim())}`;
  });
  root.replaceChildren(h("section", { "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", { id: "token-help" }, "Open the sign-in link that `avatar serve` printed when it started (http://127.0.0.1:8080/login?token=…), or paste a token here. Make a new token with `avatar token create`."),
    form));
}
