//! Reading a call's parameters: a JSON object whose fields each handler takes by name, with typed errors
//! that name the method and the field.
//!
//! Conventions (the same in every language, since every binding hands its JSON here):
//! - `principal`: `{"id": "...", "node": "..."}` (`node` defaults to the platform);
//! - instants: RFC 3339 strings (`"2026-10-01T00:00:00Z"`; an offset is converted to UTC);
//! - periods: `"YYYY-MM"` (a calendar month), `"START/END"` (two instants), or `{"start", "end"}`;
//! - decimals: strings (`"0.05"`); a JSON number is refused (`bad_decimal`), so no float ever carries money;
//! - meters: GUID strings, with or without dashes, any case;
//! - domain documents (events, change sets, usage records, billing rules): the core's serde JSON.
//!
//! Errors: a field of the wrong JSON type, missing, or not expected by the method is `bad_json` at
//! `<method> field <name>`; a value of the right type that does not parse has its own code
//! (`bad_timestamp`, `invalid_period`, `bad_decimal`, `bad_meter_id`).

use cms_core::engine::{PLATFORM_ID, Principal};
use cms_core::model::meter::MeterId;
use cms_core::model::money::parse_decimal;
use cms_core::model::time::{Instant, Period, parse_timestamp};
use cms_core::{CmsError, Decimal, Location};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The parameters of one call, consumed field by field.
#[derive(Debug)]
pub struct Params {
    method: String,
    fields: Map<String, Value>,
}

/// A `bad_json` error at `method field field`.
pub fn bad_field(method: &str, field: &str, message: impl Into<String>) -> CmsError {
    CmsError::BadJson { at: Location::field(method, field), message: message.into() }
}

/// The JSON type of a value, for messages.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuse a JSON number with a fraction or an exponent anywhere in a parameter: no parameter is a float,
/// and a decimal read from one would not be the decimal written (`0.1` is not one tenth as an `f64`).
/// Integers (counts, days, scales) pass.
fn refuse_floats(method: &str, path: &str, value: &Value) -> Result<(), CmsError> {
    match value {
        Value::Number(number) if number.is_f64() => Err(CmsError::BadDecimal {
            at: Location::field(method, path),
            field: path.to_owned(),
            text: format!("{number} (a JSON number: decimals are passed as strings)"),
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| refuse_floats(method, &format!("{path}[{index}]"), item)),
        Value::Object(fields) => {
            fields.iter().try_for_each(|(key, item)| refuse_floats(method, &format!("{path}.{key}"), item))
        }
        _ => Ok(()),
    }
}

impl Params {
    /// The parameters of `method`: a JSON object, or `null` for none.
    pub fn new(method: &str, params: Value) -> Result<Self, CmsError> {
        let fields = match params {
            Value::Null => Map::new(),
            Value::Object(fields) => fields,
            other => {
                return Err(CmsError::BadJson {
                    at: Location::whole(format!("{method} params")),
                    message: format!("expected an object of named parameters, got {}", type_of(&other)),
                });
            }
        };
        for (name, value) in &fields {
            refuse_floats(method, name, value)?;
        }
        Ok(Self { method: method.to_owned(), fields })
    }

    /// The method these parameters are for.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn error(&self, field: &str, message: impl Into<String>) -> CmsError {
        bad_field(&self.method, field, message)
    }

    fn location(&self, field: &str) -> Location {
        Location::field(self.method.clone(), field)
    }

    /// Take a field; `null` counts as absent.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.fields.remove(field).filter(|value| !value.is_null())
    }

    /// Take a field that must be present.
    pub fn required(&mut self, field: &str) -> Result<Value, CmsError> {
        self.take(field).ok_or_else(|| self.error(field, "required, missing"))
    }

    /// A string field.
    pub fn string(&mut self, field: &str) -> Result<String, CmsError> {
        let value = self.required(field)?;
        self.as_string(field, value)
    }

    /// An optional string field.
    pub fn opt_string(&mut self, field: &str) -> Result<Option<String>, CmsError> {
        self.take(field).map(|value| self.as_string(field, value)).transpose()
    }

    fn as_string(&self, field: &str, value: Value) -> Result<String, CmsError> {
        match value {
            Value::String(text) => Ok(text),
            other => Err(self.error(field, format!("expected a string, got {}", type_of(&other)))),
        }
    }

    /// An optional list of strings.
    pub fn opt_strings(&mut self, field: &str) -> Result<Option<Vec<String>>, CmsError> {
        let Some(value) = self.take(field) else { return Ok(None) };
        let Value::Array(items) = value else {
            return Err(self.error(field, format!("expected an array of strings, got {}", type_of(&value))));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| self.as_string(&format!("{field}[{index}]"), item))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A boolean field, `default` when absent.
    pub fn flag(&mut self, field: &str, default: bool) -> Result<bool, CmsError> {
        match self.take(field) {
            None => Ok(default),
            Some(Value::Bool(flag)) => Ok(flag),
            Some(other) => Err(self.error(field, format!("expected a boolean, got {}", type_of(&other)))),
        }
    }

    /// An optional non-negative integer field.
    pub fn opt_count(&mut self, field: &str) -> Result<Option<u64>, CmsError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Number(number)) if number.as_u64().is_some() => Ok(number.as_u64()),
            Some(other) => {
                Err(self.error(field, format!("expected a non-negative integer, got {}", type_of(&other))))
            }
        }
    }

    /// The acting principal: `{"id": "...", "node": "..."}` in field `principal` (`node` defaults to the
    /// platform).
    pub fn principal(&mut self) -> Result<Principal, CmsError> {
        let value = self.required("principal")?;
        let Value::Object(mut fields) = value else {
            return Err(
                self.error("principal", format!("expected {{\"id\", \"node\"}}, got {}", type_of(&value)))
            );
        };
        let mut text = |key: &str| match fields.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text)),
            Some(other) => Err(self.error(
                &format!("principal.{key}"),
                format!("expected a non-empty string, got {}", type_of(&other)),
            )),
        };
        let id = text("id")?.ok_or_else(|| self.error("principal.id", "required, missing"))?;
        let node = text("node")?.unwrap_or_else(|| PLATFORM_ID.to_owned());
        if let Some(extra) = fields.keys().next() {
            return Err(self.error(&format!("principal.{extra}"), "unexpected field (expected id, node)"));
        }
        Ok(Principal { id, node })
    }

    /// An instant: an RFC 3339 string.
    pub fn instant(&mut self, field: &str) -> Result<Instant, CmsError> {
        let text = self.string(field)?;
        parse_timestamp(&text).ok_or_else(|| CmsError::BadTimestamp {
            at: self.location(field),
            field: field.to_owned(),
            text,
        })
    }

    /// An optional instant.
    pub fn opt_instant(&mut self, field: &str) -> Result<Option<Instant>, CmsError> {
        if self.fields.get(field).is_none_or(Value::is_null) {
            return Ok(None);
        }
        self.instant(field).map(Some)
    }

    /// A period: `"YYYY-MM"`, `"START/END"`, or `{"start", "end"}`.
    pub fn period(&mut self, field: &str) -> Result<Period, CmsError> {
        let value = self.required(field)?;
        self.as_period(field, value)
    }

    /// An optional period.
    pub fn opt_period(&mut self, field: &str) -> Result<Option<Period>, CmsError> {
        self.take(field).map(|value| self.as_period(field, value)).transpose()
    }

    fn as_period(&self, field: &str, value: Value) -> Result<Period, CmsError> {
        let in_field = |error: CmsError| match error {
            CmsError::InvalidPeriod { text, reason } => {
                CmsError::InvalidPeriod { text, reason: format!("{reason} ({} field {field})", self.method) }
            }
            other => other,
        };
        match value {
            Value::String(text) => text.parse::<Period>().map_err(in_field),
            Value::Object(_) => {
                let period: Period = self.typed_value(field, value)?;
                Period::new(period.start, period.end).map_err(in_field)
            }
            other => Err(self.error(
                field,
                format!(
                    "expected a period (\"YYYY-MM\", \"START/END\" or {{start, end}}), got {}",
                    type_of(&other)
                ),
            )),
        }
    }

    /// A decimal: a string (`"0.05"`). A JSON number is refused: decimals never cross as floats.
    pub fn decimal(&mut self, field: &str) -> Result<Decimal, CmsError> {
        let value = self.required(field)?;
        self.as_decimal(field, value)
    }

    fn as_decimal(&self, field: &str, value: Value) -> Result<Decimal, CmsError> {
        let text = match value {
            Value::String(text) => text,
            Value::Number(number) => {
                return Err(CmsError::BadDecimal {
                    at: self.location(field),
                    field: field.to_owned(),
                    text: format!("{number} (a JSON number: decimals are passed as strings)"),
                });
            }
            other => {
                return Err(self.error(field, format!("expected a decimal string, got {}", type_of(&other))));
            }
        };
        parse_decimal(&text).ok_or_else(|| CmsError::BadDecimal {
            at: self.location(field),
            field: field.to_owned(),
            text,
        })
    }

    /// A meter id: a GUID string.
    pub fn meter(&mut self, field: &str) -> Result<MeterId, CmsError> {
        let text = self.string(field)?;
        self.as_meter(field, text)
    }

    fn as_meter(&self, field: &str, text: String) -> Result<MeterId, CmsError> {
        text.parse::<MeterId>().map_err(|_| CmsError::BadMeterId { at: self.location(field), text })
    }

    /// A list of `{"meter", "quantity"}` items (the cost calculator's input).
    pub fn meter_quantities(&mut self, field: &str) -> Result<Vec<(MeterId, Decimal)>, CmsError> {
        let value = self.required(field)?;
        let Value::Array(items) = value else {
            return Err(self
                .error(field, format!("expected an array of {{meter, quantity}}, got {}", type_of(&value))));
        };
        let mut pairs = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let at = format!("{field}[{index}]");
            let Value::Object(mut item) = item else {
                return Err(self.error(&at, "expected {meter, quantity}"));
            };
            let meter = match item.remove("meter") {
                Some(Value::String(text)) => self.as_meter(&format!("{at}.meter"), text)?,
                _ => return Err(self.error(&format!("{at}.meter"), "required string, missing")),
            };
            let quantity = self.as_decimal(
                &format!("{at}.quantity"),
                item.remove("quantity")
                    .ok_or_else(|| self.error(&format!("{at}.quantity"), "required, missing"))?,
            )?;
            if let Some(extra) = item.keys().next() {
                return Err(
                    self.error(&format!("{at}.{extra}"), "unexpected field (expected meter, quantity)")
                );
            }
            pairs.push((meter, quantity));
        }
        Ok(pairs)
    }

    /// A domain document in the core's serde JSON (an event, a change set, usage records, ...). A mismatch
    /// names the path inside the document: `event.list.versions[0].effective`.
    pub fn typed<T: DeserializeOwned>(&mut self, field: &str) -> Result<T, CmsError> {
        let value = self.required(field)?;
        self.typed_value(field, value)
    }

    /// An optional domain document.
    pub fn opt_typed<T: DeserializeOwned>(&mut self, field: &str) -> Result<Option<T>, CmsError> {
        self.take(field).map(|value| self.typed_value(field, value)).transpose()
    }

    fn typed_value<T: DeserializeOwned>(&self, field: &str, value: Value) -> Result<T, CmsError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            let at = if path == "." { field.to_owned() } else { format!("{field}.{path}") };
            self.error(&at, error.into_inner().to_string())
        })
    }

    /// Refuse fields the method did not take (a misspelt optional parameter would otherwise be ignored).
    pub fn finish(self) -> Result<(), CmsError> {
        match self.fields.keys().next() {
            Some(field) => {
                Err(self.error(field, "unexpected parameter (methods() lists each method's parameters)"))
            }
            None => Ok(()),
        }
    }
}
