//! When a webhook asks for the agent: an issue gets the trigger label, or a new comment
//! mentions the agent (see [`crate::resolver::mention`]); never for the bot's own comments
//! (its replies mention itself, and answering them would loop).

use super::mention::mentions;

/// A provider's trigger settings: the label (`openhands`), the mention (`@openhands`) and
/// the bot's own login, whose comments never trigger.
#[derive(Debug, Clone, Copy)]
pub struct Triggers<'a> {
    pub label: &'a str,
    pub mention: &'a str,
    pub bot_login: Option<&'a str>,
}

impl Triggers<'_> {
    /// Whether `name` is the trigger label (case-insensitive, as providers compare labels).
    pub fn is_trigger_label(&self, name: &str) -> bool {
        !self.label.is_empty() && name.eq_ignore_ascii_case(self.label)
    }

    /// Whether `login` is the bot itself.
    pub fn is_bot(&self, login: &str) -> bool {
        self.bot_login
            .is_some_and(|bot| !bot.is_empty() && login.eq_ignore_ascii_case(bot))
    }

    /// Whether a new comment by `author` with `text` asks the agent: it mentions the agent
    /// as a whole word, and the bot did not write it.
    pub fn comment_asks(&self, text: &str, author: &str) -> bool {
        !self.is_bot(author) && mentions(text, self.mention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIGGERS: Triggers<'static> = Triggers {
        label: "openhands",
        mention: "@openhands",
        bot_login: Some("openhands-bot"),
    };

    #[test]
    fn the_label_and_a_mention_trigger_but_not_the_bot() {
        assert!(TRIGGERS.is_trigger_label("OpenHands"));
        assert!(!TRIGGERS.is_trigger_label("openhands-later"));
        assert!(TRIGGERS.comment_asks("@openhands fix it", "alice"));
        assert!(!TRIGGERS.comment_asks("@openhands fix it", "OpenHands-Bot"));
        assert!(!TRIGGERS.comment_asks("write to user@openhands.com", "alice"));
        let no_label = Triggers {
            label: "",
            ..TRIGGERS
        };
        assert!(!no_label.is_trigger_label(""));
    }
}
