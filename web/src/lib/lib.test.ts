import { describe, expect, it } from "vitest";
import { diffLines } from "./diff";
import { settingsPayload, optionalNumber } from "./settingsForm";
import { removeTokenPayload, setTokenPayload } from "./providers";
import { matchesSearch } from "./search";
import { timeAgo } from "./time";
import type { ConversationInfo, SettingsResponse } from "../api/types";

describe("diffLines", () => {
  it("marks added and removed lines around common ones", () => {
    expect(diffLines("a\nb\nc\n", "a\nB\nc\nd\n")).toEqual([
      { kind: "same", text: "a" },
      { kind: "removed", text: "b" },
      { kind: "added", text: "B" },
      { kind: "same", text: "c" },
      { kind: "added", text: "d" },
    ]);
  });

  it("treats a new file as all added", () => {
    expect(diffLines("", "x\ny")).toEqual([
      { kind: "added", text: "x" },
      { kind: "added", text: "y" },
    ]);
  });
});

describe("settingsPayload", () => {
  const stored: SettingsResponse = {
    llm_model: "openai/gpt-4o",
    language: "en",
    llm_api_key_set: true,
    search_api_key_set: false,
    provider_tokens_set: { github: null },
    llm_api_key: null,
    email: "a@b.c",
  };

  it("sends every stored field back with the changes, never the read-only flags", () => {
    const payload = settingsPayload(stored, { llm_model: "anthropic/claude" }, { kind: "keep" });
    expect(payload).toEqual({ llm_model: "anthropic/claude", language: "en" });
  });

  it("sets, keeps or clears the key", () => {
    expect(settingsPayload(stored, {}, { kind: "set", value: "sk-1" }).llm_api_key).toBe("sk-1");
    expect("llm_api_key" in settingsPayload(stored, {}, { kind: "keep" })).toBe(false);
    expect(settingsPayload(stored, {}, { kind: "remove" }).llm_api_key).toBe("");
  });

  it("works before anything is stored", () => {
    expect(settingsPayload(undefined, { llm_model: "m" }, { kind: "keep" })).toEqual({ llm_model: "m" });
  });

  it("reads optional numbers", () => {
    expect(optionalNumber(" ")).toBeNull();
    expect(optionalNumber("12")).toBe(12);
    expect(optionalNumber("x")).toBeNaN();
  });
});

describe("provider token payloads", () => {
  const stored = { github: null, gitlab: "gitlab.example.com" };
  it("keeps the other providers (without tokens) when setting one", () => {
    expect(setTokenPayload(stored, "bitbucket", "tok", null)).toEqual({
      github: { host: null },
      gitlab: { host: "gitlab.example.com" },
      bitbucket: { token: "tok", host: null },
    });
  });
  it("leaves one provider out to remove it", () => {
    expect(removeTokenPayload(stored, "github")).toEqual({ gitlab: { host: "gitlab.example.com" } });
  });
});

describe("search and time", () => {
  const c = {
    conversation_id: "abc123",
    title: "Fix the login bug",
    selected_repository: "acme/web",
    selected_branch: "main",
  } as ConversationInfo;
  it("matches every word anywhere", () => {
    expect(matchesSearch(c, "")).toBe(true);
    expect(matchesSearch(c, "LOGIN acme")).toBe(true);
    expect(matchesSearch(c, "login backend")).toBe(false);
  });
  it("says how long ago", () => {
    const now = Date.parse("2025-01-01T12:00:00Z");
    expect(timeAgo("2025-01-01T11:59:30Z", now)).toBe("just now");
    expect(timeAgo("2025-01-01T11:30:00Z", now)).toBe("30 min ago");
    expect(timeAgo("2024-12-30T12:00:00Z", now)).toBe("2 d ago");
    expect(timeAgo(null, now)).toBe("");
  });
});
