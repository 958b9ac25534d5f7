import { describe, expect, it } from "vitest";
import { describeFailure } from "../api/client";
import { gateFor, onGate, reportGate, type Gate } from "./gate";

describe("gateFor", () => {
  it("maps the sign-in gates' codes to screens", () => {
    expect(gateFor(describeFailure(403, { error: "Accept the terms", code: "tos_not_accepted" }), true)).toBe("tos");
    expect(gateFor(describeFailure(403, { code: "email_not_verified" }), true)).toBe("email");
  });

  it("asks to sign in on 401 only in SaaS mode", () => {
    const unauthorized = describeFailure(401, { error: "User is not authenticated" });
    expect(gateFor(unauthorized, true)).toBe("login");
    expect(gateFor(unauthorized, false)).toBeUndefined();
  });

  it("leaves other errors to the page", () => {
    expect(gateFor(describeFailure(403, { detail: "Not an owner", code: "forbidden" }), true)).toBeUndefined();
    expect(gateFor(new Error("boom"), true)).toBeUndefined();
  });
});

describe("reportGate", () => {
  it("tells listeners until they unsubscribe, and ignores undefined", () => {
    const heard: Gate[] = [];
    const stop = onGate((g) => heard.push(g));
    reportGate("tos");
    reportGate(undefined);
    stop();
    reportGate("login");
    expect(heard).toEqual(["tos"]);
  });
});
