// The JSON shapes of the routes the app uses (OpenHands' field names).

export type ConversationStatus = "STARTING" | "RUNNING" | "STOPPED" | "ARCHIVED" | "ERROR";

export interface ConversationInfo {
  conversation_id: string;
  title: string;
  last_updated_at: string | null;
  created_at: string;
  status: ConversationStatus;
  selected_repository: string | null;
  selected_branch: string | null;
  git_provider: string | null;
  trigger: string | null;
}

export interface ConversationPage {
  results: ConversationInfo[];
  next_page_id: string | null;
}

export interface ConversationResponse {
  status: string;
  conversation_id: string;
  message: string | null;
  conversation_status: ConversationStatus | null;
}

export interface NewConversation {
  initial_user_msg?: string;
  repository?: string;
  selected_branch?: string;
}

/** A stored event: an action (`action` + `args`) or an observation (`observation` + `content` + `extras`). */
export interface AgentEvent {
  id: number;
  timestamp: string;
  source: "agent" | "user" | "environment";
  message: string;
  cause?: number;
  action?: string;
  args?: Record<string, unknown>;
  observation?: string;
  content?: string;
  extras?: Record<string, unknown>;
  tool_call_metadata?: { tool_call_id?: string; function_name?: string };
  success?: boolean;
}

export interface EventPage {
  events: AgentEvent[];
  has_more: boolean;
}

/** Settings as stored (the secret fields are never sent back, only `*_set` flags). */
export interface Settings {
  language?: string | null;
  agent?: string | null;
  max_iterations?: number | null;
  security_analyzer?: string | null;
  confirmation_mode?: boolean | null;
  llm_model?: string | null;
  llm_base_url?: string | null;
  max_budget_per_task?: number | null;
  enable_default_condenser?: boolean;
  enable_sound_notifications?: boolean;
  git_user_name?: string | null;
  git_user_email?: string | null;
  email?: string | null;
  email_verified?: boolean | null;
  [other: string]: unknown;
}

export interface SettingsResponse extends Settings {
  llm_api_key_set: boolean;
  search_api_key_set: boolean;
  provider_tokens_set: Record<string, string | null> | null;
}

export interface SecretName {
  name: string;
  description: string | null;
}

export interface AppConfig {
  APP_MODE: "oss" | "saas" | string;
  GITHUB_CLIENT_ID?: string;
  FEATURE_FLAGS?: { ENABLE_BILLING?: boolean; HIDE_LLM_SETTINGS?: boolean };
}

export interface GitChange {
  status: "A" | "M" | "D" | "R" | "U" | string;
  path: string;
}

export interface GitDiff {
  original: string;
  modified: string;
}

export interface ApiKey {
  id: number | string;
  name: string | null;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  key?: string;
}

export type OrgRole = "owner" | "admin" | "member";

export interface Organization {
  id: string;
  name: string;
  role: OrgRole;
  is_current: boolean;
  created_at: string;
}

export interface OrgMember {
  user_id: string;
  email: string | null;
  role: OrgRole;
  joined_at: string;
}

export interface OrgInvitation {
  id: string;
  org_id: string;
  email: string;
  role: OrgRole;
  invited_by: string | null;
  created_at: string;
  accepted_at: string | null;
}
