// SaaS sign-in gates. Any API answer can say the session is missing (401), the terms are
// not accepted (403 `tos_not_accepted`) or the e-mail is not verified (403
// `email_not_verified`); the app then shows the matching screen instead of the page.

import { ApiError } from "../api/client";

export type Gate = "login" | "tos" | "email" | undefined;

/** The gate an error calls for, if any (only in SaaS mode does a 401 mean "sign in"). */
export function gateFor(error: unknown, saas: boolean): Gate {
  if (!(error instanceof ApiError)) return undefined;
  if (error.code === "tos_not_accepted") return "tos";
  if (error.code === "email_not_verified") return "email";
  if (error.status === 401 && saas) return "login";
  return undefined;
}

type Listener = (gate: Gate) => void;
const listeners = new Set<Listener>();

/** Reports an error; listeners hear about the gate it calls for. */
export function reportGate(gate: Gate): void {
  if (gate) for (const listener of listeners) listener(gate);
}

export function onGate(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
