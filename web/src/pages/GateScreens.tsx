// In SaaS mode: sign in, accept the terms, or verify the e-mail before the app shows.

import { useEffect, useState, type ReactNode } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, loginUrl } from "../api/endpoints";
import { useAppConfig } from "../app/config";
import { gateFor, onGate, type Gate } from "../app/gate";
import { ErrorNotice } from "../components/ErrorNotice";
import { LogoutButton } from "../components/LogoutButton";

function here(): string {
  return window.location.pathname + window.location.search;
}

/** Where to go once past the gate: the login sends people to `/accept-tos?redirect_url=`. */
function afterGate(): string {
  if (window.location.pathname === "/accept-tos") {
    return new URLSearchParams(window.location.search).get("redirect_url") || "/";
  }
  return here();
}

function LoginScreen() {
  return (
    <section className="gate" aria-labelledby="gate-title">
      <h1 id="gate-title">Sign in</h1>
      <p>Sign in to see your conversations and settings.</p>
      <a className="button primary" href={loginUrl(here())}>
        Sign in
      </a>
    </section>
  );
}

function TosScreen() {
  const accept = useMutation({
    mutationFn: () => api.acceptTos(afterGate()),
    // A full load: the session cookie now says the terms are accepted.
    onSuccess: (res) => window.location.assign(res.redirect_url || "/"),
  });
  return (
    <section className="gate" aria-labelledby="gate-title">
      <h1 id="gate-title">Terms of service</h1>
      <p>Please read and accept the terms of service to use this server.</p>
      <ErrorNotice error={accept.error} />
      <button type="button" className="primary" disabled={accept.isPending} onClick={() => accept.mutate()}>
        {accept.isPending ? "Accepting…" : "I accept the terms"}
      </button>
      <LogoutButton />
    </section>
  );
}

function EmailScreen() {
  return (
    <section className="gate" aria-labelledby="gate-title">
      <h1 id="gate-title">Verify your e-mail</h1>
      <p>
        Your e-mail address is not verified yet. Open the message your identity provider sent
        you, follow its link, then reload this page.
      </p>
      <button type="button" onClick={() => window.location.reload()}>
        I verified it, reload
      </button>
      <LogoutButton />
    </section>
  );
}

export function GateScreens({ children }: { children: ReactNode }) {
  const config = useAppConfig();
  const [gate, setGate] = useState<Gate>(undefined);

  useEffect(() => onGate(setGate), []);

  if (config.isPending) return <p className="loading">Loading…</p>;
  // In SaaS mode even the config needs a session that passed the gates.
  const shown = gate ?? (config.isError ? gateFor(config.error, true) : undefined);
  const screen = { login: <LoginScreen />, tos: <TosScreen />, email: <EmailScreen /> };
  if (shown) return <main id="main">{screen[shown]}</main>;
  if (config.isError) {
    return (
      <main id="main" className="gate">
        <ErrorNotice error={config.error} onRetry={() => config.refetch()} />
      </main>
    );
  }
  return <>{children}</>;
}
