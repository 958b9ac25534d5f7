// Custom secrets: environment variables in the agent's shell. Values are write-only.

import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { SecretName } from "../api/types";
import { ErrorNotice, SuccessNotice } from "../components/ErrorNotice";

const NAME_RULE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function AddSecret() {
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const [description, setDescription] = useState("");
  const [nameError, setNameError] = useState<string | undefined>();
  const add = useMutation({
    mutationFn: () => api.addSecret(name, value, description.trim() || undefined),
    onSuccess: () => {
      setName("");
      setValue("");
      setDescription("");
      queryClient.invalidateQueries({ queryKey: ["secrets"] });
    },
  });
  return (
    <form
      className="card"
      aria-labelledby="add-secret-title"
      onSubmit={(e) => {
        e.preventDefault();
        if (!NAME_RULE.test(name)) {
          setNameError("Use letters, digits and _, not starting with a digit (it becomes an environment variable).");
          return;
        }
        setNameError(undefined);
        add.mutate();
      }}
    >
      <h2 id="add-secret-title">Add a secret</h2>
      <div className="row">
        <label>
          Name
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="MY_TOKEN"
            required
            aria-invalid={nameError ? true : undefined}
            aria-describedby={nameError ? "secret-name-error" : undefined}
          />
        </label>
        <label>
          Value
          <input type="password" autoComplete="off" value={value} onChange={(e) => setValue(e.target.value)} required />
        </label>
      </div>
      {nameError && (
        <p id="secret-name-error" role="alert" className="notice notice-error">
          {nameError}
        </p>
      )}
      <label>
        Description <span className="hint">(optional)</span>
        <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <ErrorNotice error={add.error} />
      {add.isSuccess && <SuccessNotice>Secret added.</SuccessNotice>}
      <button type="submit" className="primary" disabled={add.isPending}>
        {add.isPending ? "Adding…" : "Add secret"}
      </button>
    </form>
  );
}

function SecretRow({ secret }: { secret: SecretName }) {
  const queryClient = useQueryClient();
  const [mode, setMode] = useState<"view" | "edit" | "delete">("view");
  const [name, setName] = useState(secret.name);
  const [description, setDescription] = useState(secret.description ?? "");
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["secrets"] });
  const update = useMutation({
    mutationFn: () => api.updateSecret(secret.name, name, description),
    onSuccess: () => {
      setMode("view");
      refresh();
    },
  });
  const remove = useMutation({ mutationFn: () => api.deleteSecret(secret.name), onSuccess: refresh });
  return (
    <li className="secret-row">
      {mode === "edit" ? (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            update.mutate();
          }}
        >
          <label>
            Name
            <input autoFocus value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Description
            <input value={description} onChange={(e) => setDescription(e.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={update.isPending}>
            Save
          </button>
          <button type="button" onClick={() => setMode("view")}>
            Cancel
          </button>
        </form>
      ) : (
        <div>
          <code className="secret-name">{secret.name}</code>
          {secret.description && <span className="hint"> {secret.description}</span>}
        </div>
      )}
      {mode === "view" && (
        <div className="row-actions">
          <button type="button" onClick={() => setMode("edit")} aria-label={`Rename ${secret.name}`}>
            Rename
          </button>
          <button type="button" onClick={() => setMode("delete")} aria-label={`Delete ${secret.name}`}>
            Delete
          </button>
        </div>
      )}
      {mode === "delete" && (
        <div className="row-actions" role="group" aria-label={`Confirm deleting ${secret.name}`}>
          <span>Delete {secret.name}?</span>
          <button type="button" className="danger" autoFocus onClick={() => remove.mutate()} disabled={remove.isPending}>
            Yes, delete
          </button>
          <button type="button" onClick={() => setMode("view")}>
            Keep it
          </button>
        </div>
      )}
      <ErrorNotice error={update.error ?? remove.error} />
    </li>
  );
}

export function SecretsPage() {
  const secrets = useQuery({ queryKey: ["secrets"], queryFn: api.secrets });
  const list = secrets.data?.custom_secrets ?? [];
  return (
    <div className="page narrow">
      <h1>Secrets</h1>
      <p className="hint">
        Secrets are environment variables in the agent's shell, hidden as &lt;secret_hidden&gt; in every event.
        Their values cannot be read back.
      </p>
      <AddSecret />
      <section className="card" aria-labelledby="secret-list-title">
        <h2 id="secret-list-title">Your secrets</h2>
        {secrets.isPending && <p className="loading">Loading…</p>}
        <ErrorNotice error={secrets.error} onRetry={() => secrets.refetch()} />
        {secrets.isSuccess && list.length === 0 && <p className="empty">No secrets yet.</p>}
        <ul className="secret-list" aria-label="Secrets">
          {list.map((s) => (
            <SecretRow key={s.name} secret={s} />
          ))}
        </ul>
      </section>
    </div>
  );
}
