//! Identifiers and timestamps the simulator mints: message UUIDs, base64-like external ids,
//! customer ids and ISO 8601 UTC timestamps with milliseconds.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::distr::{Alphanumeric, SampleString};

/// A random (v4) UUID, from the thread-local generator (no system call per id).
pub(crate) fn new_uuid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// A message's external id: 16 random bytes in standard base64, i.e. 22 characters + `==`.
pub(crate) fn new_external_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A customer's external id, e.g. `cus_7Qm2Lx`.
pub(crate) fn new_customer_id() -> String {
    format!("cus_{}", Alphanumeric.sample_string(&mut rand::rng(), 6))
}

/// `time` as the contract's timestamp: ISO 8601, milliseconds, UTC (`...Z`).
pub(crate) fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time as a contract timestamp.
pub(crate) fn now() -> String {
    timestamp(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_22_chars_and_padding() {
        let id = new_external_id();
        assert_eq!(id.len(), 24);
        assert!(id.ends_with("=="));
        assert_ne!(id, new_external_id());
    }

    #[test]
    fn uuids_are_v4() {
        let id = new_uuid();
        let parsed = uuid::Uuid::parse_str(&id).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 4);
    }

    #[test]
    fn timestamps_have_millis_and_z() {
        let time = DateTime::parse_from_rfc3339("2024-03-05T09:30:00.5-08:00")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(timestamp(time), "2024-03-05T17:30:00.500Z");
        assert!(new_customer_id().starts_with("cus_"));
    }
}
