// The settings form's rules. `POST /api/settings` replaces the stored settings (except the
// LLM key, model and base URL, which are kept when left out), so the form sends back every
// stored field with its own changes on top, and never the read-only `*_set` flags.

import type { Settings, SettingsResponse } from "../api/types";

/** What the person did with the API key field. */
export type KeyChange = { kind: "keep" } | { kind: "set"; value: string } | { kind: "remove" };

/** Fields of `GET /api/settings` that must not be sent back. */
const READ_ONLY = [
  "llm_api_key_set",
  "search_api_key_set",
  "provider_tokens_set",
  "secrets_store",
  "llm_api_key",
  "search_api_key",
  "sandbox_api_key",
  "email",
  "email_verified",
];

export function settingsPayload(
  stored: SettingsResponse | undefined,
  changes: Settings,
  key: KeyChange,
): Settings & { llm_api_key?: string } {
  const base: Record<string, unknown> = { ...(stored ?? {}) };
  for (const field of READ_ONLY) delete base[field];
  const payload: Settings & { llm_api_key?: string } = { ...base, ...changes };
  if (key.kind === "set") payload.llm_api_key = key.value;
  // A blank key clears the stored one; leaving the field out keeps it.
  if (key.kind === "remove") payload.llm_api_key = "";
  return payload;
}

/** A number field's value, or null when blank; NaN stays invalid for the form to report. */
export function optionalNumber(text: string): number | null {
  const trimmed = text.trim();
  return trimmed === "" ? null : Number(trimmed);
}
