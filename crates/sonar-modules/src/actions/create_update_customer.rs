//! `sonar.create_update_customer`: creates the customer with this phone number, or updates
//! it when it exists (Sonar's upsert). Only the fields given are changed; an empty mapped
//! field is left out, so Sonar keeps its value. Properties are merged key by key.
//!
//! `properties` takes Make's rows, `[{name, type, value}]`, where `type` is `text`
//! (default), `number`, `boolean` or `date`; each value is sent as text, as Sonar stores
//! it (`3` → `"3"`, `true` → `"true"`, a date → ISO 8601). An object (`{plan: annual}`) is
//! accepted too.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use weft_engine::spec::{field, FieldType, Kind, ModuleSpec};
use weft_engine::{Bundle, Input, Module, ModuleError, RunContext};

use super::nonempty;
use crate::connection::SonarConnection;
use crate::outputs::customer_outputs;
use crate::{dates, phone};

/// `sonar.create_update_customer`.
pub struct CreateUpdateCustomer;

static PROPERTY_ROW: &[weft_engine::FieldSpec] = &[
    field("name", FieldType::Text)
        .required()
        .help("Property name.")
        .example("plan"),
    field("type", FieldType::Text)
        .help("`text` (default), `number`, `boolean` or `date`: how the value is rendered to text.")
        .example("text"),
    field("value", FieldType::Any)
        .help("The value; null or empty leaves the property unchanged.")
        .example("annual"),
];

static SPEC: ModuleSpec = ModuleSpec {
    id: "sonar.create_update_customer",
    kind: Kind::Action,
    label: "Create/update a customer",
    help: "Creates the customer with this phone number or updates it (`POST /v1/customers`); only the fields given change, properties are merged. Outputs the customer.",
    app: Some("sonar"),
    fields: &[
        field("phone_number", FieldType::Phone).required().help("The customer's phone number (their unique key; it cannot be changed).").example("\"+13105550147\""),
        field("first_name", FieldType::Text).help("First name.").example("Maya"),
        field("last_name", FieldType::Text).help("Last name.").example("Okafor"),
        field("email", FieldType::Email).help("Email address.").example("maya@example.com"),
        field("properties", FieldType::Array)
            .items(FieldType::Collection)
            .fields(PROPERTY_ROW)
            .help("Custom properties as rows `{name, type, value}` (or one object, name to value); merged into the existing ones.")
            .example("[{ name: plan, type: text, value: annual }, { name: bikes_owned, type: number, value: 2 }]"),
        field("picture_url", FieldType::Url).help("URL of the customer's picture.").example("https://cdn.example.com/maya.png"),
        field("subscribed", FieldType::Boolean).help("`false` unsubscribes the customer (no more messages), `true` subscribes them again.").example("true"),
        field("user_email", FieldType::Email).help("Email of the agent to assign the conversation to (must be a user of the account).").example("dana@harborbikes.example"),
        field("zip_code", FieldType::Text).help("ZIP code.").example("\"90401\""),
        field("timezone", FieldType::Text).help("IANA time zone name.").example("America/Los_Angeles"),
    ],
    output: customer_outputs!(""; []; []),
};

#[derive(Deserialize)]
struct CreateUpdateCustomerInput {
    phone_number: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    picture_url: Option<String>,
    #[serde(default)]
    subscribed: Option<bool>,
    #[serde(default)]
    user_email: Option<String>,
    #[serde(default)]
    zip_code: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[async_trait]
impl Module for CreateUpdateCustomer {
    fn spec(&self) -> &'static ModuleSpec {
        &SPEC
    }

    async fn run(&self, cx: &RunContext<'_>, input: Input) -> Result<Vec<Bundle>, ModuleError> {
        let sonar = cx.connection::<SonarConnection>()?;
        let input: CreateUpdateCustomerInput = input.into_typed()?;
        let mut body = Map::new();
        let phone = phone::normalize_field("phone_number", &input.phone_number, sonar.country)?;
        body.insert("phone_number".into(), Value::String(phone));
        let texts = [
            ("first_name", input.first_name),
            ("last_name", input.last_name),
            ("email", input.email),
            ("picture_url", input.picture_url),
            ("user_email", input.user_email),
            ("zip_code", input.zip_code),
            ("timezone", input.timezone),
        ];
        for (name, value) in texts {
            if let Some(v) = nonempty(value) {
                body.insert(name.into(), Value::String(v));
            }
        }
        if let Some(subscribed) = input.subscribed {
            body.insert("subscribed".into(), Value::Bool(subscribed));
        }
        if let Some(properties) = input.properties {
            let properties = properties_object(properties)?;
            if !properties.is_empty() {
                body.insert("properties".into(), Value::Object(properties));
            }
        }
        let customer = sonar.post("/v1/customers", Value::Object(body)).await?;
        Ok(vec![customer])
    }
}

/// Rows `[{name, type, value}]`, objects or a mix of both → one object of text values.
pub(crate) fn properties_object(value: Value) -> Result<Map<String, Value>, ModuleError> {
    let mut out = Map::new();
    let items = match value {
        Value::Null => return Ok(out),
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        other => {
            return Err(ModuleError::data(format!(
            "field `properties`: expected rows `{{name, type, value}}` or an object, got `{other}`"
        )))
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(ModuleError::data(format!(
                "field `properties`: row {} must be `{{name, type, value}}`, got `{item}`",
                i + 1
            )));
        };
        if map.contains_key("name") {
            let name = match map.get("name") {
                Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
                _ => {
                    return Err(ModuleError::data(format!(
                        "field `properties`: row {} has no `name`",
                        i + 1
                    )))
                }
            };
            let ty = map
                .get("type")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or("text");
            if let Some(text) = render(&name, ty, map.get("value").unwrap_or(&Value::Null))? {
                out.insert(name, Value::String(text));
            }
        } else {
            for (name, v) in &map {
                if let Some(text) = render(name, "text", v)? {
                    out.insert(name.clone(), Value::String(text));
                }
            }
        }
    }
    Ok(out)
}

/// A property value as the text Sonar stores; `None` for null or empty (left unchanged).
fn render(name: &str, ty: &str, value: &Value) -> Result<Option<String>, ModuleError> {
    if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    let bad = |what: &str| {
        ModuleError::data(format!(
            "property `{name}`: `{}` is not {what}",
            short(value)
        ))
    };
    let text = match ty.to_ascii_lowercase().as_str() {
        "text" | "string" => match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => number_text(n),
            other => other.to_string(),
        },
        "number" => match value {
            Value::Number(n) => number_text(n),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Number::from_f64(f)
                    .map(|n| number_text(&n))
                    .ok_or_else(|| bad("a number"))?,
                _ => return Err(bad("a number")),
            },
            _ => return Err(bad("a number")),
        },
        "boolean" | "bool" => match value {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.as_f64() == Some(1.0) => "true".into(),
            Value::Number(n) if n.as_f64() == Some(0.0) => "false".into(),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => "true".into(),
                "false" | "no" | "0" => "false".into(),
                _ => return Err(bad("a boolean (`true`/`false`)")),
            },
            _ => return Err(bad("a boolean (`true`/`false`)")),
        },
        "date" => {
            let parsed = match value {
                Value::String(s) => dates::parse(s),
                Value::Number(n) => n.as_i64().and_then(|secs| dates::parse(&secs.to_string())),
                _ => None,
            };
            parsed
                .ok_or_else(|| bad("a date (ISO 8601, `YYYY-MM-DD HH:MM` or `MM/DD/YYYY`)"))?
                .to_iso()
        }
        other => {
            return Err(ModuleError::data(format!(
            "property `{name}`: unknown type `{other}`; use `text`, `number`, `boolean` or `date`"
        )))
        }
    };
    Ok(Some(text))
}

/// A number as Make shows it: `4`, not `4.0`.
fn number_text(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

fn short(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use weft_engine::ErrorKind;

    use super::*;
    use crate::test_support::Sim;

    #[test]
    fn property_rows_become_text() {
        let rows = json!([
            {"name": "plan", "type": "text", "value": "annual"},
            {"name": "bikes_owned", "type": "number", "value": 2},
            {"name": "ratio", "type": "number", "value": "0.50"},
            {"name": "whole", "type": "number", "value": 4.0},
            {"name": "vip", "type": "boolean", "value": "yes"},
            {"name": "last_service", "type": "date", "value": "02/28/2024"},
            {"name": "next_service", "type": "date", "value": "2024-05-01 09:30"},
            {"name": "note", "value": 7},
            {"name": "skipped", "type": "text", "value": null},
            {"name": "blank", "value": ""},
            {"extra": true}
        ]);
        assert_eq!(
            Value::Object(properties_object(rows).unwrap()),
            json!({
                "plan": "annual", "bikes_owned": "2", "ratio": "0.5", "whole": "4", "vip": "true",
                "last_service": "2024-02-28", "next_service": "2024-05-01T09:30:00Z", "note": "7", "extra": "true"
            })
        );
        assert_eq!(
            Value::Object(properties_object(json!({"plan": "annual", "n": 3})).unwrap()),
            json!({"plan": "annual", "n": "3"})
        );
    }

    #[test]
    fn bad_property_rows_name_the_problem() {
        for (rows, needle) in [
            (json!([{"name": "", "value": 1}]), "row 1 has no `name`"),
            (json!(["plan"]), "row 1 must be"),
            (
                json!([{"name": "n", "type": "number", "value": "many"}]),
                "property `n`: `many` is not a number",
            ),
            (
                json!([{"name": "d", "type": "date", "value": "soon"}]),
                "property `d`: `soon` is not a date",
            ),
            (
                json!([{"name": "b", "type": "boolean", "value": "maybe"}]),
                "is not a boolean",
            ),
            (
                json!([{"name": "x", "type": "color", "value": "red"}]),
                "unknown type `color`",
            ),
            (json!("plan=annual"), "expected rows"),
        ] {
            let err = properties_object(rows.clone()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::DataError);
            assert!(err.message.contains(needle), "{rows}: {}", err.message);
        }
    }

    #[tokio::test]
    async fn creates_then_updates() {
        let sim = Sim::start().await;
        sim.seed(json!({"users": [{"email": "dana@harborbikes.example", "first_name": "Dana", "last_name": "Reyes"}]})).await;
        let out = sim
            .run(
                &CreateUpdateCustomer,
                json!({
                    "phone_number": "310.555.0147", "first_name": "Maya", "last_name": "Okafor",
                    "email": "maya@example.com", "zip_code": "90401", "timezone": "America/Los_Angeles",
                    "picture_url": "https://cdn.example.com/maya.png", "subscribed": true,
                    "properties": [{"name": "plan", "type": "text", "value": "annual"}, {"name": "bikes_owned", "type": "number", "value": 2}]
                }),
            )
            .await
            .unwrap();
        assert_eq!(out[0]["phone_number"], "+13105550147");
        assert_eq!(
            out[0]["properties"],
            json!({"plan": "annual", "bikes_owned": "2"})
        );
        assert_eq!(out[0]["zip_code"], "90401");

        let out = sim
            .run(
                &CreateUpdateCustomer,
                json!({
                    "phone_number": "+13105550147", "first_name": "", "last_name": null,
                    "user_email": "dana@harborbikes.example", "subscribed": false,
                    "properties": [{"name": "plan", "value": "monthly"}]
                }),
            )
            .await
            .unwrap();
        let state = sim.state();
        let customer = &state["customers"][0];
        assert_eq!(state["customers"].as_array().unwrap().len(), 1);
        assert_eq!(
            customer["first_name"], "Maya",
            "an empty field leaves the value"
        );
        assert_eq!(customer["last_name"], "Okafor");
        assert_eq!(
            customer["properties"],
            json!({"plan": "monthly", "bikes_owned": "2"})
        );
        assert_eq!(customer["subscribed"], false);
        assert_eq!(customer["assignee"]["email"], "dana@harborbikes.example");
        assert_eq!(&out[0], customer);
    }

    #[tokio::test]
    async fn unknown_agent_is_a_data_error_with_sonars_message() {
        let sim = Sim::start().await;
        let err = sim
            .run(
                &CreateUpdateCustomer,
                json!({"phone_number": "+13105550147", "user_email": "nobody@example.com"}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::DataError);
        assert!(
            err.message.contains("HTTP 400") && err.message.contains("`User not found`"),
            "{}",
            err.message
        );
    }
}
