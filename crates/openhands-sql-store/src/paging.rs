//! `LIMIT` values the databases accept.
//!
//! Callers ask for `usize::MAX` to mean "everything" (the agent reads its whole history that
//! way), but both sqlx drivers bind integers as signed 64-bit and panic on anything larger.
//! So a page size is clamped before it reaches a query.

/// The `LIMIT` that fetches `limit` rows plus one (to learn whether there are more).
pub(crate) fn limit_plus_one(limit: usize) -> u64 {
    let largest = u64::try_from(i64::MAX).unwrap_or(u64::MAX) - 1;
    u64::try_from(limit).unwrap_or(u64::MAX).min(largest) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_a_signed_64_bit_integer() {
        assert_eq!(limit_plus_one(50), 51);
        assert_eq!(limit_plus_one(0), 1);
        assert_eq!(limit_plus_one(usize::MAX), i64::MAX as u64);
    }
}
