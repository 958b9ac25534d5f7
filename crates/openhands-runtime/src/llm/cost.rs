//! Approximate USD cost of a call, from a small built-in price table.
//!
//! Prices are list prices per million tokens as published by the providers at the time of
//! writing; they are approximate (no cached-token discounts, no batch pricing, no regional
//! differences) and only meant for budgets and the conversation's cost display. Unknown models
//! cost 0.0.

use super::config::strip_provider;
use super::wire::Usage;

/// `(id substring, USD per million prompt tokens, USD per million completion tokens)`.
/// More specific names come first: the first substring match wins.
const PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-5-mini", 0.25, 2.00),
    ("gpt-5", 1.25, 10.00),
    ("o4-mini", 1.10, 4.40),
    ("o3-mini", 1.10, 4.40),
    ("claude-opus-4", 15.00, 75.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-4-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-haiku-4", 1.00, 5.00),
    ("gemini-2.5-pro", 1.25, 10.00),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("deepseek-chat", 0.27, 1.10),
];

/// The approximate cost in USD of `usage` on `model` (a LiteLLM-style id); 0.0 when unknown.
pub fn cost_usd(model: &str, usage: &Usage) -> f64 {
    let id = strip_provider(model).to_ascii_lowercase();
    PRICES
        .iter()
        .find(|(name, _, _)| id.contains(name))
        .map_or(0.0, |(_, prompt, completion)| {
            (usage.prompt_tokens as f64 * prompt + usage.completion_tokens as f64 * completion)
                / 1_000_000.0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
        }
    }

    #[test]
    fn specific_names_win_over_their_prefixes() {
        let u = usage(1_000_000, 1_000_000);
        assert!((cost_usd("openai/gpt-4o-mini", &u) - 0.75).abs() < 1e-9);
        assert!((cost_usd("openai/gpt-4o", &u) - 12.5).abs() < 1e-9);
        assert!((cost_usd("gpt-4.1-mini-2025-04-14", &u) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn provider_prefix_and_dates_are_ignored() {
        let u = usage(2_000, 1_000);
        let expected = (2_000.0 * 3.0 + 1_000.0 * 15.0) / 1e6;
        assert!(
            (cost_usd("anthropic/claude-sonnet-4-20250514", &u) - expected).abs() < 1e-12,
            "sonnet 4"
        );
        assert!(
            (cost_usd("litellm_proxy/claude-3-7-sonnet-20250219", &u) - expected).abs() < 1e-12,
            "sonnet 3.7"
        );
    }

    #[test]
    fn unknown_model_costs_nothing() {
        assert_eq!(cost_usd("local/my-llama", &usage(10, 10)), 0.0);
    }
}
