import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, describeFailure, parseErrorBody, request } from "./client";

describe("parseErrorBody", () => {
  it("reads FastAPI's detail string", () => {
    expect(parseErrorBody({ detail: "Conversation x not found" })).toEqual({ text: "Conversation x not found" });
  });

  it("reads a validation error and names the field without `body`", () => {
    const body = { detail: [{ type: "value_error", loc: ["body", "condenser_max_size"], msg: "must be at least 20" }] };
    expect(parseErrorBody(body)).toEqual({ text: "must be at least 20", field: "condenser_max_size" });
  });

  it("reads {error} as a string and as {code, message}", () => {
    expect(parseErrorBody({ error: "Settings not found" }).text).toBe("Settings not found");
    expect(parseErrorBody({ error: { code: "rate_limited", message: "slow down" } })).toEqual({
      text: "slow down",
      code: "rate_limited",
    });
  });

  it("reads the conversation routes' {status, message, msg_id}", () => {
    const body = { status: "error", message: "Settings not found", msg_id: "CONFIGURATION$SETTINGS_NOT_FOUND" };
    expect(parseErrorBody(body)).toEqual({ text: "Settings not found", code: "CONFIGURATION$SETTINGS_NOT_FOUND" });
  });

  it("reads the sign-in gates' {code}", () => {
    expect(parseErrorBody({ code: "tos_not_accepted" }).code).toBe("tos_not_accepted");
  });

  it("copes with text and nothing", () => {
    expect(parseErrorBody("Bad Gateway")).toEqual({ text: "Bad Gateway" });
    expect(parseErrorBody(undefined)).toEqual({});
    expect(parseErrorBody([1, 2])).toEqual({});
  });
});

describe("describeFailure", () => {
  it("explains a missing LLM setup with what to do", () => {
    const error = describeFailure(400, {
      status: "error",
      message: "Settings not found",
      msg_id: "CONFIGURATION$SETTINGS_NOT_FOUND",
    });
    expect(error.message).toMatch(/Open Settings/);
    expect(error.code).toBe("CONFIGURATION$SETTINGS_NOT_FOUND");
    expect(error.serverMessage).toBe("Settings not found");
  });

  it("asks to sign in on 401", () => {
    expect(describeFailure(401, { error: "User is not authenticated" }).message).toMatch(/Sign in again/);
  });

  it("keeps the server's words for a validation error", () => {
    const error = describeFailure(422, { detail: [{ loc: ["body", "name"], msg: "name: `1x` is not a valid secret name" }] });
    expect(error.message).toBe("Please check the form: name: `1x` is not a valid secret name");
    expect(error.field).toBe("name");
  });

  it("tells to wait on 429 and to retry on 5xx", () => {
    expect(describeFailure(429, { error: "Rate limit exceeded: 10/s" }).message).toMatch(/Wait a moment/);
    const failed = describeFailure(500, { error: "Something went wrong storing settings" });
    expect(failed.message).toMatch(/^The server failed: Something went wrong storing settings\. Try again/);
  });

  it("never shows a raw body for unknown statuses", () => {
    expect(describeFailure(418, {}).message).toBe("The request failed (HTTP 418).");
  });
});

describe("request", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("returns parsed JSON on success and sends JSON bodies", async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ ok: 1 }), { status: 200 }));
    vi.stubGlobal("fetch", fetchMock);
    await expect(request("POST", "/api/x", { a: 1 })).resolves.toEqual({ ok: 1 });
    const [, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(init.body).toBe('{"a":1}');
    expect((init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
  });

  it("sends FormData as multipart, leaving the content type to the browser", async () => {
    const fetchMock = vi.fn(async () => new Response("{}", { status: 200 }));
    vi.stubGlobal("fetch", fetchMock);
    const form = new FormData();
    form.append("files", new Blob(["x"]), "a.txt");
    await request("POST", "/api/upload", form);
    const [, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(init.body).toBe(form);
    expect((init.headers as Record<string, string>)["Content-Type"]).toBeUndefined();
  });

  it("throws an ApiError with the status and plain words", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ detail: "Not Found" }), { status: 404 }));
    const error = await request("GET", "/api/nope").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(404);
    expect((error as ApiError).message).toBe("Not found: Not Found");
  });

  it("reports an unreachable server as status 0", async () => {
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    const error = (await request("GET", "/api/x").catch((e: unknown) => e)) as ApiError;
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/Cannot reach the server/);
  });

  it("accepts a non-JSON error body", async () => {
    vi.stubGlobal("fetch", async () => new Response("upstream down", { status: 502 }));
    const error = (await request("GET", "/api/x").catch((e: unknown) => e)) as ApiError;
    expect(error.message).toMatch(/The server failed: upstream down/);
  });
});
