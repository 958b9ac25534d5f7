// The one place that talks HTTP to the server: JSON in and out, and every failure turned
// into an `ApiError` whose `message` a person can act on.
//
// The server keeps OpenHands' error bodies on compatible routes, so a failure may arrive as
// `{"detail": "..."}`, `{"detail": [{"loc", "msg"}]}` (validation), `{"error": "..."}`,
// `{"error": {"code", "message"}}`, `{"message": "..."}`,
// `{"status": "error", "message", "msg_id"}` or `{"code": "..."}` (sign-in gates).

/** Why a request failed, in plain words, plus what the server said. */
export class ApiError extends Error {
  /** HTTP status, or 0 when the server could not be reached. */
  readonly status: number;
  /** A machine-readable code when the server gave one (`msg_id` or `code`). */
  readonly code: string | undefined;
  /** The server's own wording, when it differs from `message`. */
  readonly serverMessage: string | undefined;
  /** The field a validation error names (`detail[0].loc` without `body`). */
  readonly field: string | undefined;

  constructor(init: {
    status: number;
    message: string;
    code?: string;
    serverMessage?: string;
    field?: string;
  }) {
    super(init.message);
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.serverMessage = init.serverMessage;
    this.field = init.field;
  }
}

/** What an error body says, whatever its shape. */
export interface ParsedErrorBody {
  text?: string;
  code?: string;
  field?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the message, code and field out of any of the server's error body shapes. */
export function parseErrorBody(body: unknown): ParsedErrorBody {
  if (typeof body === "string") return { text: body.trim() || undefined };
  if (!isRecord(body)) return {};
  const out: ParsedErrorBody = {};
  if (typeof body.msg_id === "string") out.code = body.msg_id;
  if (typeof body.code === "string") out.code = body.code;
  const { detail, error, message } = body;
  if (typeof detail === "string") out.text = detail;
  else if (Array.isArray(detail) && isRecord(detail[0])) {
    const first = detail[0];
    if (typeof first.msg === "string") out.text = first.msg;
    if (Array.isArray(first.loc)) {
      const path = first.loc.filter((p) => p !== "body").join(".");
      if (path) out.field = path;
    }
  }
  if (!out.text && typeof error === "string") out.text = error;
  if (!out.text && isRecord(error)) {
    if (typeof error.message === "string") out.text = error.message;
    if (typeof error.code === "string") out.code ??= error.code;
  }
  if (!out.text && typeof message === "string") out.text = message;
  return out;
}

/** Codes the server sends whose meaning we can explain better than its wording. */
const KNOWN_CODES: Record<string, string> = {
  CONFIGURATION$SETTINGS_NOT_FOUND:
    "No LLM is configured yet. Open Settings, choose a model and enter its API key, then try again.",
  STATUS$ERROR_LLM_AUTHENTICATION:
    "The LLM needs an API key. Enter one in Settings, then try again.",
  CONVERSATION$NOT_FOUND: "This conversation no longer exists. It may have been deleted.",
  CONVERSATION$ALREADY_EXISTS: "A conversation with this id already exists.",
  email_not_verified: "Your e-mail address is not verified yet. Check your inbox, then reload.",
  tos_not_accepted: "Please accept the terms of service to continue.",
  csrf_rejected: "The server refused a request from this page's address. Reload the page and retry.",
  not_allowed: "This account is not allowed to sign in here.",
  api_key_not_found: "That API key no longer exists.",
  last_owner: "An organization needs at least one owner; make someone else owner first.",
};

/** The plain-words message for a failed response. */
export function describeFailure(status: number, body: unknown): ApiError {
  const parsed = parseErrorBody(body);
  const known = parsed.code ? KNOWN_CODES[parsed.code] : undefined;
  const said = parsed.text;
  let message: string;
  if (known) message = known;
  else if (status === 401)
    message = "You are not signed in, or your session ended. Sign in again to continue.";
  else if (status === 403) message = said ? `Not allowed: ${said}` : "You are not allowed to do this.";
  else if (status === 404) message = said ? `Not found: ${said}` : "Not found.";
  else if (status === 413) message = "That is too large for the server to accept.";
  else if (status === 422 || status === 400)
    message = said ? `Please check the form: ${said}` : "The server did not accept this input.";
  else if (status === 429) message = "Too many requests. Wait a moment, then try again.";
  else if (status === 503)
    message = "The server is temporarily unavailable. Try again in a moment.";
  else if (status >= 500)
    message = `The server failed${said ? `: ${said}` : ""}. Try again; if it keeps failing, check the server log.`;
  else message = said ?? `The request failed (HTTP ${status}).`;
  return new ApiError({
    status,
    message,
    code: parsed.code,
    serverMessage: said,
    field: parsed.field,
  });
}

/** A network-level failure (server down, offline). */
export function unreachable(cause: unknown): ApiError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ApiError({
    status: 0,
    message: "Cannot reach the server. Check that it is running and your connection works.",
    serverMessage: detail,
  });
}

/** Turns anything thrown into words for the screen. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/**
 * Sends a request and parses the JSON answer; throws `ApiError` on any failure. A `FormData`
 * body goes as multipart (the browser sets its content type), anything else as JSON.
 */
export async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, "Content-Type": "application/json" };
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (cause) {
    throw unreachable(cause);
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) throw describeFailure(response.status, parsed);
  return parsed as T;
}

export const http = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

/** `?a=1&b=2` from the defined values. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
