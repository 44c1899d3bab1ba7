// What the chat view shows beside the conversation as sent: the preview of the next
// request and the status badges of messages that are not part of the conversation.
// Pure (no DOM), tested in js/test/chat.test.js.

/**
 * A chat message as the kernel sends it (`status` only on messages not part of the
 * conversation as sent: "preview", "streaming", "cancelled", "error").
 * @typedef {{ role: string, content: string, run_id?: string | null, status?: string }} ChatMessage
 */

/** Badge text per message status (none for a message as sent). */
export const STATUS_BADGES = /** @type {Record<string, string>} */ ({
  preview: "not sent yet",
  streaming: "streaming…",
  cancelled: "cancelled",
  error: "failed",
});

/**
 * The badge a message carries, or "" for one that is part of the sent conversation.
 * @param {ChatMessage} message
 * @returns {string}
 */
export function statusBadge(message) {
  // a failed turn: the reply carries the badge, its request only the colour
  if ((message.status === "cancelled" || message.status === "error") && message.role !== "assistant") return "";
  return (message.status && STATUS_BADGES[message.status]) ?? (message.status ?? "");
}

/**
 * True while nothing was sent yet: the messages shown are the preview itself.
 * @param {ChatMessage[]} messages
 * @returns {boolean}
 */
export function onlyPreview(messages) {
  return messages.length > 0 && messages.every((m) => m.status === "preview");
}

/**
 * Whether the next fresh request (the preview) differs from the conversation as sent,
 * so the view shows it separately. Only the sent messages count (not the reply in flight,
 * nor a failed turn); before the first send the messages are the preview: no block.
 * @param {ChatMessage[]} messages  the `messages` trait
 * @param {ChatMessage[]} preview  the `preview` trait
 * @returns {boolean}
 */
export function previewDiffers(messages, preview) {
  if (!preview.length || !messages.length || onlyPreview(messages)) return false;
  const sent = messages.filter((m) => !m.status);
  // a failed first send: its turn carries a status, nothing was ever received
  const base = sent.length ? sent : messages.filter((m) => m.status !== "streaming" && m.role !== "assistant");
  if (base.length < preview.length) return true;
  return preview.some((p, i) => base[i].role !== p.role || base[i].content !== p.content);
}
