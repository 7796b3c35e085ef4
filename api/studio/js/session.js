// The signed-in user. The access token lives in this tab's sessionStorage (gone with the
// tab, never in a cookie, so no request can carry it without the page's own code) and
// in the api module, which puts it in the Authorization header.

import { getJson, request, setToken, whenUnauthorized } from "./api.js";

const KEY = "fractal-studio-session";

export class Session {
  constructor() {
    this.user = null; // { username, expiresAt }
    this.listeners = [];
    whenUnauthorized(() => this.forget("Your session ended: sign in again."));
    const saved = sessionStorage.getItem(KEY);
    if (saved) {
      try {
        const { token, username, expiresAt } = JSON.parse(saved);
        if (expiresAt > Date.now()) {
          setToken(token);
          this.user = { username, expiresAt };
        }
      } catch {
        sessionStorage.removeItem(KEY);
      }
    }
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  notify(message) {
    for (const listener of this.listeners) listener(this.user, message);
  }

  async logIn(username, password) {
    const response = await request("POST", "/v1/auth/token", { form: { username, password } });
    const { access_token: token, expires_in: lifetime } = await response.json();
    setToken(token);
    const expiresAt = Date.now() + lifetime * 1000;
    sessionStorage.setItem(KEY, JSON.stringify({ token, username, expiresAt }));
    this.user = { username, expiresAt };
    this.notify();
  }

  async signUp(username, password) {
    await request("POST", "/v1/auth/signup", { json: { username, password } });
    await this.logIn(username, password);
  }

  logOut() {
    this.forget();
  }

  forget(message) {
    setToken(null);
    sessionStorage.removeItem(KEY);
    const had = this.user !== null;
    this.user = null;
    if (had) this.notify(message);
  }

  async deleteAccount() {
    await request("DELETE", "/v1/users/me");
    this.forget();
  }

  async check() {
    if (!this.user) return;
    try {
      await getJson("/v1/users/me");
    } catch {
      // a 401 already signed out through whenUnauthorized
    }
  }
}
