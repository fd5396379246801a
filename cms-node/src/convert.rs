//! Values across the boundary: JavaScript arguments into the facade's JSON, and core errors into JavaScript
//! `Error`s carrying the stable code.
//!
//! Arguments go through JavaScript's own `JSON.stringify`, so a value means in CMS exactly what it means in a
//! JSON document: a `Date` becomes its ISO string (its `toJSON`), objects with a `toJSON` (decimal libraries)
//! become what that returns, `undefined` fields are left out. The facade then reads the JSON with its usual
//! checks: a number with a fraction where a decimal belongs is refused (`bad_decimal`), so money never
//! crosses as a float.

use cms_api::CmsError;
use cms_core::Location;
use napi::bindgen_prelude::{JsObjectValue, Unknown};
use napi::{Env, JSON, JsError, ValueType};
use serde_json::{Map, Value};

/// A JavaScript `Error` whose `code` is the core error's stable snake_case code and whose `message` is the
/// core's message. Returned from a synchronous method it is thrown; handed to a promise it rejects it with
/// that very object (napi keeps a reference to the JavaScript value).
pub(crate) fn js_error(env: Env, error: &CmsError) -> napi::Error {
    coded_error(env, error.code(), &error.to_string())
}

/// A JavaScript `Error` with any `code` (the core's codes, and `panic` for a caught internal error).
pub(crate) fn coded_error(env: Env, code: &str, message: &str) -> napi::Error {
    let error = JsError::from(napi::Error::new(code, message)).into_unknown(env);
    napi::Error::from(error)
}

/// The argument `field` of `method` as JSON; `None` when it is `undefined` (left out, as JSON.stringify
/// leaves out undefined fields). `null` stays `null`, which the facade reads as absent too.
pub(crate) fn argument(
    env: Env,
    method: &str,
    field: &str,
    value: Unknown<'_>,
) -> Result<Option<Value>, CmsError> {
    let bad = |message: String| CmsError::BadJson { at: Location::field(method, field), message };
    match value.get_type().map_err(|error| bad(error.reason))? {
        ValueType::Undefined => return Ok(None),
        ValueType::Null => return Ok(Some(Value::Null)),
        ValueType::Function | ValueType::Symbol => {
            return Err(bad("expected a JSON value, got a function or a symbol".into()));
        }
        _ => {}
    }
    let stringify = || -> napi::Result<String> {
        let json: JSON<'_> = env.get_global()?.get_named_property_unchecked("JSON")?;
        json.stringify(value)
    };
    // JSON.stringify throws on a BigInt or a cycle; its message says which.
    let text = stringify().map_err(|error| bad(format!("not representable as JSON: {}", error.reason)))?;
    serde_json::from_str(&text).map(Some).map_err(|error| bad(error.to_string()))
}

/// A string argument (a method name, a path): anything else is `bad_json` naming the field.
pub(crate) fn string_argument(
    env: Env,
    method: &str,
    field: &str,
    value: Unknown<'_>,
) -> Result<String, CmsError> {
    match argument(env, method, field, value)? {
        Some(Value::String(text)) => Ok(text),
        other => Err(CmsError::BadJson {
            at: Location::field(method, field),
            message: format!(
                "expected a string, got {}",
                other.map_or_else(|| "undefined".to_owned(), |value| value.to_string())
            ),
        }),
    }
}

/// The parameters object of a typed method: its named arguments, those given (not `undefined`) only, then
/// the fields of an `options` object if the method takes one. The facade checks names and types.
pub(crate) struct Arguments<'a> {
    env: Env,
    method: &'a str,
    fields: Map<String, Value>,
}

impl<'a> Arguments<'a> {
    /// The parameters of `method`, empty so far.
    pub(crate) fn new(env: Env, method: &'a str) -> Self {
        Self { env, method, fields: Map::new() }
    }

    /// Add the argument `field` (left out when `undefined`, or when an optional argument is not given).
    pub(crate) fn with<'v>(
        mut self,
        field: &str,
        value: impl Into<Option<Unknown<'v>>>,
    ) -> Result<Self, CmsError> {
        let Some(value) = value.into() else { return Ok(self) };
        if let Some(value) = argument(self.env, self.method, field, value)? {
            self.fields.insert(field.to_owned(), value);
        }
        Ok(self)
    }

    /// Add every field of an options object (not given, `undefined` or `null`: none). A field that is also a
    /// named argument is refused, so an option never silently overrides an argument.
    pub(crate) fn with_options<'v>(
        mut self,
        options: impl Into<Option<Unknown<'v>>>,
    ) -> Result<Self, CmsError> {
        let Some(options) = options.into() else { return Ok(self) };
        match argument(self.env, self.method, "options", options)? {
            None | Some(Value::Null) => Ok(self),
            Some(Value::Object(options)) => {
                for (key, value) in options {
                    if self.fields.contains_key(&key) {
                        return Err(CmsError::BadJson {
                            at: Location::field(self.method, &format!("options.{key}")),
                            message: "given both as an argument and as an option".into(),
                        });
                    }
                    self.fields.insert(key, value);
                }
                Ok(self)
            }
            Some(other) => Err(CmsError::BadJson {
                at: Location::field(self.method, "options"),
                message: format!("expected an object of options, got {other}"),
            }),
        }
    }

    /// The parameters, as the facade takes them.
    pub(crate) fn finish(self) -> Value {
        Value::Object(self.fields)
    }
}
