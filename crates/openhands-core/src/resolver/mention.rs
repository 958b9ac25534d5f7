//! Whether a comment mentions the agent: the mention (`@openhands`) as a whole word,
//! ignoring case. `(@OpenHands)`, `@openhands:` and `@openhands.` do; an e-mail address
//! (`user@openhands.com`), a longer handle (`@openhands-agent`, `@openhandsbot`) and a
//! doubled `@@openhands` do not. One rule for every provider.

/// Characters that continue a handle: a mention followed or preceded by one of these is part
/// of a longer word.
fn continues_handle(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '@'
}

/// True when `text` mentions `mention` as a whole word (see the module doc).
pub fn mentions(text: &str, mention: &str) -> bool {
    let haystack = text.to_lowercase();
    let needle = mention.to_lowercase();
    if needle.is_empty() {
        return false;
    }
    haystack.match_indices(&needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        // A `.` before is an e-mail's domain part (`first.last@openhands`); after, it ends
        // a sentence.
        !before.is_some_and(|c| continues_handle(c) || c == '.')
            && !after.is_some_and(continues_handle)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MENTION: &str = "@openhands";

    #[test]
    fn whole_words_only() {
        assert!(mentions("hey @openhands please", MENTION));
        assert!(mentions("(@OpenHands)", MENTION));
        assert!(mentions("@openhands: fix it.", MENTION));
        assert!(mentions("thanks @openhands.", MENTION));
        assert!(mentions("line one\n@openhands\nline three", MENTION));
        assert!(!mentions("mail user@openhands.com", MENTION));
        assert!(!mentions("mail first.last@openhands", MENTION));
        assert!(!mentions("@openhands-agent do it", MENTION));
        assert!(!mentions("@openhandsbot", MENTION));
        assert!(!mentions("@@openhands", MENTION));
        assert!(!mentions("anything", ""));
    }

    /// Text around a mention that cannot glue onto it.
    fn separator() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("(".to_owned()),
            Just(", ".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn text_without_the_mention_never_mentions(text in "[^@]*") {
            prop_assert!(!mentions(&text, MENTION));
        }

        #[test]
        fn a_separated_mention_in_any_case_is_found(
            before in "[a-z .,!?]{0,40}",
            after in "[a-z .,!?]{0,40}",
            open in separator(),
            close in separator(),
            upper in proptest::collection::vec(any::<bool>(), 10),
        ) {
            let cased: String = MENTION
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            let text = format!("{before}{open}{cased}{close}{after}");
            prop_assert!(mentions(&text, MENTION), "{}", text);
        }

        #[test]
        fn a_mention_glued_to_a_word_is_not_one(
            before in "[a-z0-9_.@-]{1,10}",
            after in "[a-z0-9_@-]{1,10}",
            glue_before in any::<bool>(),
        ) {
            let text = if glue_before {
                format!("{before}{MENTION}")
            } else {
                format!("{MENTION}{after}")
            };
            prop_assert!(!mentions(&text, MENTION), "{}", text);
        }
    }
}
