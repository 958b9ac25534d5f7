// Git provider tokens (used to clone repositories and open pull requests): set or remove.

import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import { ErrorNotice, SuccessNotice } from "../components/ErrorNotice";
import { PROVIDERS, removeTokenPayload, setTokenPayload } from "../lib/providers";

type Stored = Record<string, string | null>;

function ProviderCard({ provider, stored }: { provider: (typeof PROVIDERS)[number]; stored: Stored }) {
  const queryClient = useQueryClient();
  const [token, setToken] = useState("");
  const [host, setHost] = useState("");
  const isSet = provider.id in stored;
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["settings"] });
  const save = useMutation({
    mutationFn: () => api.setProviderTokens(setTokenPayload(stored, provider.id, token, host.trim() || null)),
    onSuccess: () => {
      setToken("");
      refresh();
    },
  });
  const remove = useMutation({
    mutationFn: () => api.setProviderTokens(removeTokenPayload(stored, provider.id)),
    onSuccess: refresh,
  });
  const titleId = `provider-${provider.id}`;
  return (
    <form
      className="card"
      aria-labelledby={titleId}
      onSubmit={(e) => {
        e.preventDefault();
        if (token.trim()) save.mutate();
      }}
    >
      <h2 id={titleId}>{provider.label}</h2>
      <p className="hint" data-testid={`${provider.id}-status`}>
        {isSet ? `A token is stored${stored[provider.id] ? ` for ${stored[provider.id]}` : ""}.` : "No token stored."}
      </p>
      <div className="row">
        <label>
          {isSet ? "Replace token" : "Token"}
          <input type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} />
        </label>
        <label>
          Host <span className="hint">(optional, for self-hosted)</span>
          <input value={host} onChange={(e) => setHost(e.target.value)} placeholder={provider.defaultHost} />
        </label>
      </div>
      <ErrorNotice error={save.error ?? remove.error} />
      {save.isSuccess && <SuccessNotice>Token saved.</SuccessNotice>}
      <div className="row-actions">
        <button type="submit" className="primary" disabled={save.isPending || !token.trim()}>
          Save token
        </button>
        {isSet && (
          <button type="button" className="danger" onClick={() => remove.mutate()} disabled={remove.isPending}>
            Remove token
          </button>
        )}
      </div>
    </form>
  );
}

export function GitProvidersPage() {
  const settings = useQuery({
    queryKey: ["settings"],
    queryFn: api.settingsOrNone,
  });
  const stored: Stored = settings.data?.provider_tokens_set ?? {};
  return (
    <div className="page narrow">
      <h1>Git providers</h1>
      <p className="hint">
        Tokens let the agent clone your repositories and push branches. They are stored encrypted and never shown again.
      </p>
      {settings.isPending && <p className="loading">Loading…</p>}
      <ErrorNotice error={settings.error} onRetry={() => settings.refetch()} />
      {settings.isSuccess && PROVIDERS.map((p) => <ProviderCard key={p.id} provider={p} stored={stored} />)}
    </div>
  );
}
