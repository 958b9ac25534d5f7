//! Keeping tool output small enough for the LLM's context.
//!
//! Long output is cut in the middle: the head (what a command printed first: usually the
//! command's own messages) and the tail (where errors and results usually are) both matter.

/// Longest tool output, in characters, handed to the LLM.
pub const MAX_OUTPUT_CHARS: usize = 30_000;

/// Cuts `text` to at most `max_chars` characters (plus a note) by removing its middle.
///
/// `already_cut` counts characters dropped earlier (e.g. while buffering); when non-zero the
/// note is added even if `text` itself is short enough. Returns the text and whether anything
/// was cut.
pub fn truncate_middle(text: &str, max_chars: usize, already_cut: usize) -> (String, bool) {
    let total = text.chars().count();
    if total <= max_chars && already_cut == 0 {
        return (text.to_owned(), false);
    }
    let keep = max_chars.min(total);
    let head_chars = keep / 2;
    let tail_chars = keep - head_chars;
    let head_end = text
        .char_indices()
        .nth(head_chars)
        .map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(total - tail_chars)
        .map_or(text.len(), |(i, _)| i);
    let cut = total - keep + already_cut;
    (
        format!(
            "{}\n[... {cut} characters cut ...]\n{}",
            &text[..head_end],
            &text[tail_start..]
        ),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(truncate_middle("abc", 10, 0), ("abc".to_owned(), false));
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let text = format!("{}{}", "a".repeat(50), "é".repeat(50));
        let (cut, truncated) = truncate_middle(&text, 20, 0);
        assert!(truncated);
        assert_eq!(
            cut,
            format!(
                "{}\n[... 80 characters cut ...]\n{}",
                "a".repeat(10),
                "é".repeat(10)
            )
        );
    }

    #[test]
    fn earlier_drops_are_counted() {
        let (cut, truncated) = truncate_middle("abcd", 10, 7);
        assert!(truncated);
        assert!(cut.contains("[... 7 characters cut ...]"), "{cut}");
    }
}
