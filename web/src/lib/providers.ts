// `POST /api/add-git-providers` replaces the whole map of provider tokens; an entry without
// a token keeps the stored one. So changing one provider means sending every other stored
// provider without its token, plus the change.

export const PROVIDERS = [
  { id: "github", label: "GitHub", defaultHost: "github.com" },
  { id: "gitlab", label: "GitLab", defaultHost: "gitlab.com" },
  { id: "bitbucket", label: "Bitbucket", defaultHost: "bitbucket.org" },
] as const;

export type TokenMap = Record<string, { token?: string; host?: string | null }>;

/** `stored` is `provider_tokens_set` from the settings: provider -> host (or null). */
export function setTokenPayload(
  stored: Record<string, string | null> | null | undefined,
  provider: string,
  token: string,
  host: string | null,
): TokenMap {
  const out: TokenMap = {};
  for (const [name, storedHost] of Object.entries(stored ?? {})) out[name] = { host: storedHost };
  out[provider] = { token, host };
  return out;
}

export function removeTokenPayload(
  stored: Record<string, string | null> | null | undefined,
  provider: string,
): TokenMap {
  const out: TokenMap = {};
  for (const [name, storedHost] of Object.entries(stored ?? {})) {
    if (name !== provider) out[name] = { host: storedHost };
  }
  return out;
}
