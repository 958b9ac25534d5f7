// SaaS mode: API keys for programs. A new key is shown once, right after it is created.

import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { ApiKey } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { timeAgo } from "../lib/time";

function KeyRow({ apiKey }: { apiKey: ApiKey }) {
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const revoke = useMutation({
    mutationFn: () => api.deleteApiKey(apiKey.id),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["api-keys"] }),
  });
  const label = apiKey.name || apiKey.prefix;
  return (
    <li className="secret-row">
      <div>
        <strong>{apiKey.name || "Unnamed key"}</strong> <code>{apiKey.prefix}…</code>
        <span className="hint">
          {" "}
          created {timeAgo(apiKey.created_at)}
          {apiKey.last_used_at ? `, last used ${timeAgo(apiKey.last_used_at)}` : ", never used"}
        </span>
      </div>
      {confirming ? (
        <div className="row-actions" role="group" aria-label={`Confirm revoking ${label}`}>
          <span>Programs using it will stop working.</span>
          <button type="button" className="danger" autoFocus onClick={() => revoke.mutate()}>
            Yes, revoke
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" onClick={() => setConfirming(true)} aria-label={`Revoke ${label}`}>
          Revoke
        </button>
      )}
      <ErrorNotice error={revoke.error} />
    </li>
  );
}

export function ApiKeysPage() {
  const queryClient = useQueryClient();
  const keys = useQuery({ queryKey: ["api-keys"], queryFn: api.apiKeys });
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: () => api.createApiKey(name.trim()),
    onSuccess: () => {
      setName("");
      queryClient.invalidateQueries({ queryKey: ["api-keys"] });
    },
  });
  return (
    <div className="page narrow">
      <h1>API keys</h1>
      <form
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <h2>Create a key</h2>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="CI pipeline" />
        </label>
        <ErrorNotice error={create.error} />
        {create.data?.key && (
          <div role="status" className="notice notice-ok">
            <p>Copy this key now; it will not be shown again:</p>
            <code className="new-key" tabIndex={0}>
              {create.data.key}
            </code>
          </div>
        )}
        <button type="submit" className="primary" disabled={create.isPending}>
          Create key
        </button>
      </form>
      <section className="card" aria-labelledby="keys-title">
        <h2 id="keys-title">Your keys</h2>
        {keys.isPending && <p className="loading">Loading…</p>}
        <ErrorNotice error={keys.error} onRetry={() => keys.refetch()} />
        {keys.isSuccess && keys.data.length === 0 && <p className="empty">No API keys.</p>}
        <ul className="secret-list">
          {(keys.data ?? []).map((k) => (
            <KeyRow key={k.id} apiKey={k} />
          ))}
        </ul>
      </section>
    </div>
  );
}
