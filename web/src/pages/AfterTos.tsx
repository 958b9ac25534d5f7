import { Navigate, useSearchParams } from "react-router";

/** `/accept-tos?redirect_url=` once the terms are accepted: go on to the page (local paths only). */
export function AfterTos() {
  const [params] = useSearchParams();
  const target = params.get("redirect_url") ?? "/";
  const safe = target.startsWith("/") && !target.startsWith("//") ? target : "/";
  return <Navigate to={safe} replace />;
}
