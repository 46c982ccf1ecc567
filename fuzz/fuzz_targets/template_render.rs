//! Any text as a mapping template, rendered against fixed data: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_engine::template::{Scope, Templates};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let mut templates = Templates::new();
    let mut scope = Scope::new();
    scope.set(
        "1",
        serde_json::json!({"a": 1, "b": "text", "items": [1, {"k": "v"}], "n": null}),
    );
    if let Ok(t) = templates.compile(src) {
        let _ = templates.render(&t, &scope);
    }
});
