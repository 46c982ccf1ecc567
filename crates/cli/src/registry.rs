//! The registry of every module the binary ships: the engine's built-ins and every app.

use weft_engine::Registry;

/// Builds the registry. Module lists are static, so a duplicate id is a programming
/// error caught by the test below.
pub fn registry() -> Registry {
    match Registry::new(
        [weft_engine::builtin::modules(), weft_sonar::modules()],
        [weft_sonar::apps()],
    ) {
        Ok(r) => r,
        Err(e) => panic!("module lists are inconsistent: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_builds() {
        let r = super::registry();
        assert!(r.module("flow.router").is_some());
        assert!(r.module("sonar.send_message").is_some());
        assert!(r.app("sonar").is_some());
    }
}
