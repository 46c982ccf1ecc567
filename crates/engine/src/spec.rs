//! Module specs: what a module is called, what it takes and what it outputs.
//!
//! A spec is plain data, built with `const` functions so each module declares it as a
//! `static`. The same table drives load-time validation, coercion of mapped values,
//! `weft modules` and the generated `docs/modules.md`.

use serde::Serialize;

/// What a module does in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Starts executions (instant webhook or schedule); always the first module.
    Trigger,
    /// Changes something in an app.
    Action,
    /// Reads something from an app.
    Search,
    /// Shapes the flow of bundles (router, iterator, aggregators, variables).
    Flow,
}

/// The declared type of a field; mapped values are coerced to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Any text; numbers and booleans are rendered to text.
    Text,
    /// A number; numeric text is parsed.
    Number,
    /// `true`/`false`; also the text `true`, `false`, `yes`, `no`, `1`, `0`.
    Boolean,
    /// A point in time, normalized to ISO 8601 (RFC 3339).
    Date,
    /// A JSON array; a scalar becomes a one-element array.
    Array,
    /// A JSON object.
    Collection,
    /// An absolute `http`/`https` URL.
    Url,
    /// A phone number (the module normalizes it; coercion only checks it is text).
    Phone,
    /// An email address.
    Email,
    /// Any JSON value, passed through unchanged.
    Any,
}

impl FieldType {
    /// The name used in specs, docs and error messages.
    pub const fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Array => "array",
            FieldType::Collection => "collection",
            FieldType::Url => "url",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Any => "any",
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One input field of a module.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FieldSpec {
    /// Field name as written under `params:` or `map:`.
    pub name: &'static str,
    /// Declared type; mapped values are coerced to it.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Whether the scenario must give it.
    pub required: bool,
    /// Only a static value under `params:` is allowed (no templates), e.g. a webhook name.
    pub param_only: bool,
    /// One sentence for users.
    pub help: &'static str,
    /// An example value, as YAML/JSON text.
    pub example: &'static str,
    /// For arrays: the type of each element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<FieldType>,
    /// For collections (or arrays of collections): their fields.
    #[serde(skip_serializing_if = "<[FieldSpec]>::is_empty")]
    pub fields: &'static [FieldSpec],
}

/// Starts a field spec; chain the builders to complete it.
pub const fn field(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required: false,
        param_only: false,
        help: "",
        example: "",
        items: None,
        fields: &[],
    }
}

impl FieldSpec {
    /// Marks the field as required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Marks the field as static configuration (only under `params:`).
    pub const fn param(mut self) -> Self {
        self.param_only = true;
        self
    }
    /// Sets the help sentence.
    pub const fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }
    /// Sets the example value (YAML/JSON text).
    pub const fn example(mut self, example: &'static str) -> Self {
        self.example = example;
        self
    }
    /// Sets the type of array elements.
    pub const fn items(mut self, items: FieldType) -> Self {
        self.items = Some(items);
        self
    }
    /// Sets the fields of a collection (or of each collection in an array).
    pub const fn fields(mut self, fields: &'static [FieldSpec]) -> Self {
        self.fields = fields;
        self
    }
}

/// One field of a module's output bundles.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OutputField {
    /// Key in the output bundle (dotted for nested keys, e.g. `customer.phone_number`).
    pub name: &'static str,
    /// Type of the value.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// One sentence for users.
    pub help: &'static str,
}

/// Declares one output field.
pub const fn out(name: &'static str, ty: FieldType, help: &'static str) -> OutputField {
    OutputField { name, ty, help }
}

/// Everything weft knows about a module without running it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ModuleSpec {
    /// `app.verb_object`, e.g. `sonar.send_message`.
    pub id: &'static str,
    /// Trigger, action, search or flow.
    pub kind: Kind,
    /// Short human title, e.g. "Send a message".
    pub label: &'static str,
    /// A paragraph for users.
    pub help: &'static str,
    /// The app whose connection the module needs (`connection:` must name one of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<&'static str>,
    /// Input fields.
    pub fields: &'static [FieldSpec],
    /// Output bundle fields.
    pub output: &'static [OutputField],
}

impl ModuleSpec {
    /// Finds an input field by name.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}
