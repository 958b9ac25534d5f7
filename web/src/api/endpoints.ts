// One function per route the app calls. Pages use these through react-query.

import { ApiError, http, query } from "./client";
import type {
  ApiKey,
  AppConfig,
  ConversationInfo,
  ConversationPage,
  ConversationResponse,
  EventPage,
  GitChange,
  GitDiff,
  NewConversation,
  Organization,
  OrgInvitation,
  OrgMember,
  OrgRole,
  SecretName,
  Settings,
  SettingsResponse,
} from "./types";

const conv = (id: string) => `/api/conversations/${encodeURIComponent(id)}`;
const org = (id: string) => `/api/organizations/${encodeURIComponent(id)}`;

export const api = {
  config: () => http.get<AppConfig>("/api/options/config"),
  models: () => http.get<string[]>("/api/options/models"),
  agents: () => http.get<string[]>("/api/options/agents"),

  settings: () => http.get<SettingsResponse>("/api/settings"),
  /** The settings, or `undefined` before anything was saved (the server answers 404). */
  settingsOrNone: async (): Promise<SettingsResponse | undefined> => {
    try {
      return await http.get<SettingsResponse>("/api/settings");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  },
  saveSettings: (settings: Settings & { llm_api_key?: string | null }) =>
    http.post<{ message: string }>("/api/settings", settings),

  conversations: (limit = 100) =>
    http.get<ConversationPage>(`/api/conversations${query({ limit })}`),
  conversation: (id: string) => http.get<ConversationInfo | null>(conv(id)),
  createConversation: (body: NewConversation) =>
    http.post<ConversationResponse>("/api/conversations", body),
  renameConversation: (id: string, title: string) => http.patch<boolean>(conv(id), { title }),
  deleteConversation: (id: string) => http.del<boolean>(conv(id)),
  start: (id: string) => http.post<ConversationResponse>(`${conv(id)}/start`, {}),
  stop: (id: string) => http.post<ConversationResponse>(`${conv(id)}/stop`),
  sendMessage: (id: string, message: string) =>
    http.post<{ success: boolean }>(`${conv(id)}/message`, { message }),
  changeAgentState: (id: string, agentState: "user_confirmed" | "user_rejected" | "stopped") =>
    http.post<{ success: boolean }>(`${conv(id)}/events`, {
      action: "change_agent_state",
      args: { agent_state: agentState },
    }),
  events: (id: string, startId: number, limit = 100) =>
    http.get<EventPage>(`${conv(id)}/events${query({ start_id: startId, limit })}`),

  listFiles: (id: string, path?: string) =>
    http.get<string[]>(`${conv(id)}/list-files${query({ path })}`),
  selectFile: (id: string, file: string) =>
    http.get<{ code: string }>(`${conv(id)}/select-file${query({ file })}`),
  gitChanges: (id: string) => http.get<GitChange[]>(`${conv(id)}/git/changes`),
  gitDiff: (id: string, path: string) => http.get<GitDiff>(`${conv(id)}/git/diff${query({ path })}`),
  zipUrl: (id: string) => `${conv(id)}/zip-directory`,
  uploadFiles: (id: string, files: readonly File[]) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return http.post<{ uploaded_files: string[]; skipped_files: { name: string; reason: string }[] }>(
      `${conv(id)}/upload-files`,
      form,
    );
  },

  secrets: () => http.get<{ custom_secrets: SecretName[] }>("/api/secrets"),
  addSecret: (name: string, value: string, description?: string) =>
    http.post<{ message: string }>("/api/secrets", { name, value, description }),
  updateSecret: (oldName: string, name: string, description?: string | null) =>
    http.put<{ message: string }>(`/api/secrets/${encodeURIComponent(oldName)}`, {
      name,
      description: description ?? undefined,
    }),
  deleteSecret: (name: string) =>
    http.del<{ message: string }>(`/api/secrets/${encodeURIComponent(name)}`),

  setProviderTokens: (tokens: Record<string, { token?: string; host?: string | null }>) =>
    http.post<{ message: string }>("/api/add-git-providers", { provider_tokens: tokens }),
  unsetProviderTokens: () => http.post<{ message: string }>("/api/unset-provider-tokens"),

  // SaaS mode
  logout: () => http.post<{ message: string }>("/api/logout"),
  acceptTos: (redirectUrl?: string) =>
    http.post<{ redirect_url: string }>("/api/accept_tos", { redirect_url: redirectUrl }),
  apiKeys: () => http.get<ApiKey[]>("/api/keys"),
  createApiKey: (name: string) => http.post<ApiKey>("/api/keys", { name }),
  deleteApiKey: (id: ApiKey["id"]) => http.del<{ message: string }>(`/api/keys/${id}`),

  organizations: () =>
    http.get<{ organizations: Organization[]; current_org_id: string | null }>("/api/organizations"),
  createOrganization: (name: string) => http.post<Organization>("/api/organizations", { name }),
  switchOrganization: (orgId: string) =>
    http.post<{ current_org_id: string }>(`${org(orgId)}/switch`),
  members: (orgId: string) => http.get<{ members: OrgMember[] }>(`${org(orgId)}/members`),
  changeRole: (orgId: string, userId: string, role: OrgRole) =>
    http.patch<unknown>(`${org(orgId)}/members/${encodeURIComponent(userId)}`, { role }),
  removeMember: (orgId: string, userId: string) =>
    http.del<unknown>(`${org(orgId)}/members/${encodeURIComponent(userId)}`),
  invite: (orgId: string, email: string, role: OrgRole) =>
    http.post<OrgInvitation>(`${org(orgId)}/invitations`, { email, role }),
  myInvitations: () => http.get<{ invitations: OrgInvitation[] }>("/api/organizations/invitations"),
  acceptInvitation: (orgId: string, invitationId: string) =>
    http.post<unknown>(`${org(orgId)}/invitations/${encodeURIComponent(invitationId)}/accept`),
  leaveOrganization: (orgId: string) => http.post<unknown>(`${org(orgId)}/leave`),
};

/** Where the browser goes to sign in (SaaS mode), coming back to `returnTo`. */
export function loginUrl(returnTo: string): string {
  return `/oauth/keycloak/login${query({ redirect_url: returnTo })}`;
}
