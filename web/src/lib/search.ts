import type { ConversationInfo } from "../api/types";

/** Whether a conversation matches the search box: every word in title, repository or id. */
export function matchesSearch(conversation: ConversationInfo, search: string): boolean {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const haystack = [
    conversation.title,
    conversation.selected_repository ?? "",
    conversation.selected_branch ?? "",
    conversation.conversation_id,
  ]
    .join(" ")
    .toLowerCase();
  return words.every((word) => haystack.includes(word));
}
