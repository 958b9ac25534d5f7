import { useQuery } from "@tanstack/react-query";
import { api } from "../api/endpoints";

/** `/api/options/config`: the mode (oss or saas) and feature flags, read once. */
export function useAppConfig() {
  return useQuery({ queryKey: ["config"], queryFn: api.config, staleTime: Infinity });
}
