//! Any bytes as a scenario file: a scenario or a diagnostic, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_engine::validate::{load_str, LoadOptions};
use weft_engine::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(registry) = Registry::new([weft_engine::builtin::modules()], []) else {
        return;
    };
    let env = |_: &str| None;
    let opts = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    let _ = load_str("fuzz.yaml", src, &registry, &opts);
});
