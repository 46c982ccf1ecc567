//! The modules that ship with the engine: flow control (`flow.*`), the generic HTTP
//! action, the custom webhook trigger and its response, and the schedule trigger.

mod aggregators;
mod http_request;
mod iterator;
mod router;
mod schedule;
mod set_variables;
mod sleep;
mod webhook;

use crate::module::Module;

pub use aggregators::{ArrayAggregator, TextAggregator};
pub use http_request::HttpRequest;
pub use iterator::Iterator;
pub use router::Router;
pub use schedule::{next_fire, Schedule, ScheduleSpec};
pub use set_variables::SetVariables;
pub use sleep::Sleep;
pub use webhook::{CustomWebhook, WebhookRespond};

/// Every built-in module, sorted by id.
pub fn modules() -> &'static [&'static dyn Module] {
    &[
        &ArrayAggregator,
        &Iterator,
        &Router,
        &SetVariables,
        &Sleep,
        &TextAggregator,
        &HttpRequest,
        &Schedule,
        &CustomWebhook,
        &WebhookRespond,
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_sorted_unique_and_documented() {
        let ids: Vec<&str> = super::modules().iter().map(|m| m.spec().id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            ids, sorted,
            "built-in modules must be listed sorted and once"
        );
        for m in super::modules() {
            let spec = m.spec();
            assert!(!spec.help.is_empty(), "{} has no help", spec.id);
            for f in spec.fields {
                assert!(!f.help.is_empty(), "{}.{} has no help", spec.id, f.name);
            }
        }
    }
}
