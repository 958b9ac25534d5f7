// LLM, agent and git identity settings. The API key is write-only: the page only ever
// knows whether one is stored.

import { useEffect, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { SettingsResponse } from "../api/types";
import { ErrorNotice, SuccessNotice } from "../components/ErrorNotice";
import { optionalNumber, settingsPayload, type KeyChange } from "../lib/settingsForm";
import { useAppConfig } from "../app/config";

interface Form {
  llm_model: string;
  llm_base_url: string;
  agent: string;
  max_iterations: string;
  max_budget_per_task: string;
  confirmation_mode: boolean;
  git_user_name: string;
  git_user_email: string;
}

function formFrom(s: SettingsResponse | undefined): Form {
  return {
    llm_model: s?.llm_model ?? "",
    llm_base_url: s?.llm_base_url ?? "",
    agent: s?.agent ?? "CodeActAgent",
    max_iterations: s?.max_iterations != null ? String(s.max_iterations) : "",
    max_budget_per_task: s?.max_budget_per_task != null ? String(s.max_budget_per_task) : "",
    confirmation_mode: s?.confirmation_mode ?? false,
    git_user_name: s?.git_user_name ?? "",
    git_user_email: s?.git_user_email ?? "",
  };
}

/** Model, base URL and the write-only API key. */
function LlmFields(props: {
  form: Form;
  set: <K extends keyof Form>(key: K, value: Form[K]) => void;
  models: string[];
  newKey: string;
  setNewKey: (key: string) => void;
  keySet: boolean;
  onRemoveKey: () => void;
}) {
  const { form, set, models, newKey, setNewKey, keySet, onRemoveKey } = props;
  return (
    <>
      <h2>LLM</h2>
      <label>
        Model
        <input
          list="model-options"
          value={form.llm_model}
          onChange={(e) => set("llm_model", e.target.value)}
          placeholder="provider/model, e.g. openai/gpt-4o"
          aria-describedby="model-hint"
        />
      </label>
      <datalist id="model-options">
        {models.map((m) => (
          <option key={m} value={m} />
        ))}
      </datalist>
      <p id="model-hint" className="hint">
        Pick from the list or type any model your endpoint serves.
      </p>
      <label>
        Base URL <span className="hint">(leave empty for OpenAI)</span>
        <input
          type="url"
          value={form.llm_base_url}
          onChange={(e) => set("llm_base_url", e.target.value)}
          placeholder="https://api.openai.com/v1"
        />
      </label>
      <div className="key-field">
        <label>
          API key
          <input
            type="password"
            autoComplete="new-password"
            value={newKey}
            onChange={(e) => setNewKey(e.target.value)}
            placeholder={keySet ? "A key is stored; type to replace it" : "No key stored"}
            aria-describedby="key-status"
          />
        </label>
        <p id="key-status" className="hint" data-testid="api-key-status">
          {keySet ? "An API key is stored. It is never shown." : "No API key is stored."}
        </p>
        {keySet && (
          <button type="button" className="danger" onClick={onRemoveKey}>
            Remove the stored key
          </button>
        )}
      </div>
    </>
  );
}

export function SettingsPage() {
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: ["settings"], queryFn: api.settingsOrNone });
  // A SaaS deployment may provide the LLM itself (`HIDE_LLM_SETTINGS`).
  const hideLlm = useAppConfig().data?.FEATURE_FLAGS?.HIDE_LLM_SETTINGS ?? false;
  const models = useQuery({ queryKey: ["models"], queryFn: api.models, staleTime: Infinity });
  const agents = useQuery({ queryKey: ["agents"], queryFn: api.agents, staleTime: Infinity });
  const [form, setForm] = useState<Form>(formFrom(undefined));
  const [newKey, setNewKey] = useState("");
  const [formError, setFormError] = useState<string | undefined>();

  useEffect(() => {
    if (settings.isSuccess) setForm(formFrom(settings.data));
  }, [settings.isSuccess, settings.data]);

  const save = useMutation({
    mutationFn: (key: KeyChange) => {
      const maxIterations = optionalNumber(form.max_iterations);
      const budget = optionalNumber(form.max_budget_per_task);
      return api.saveSettings(
        settingsPayload(
          settings.data,
          {
            llm_model: form.llm_model.trim() || null,
            llm_base_url: form.llm_base_url.trim() || null,
            agent: form.agent || null,
            max_iterations: maxIterations,
            max_budget_per_task: budget,
            confirmation_mode: form.confirmation_mode,
            git_user_name: form.git_user_name.trim() || null,
            git_user_email: form.git_user_email.trim() || null,
          },
          key,
        ),
      );
    },
    onSuccess: () => {
      setNewKey("");
      queryClient.invalidateQueries({ queryKey: ["settings"] });
    },
  });

  const submit = (key: KeyChange) => {
    const numbers = [form.max_iterations, form.max_budget_per_task].map(optionalNumber);
    if (numbers.some((n) => n !== null && (Number.isNaN(n) || n < 0))) {
      setFormError("Maximum iterations and budget must be positive numbers, or left empty.");
      return;
    }
    setFormError(undefined);
    save.mutate(key);
  };

  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((f) => ({ ...f, [key]: value }));
  const keySet = settings.data?.llm_api_key_set ?? false;

  if (settings.isPending) return <p className="loading">Loading settings…</p>;
  return (
    <div className="page narrow">
      <h1>Settings</h1>
      <ErrorNotice error={settings.error} onRetry={() => settings.refetch()} />
      <form
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          submit(newKey ? { kind: "set", value: newKey } : { kind: "keep" });
        }}
      >
        {!hideLlm && (
          <LlmFields
            form={form}
            set={set}
            models={models.data ?? []}
            newKey={newKey}
            setNewKey={setNewKey}
            keySet={keySet}
            onRemoveKey={() => submit({ kind: "remove" })}
          />
        )}

        <h2>Agent</h2>
        <label>
          Agent
          <select value={form.agent} onChange={(e) => set("agent", e.target.value)}>
            {(agents.data ?? [form.agent]).map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <div className="row">
          <label>
            Maximum iterations
            <input inputMode="numeric" value={form.max_iterations} onChange={(e) => set("max_iterations", e.target.value)} />
          </label>
          <label>
            Budget per task (USD)
            <input
              inputMode="decimal"
              value={form.max_budget_per_task}
              onChange={(e) => set("max_budget_per_task", e.target.value)}
            />
          </label>
        </div>
        <label className="checkbox">
          <input
            type="checkbox"
            checked={form.confirmation_mode}
            onChange={(e) => set("confirmation_mode", e.target.checked)}
          />
          Ask me to confirm each command and edit (confirmation mode)
        </label>

        <h2>Git identity</h2>
        <div className="row">
          <label>
            Name
            <input value={form.git_user_name} onChange={(e) => set("git_user_name", e.target.value)} autoComplete="name" />
          </label>
          <label>
            E-mail
            <input
              type="email"
              value={form.git_user_email}
              onChange={(e) => set("git_user_email", e.target.value)}
              autoComplete="email"
            />
          </label>
        </div>

        {formError && (
          <div role="alert" className="notice notice-error">
            {formError}
          </div>
        )}
        <ErrorNotice error={save.error} />
        {save.isSuccess && !save.isPending && <SuccessNotice>Settings saved.</SuccessNotice>}
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save settings"}
        </button>
      </form>
    </div>
  );
}
