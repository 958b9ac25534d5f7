//! `docs/configuration.md` must name every key and every honoured OpenHands variable.

use super::*;

const DOC: &str = include_str!("../../../../docs/configuration.md");

#[test]
fn every_legacy_variable_is_documented() {
    for (env, key) in LEGACY_ENV {
        assert!(
            DOC.contains(&format!("`{env}`")),
            "{env} missing from docs/configuration.md"
        );
        let documented_key = key.split('.').next().unwrap_or(key);
        assert!(DOC.contains(&format!("`{documented_key}")), "{key} missing");
    }
}

#[test]
fn every_config_key_is_documented() {
    let value = serde_json::to_value(Config::default()).expect("config serializes");
    let keys = value
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for key in keys {
        assert!(
            DOC.contains(&format!("| `{key}")),
            "key `{key}` missing from docs/configuration.md"
        );
    }
    for slot in crate::registry::Slot::ALL {
        assert!(DOC.contains(slot.key()), "slot {slot} missing");
    }
}
