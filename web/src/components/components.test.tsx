import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import { EventItem } from "./EventItem";
import { ErrorNotice } from "./ErrorNotice";
import { describeFailure } from "../api/client";
import { SettingsPage } from "../pages/SettingsPage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("EventItem", () => {
  it("shows a command with its output and exit code", () => {
    render(
      <EventItem item={{ kind: "command", id: 1, command: "cat hello.txt", output: "hello\n", exitCode: 0, confirmation: "confirmed" }} />,
    );
    expect(screen.getByText("$ cat hello.txt")).toBeTruthy();
    expect(screen.getByLabelText("Command output").textContent).toBe("hello\n");
    expect(screen.getByText("exit 0")).toBeTruthy();
  });

  it("flags an action that waits for confirmation", () => {
    render(<EventItem item={{ kind: "command", id: 2, command: "rm x", confirmation: "awaiting_confirmation" }} />);
    expect(screen.getByText("Needs your confirmation")).toBeTruthy();
  });

  it("shows an edit's diff with added lines marked", () => {
    render(<EventItem item={{ kind: "edit", id: 3, path: "a.txt", command: "create", diff: "+++ a.txt\n+hi", confirmation: undefined }} />);
    expect(screen.getByText("a.txt")).toBeTruthy();
    expect(screen.getByText("+hi").className).toBe("diff-added");
  });
});

describe("ErrorNotice", () => {
  it("announces the plain-words message and offers a retry", () => {
    const retry = vi.fn();
    render(<ErrorNotice error={describeFailure(503, {})} onRetry={retry} />);
    expect(screen.getByRole("alert").textContent).toMatch(/temporarily unavailable/);
    fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(retry).toHaveBeenCalled();
  });
});

describe("SettingsPage", () => {
  it("never shows the stored key, and saves a new one without sending the read-only flags", async () => {
    const posted: unknown[] = [];
    vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => {
      const json = (value: unknown) => new Response(JSON.stringify(value), { status: 200 });
      if (url === "/api/settings" && init?.method === "POST") {
        posted.push(JSON.parse(String(init.body)));
        return json({ message: "Settings stored" });
      }
      if (url === "/api/settings")
        return json({ llm_model: "openai/gpt-4o", llm_api_key: null, llm_api_key_set: true, search_api_key_set: false, provider_tokens_set: {} });
      if (url === "/api/options/models") return json(["openai/gpt-4o"]);
      if (url === "/api/options/agents") return json(["CodeActAgent"]);
      return new Response("{}", { status: 404 });
    });
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <QueryClientProvider client={client}>
        <MemoryRouter>
          <SettingsPage />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    await screen.findByText("An API key is stored. It is never shown.");
    const keyInput = screen.getByLabelText("API key") as HTMLInputElement;
    expect(keyInput.value).toBe("");
    expect(keyInput.type).toBe("password");
    fireEvent.change(keyInput, { target: { value: "sk-new" } });
    fireEvent.click(screen.getByRole("button", { name: "Save settings" }));
    await waitFor(() => expect(posted).toHaveLength(1));
    const body = posted[0] as Record<string, unknown>;
    expect(body.llm_api_key).toBe("sk-new");
    expect(body.llm_model).toBe("openai/gpt-4o");
    expect(body).not.toHaveProperty("llm_api_key_set");
    expect(body).not.toHaveProperty("provider_tokens_set");
  });
});
