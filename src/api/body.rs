//! Request bodies are JSON objects, nothing else.
//!
//! serde fills a struct from a JSON array too (`["a"]` as `{"text": "a"}` for a note), a shape
//! the contract does not have and a client should hear about. [`JsonObject`] reads the body as
//! an object first and only then as the endpoint's type, so an array (or any non-object) is a
//! 422 `invalid_body` like every other shape error. Found by the request-body property test.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A body of type `T` that was a JSON object on the wire.
pub struct JsonObject<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(d)?;
        // The inner error keeps serde's wording ("unknown field `x`"), which the extractor
        // reduces to a safe field name.
        T::deserialize(Value::Object(object))
            .map(JsonObject)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Note {
        text: String,
    }

    #[test]
    fn an_object_is_read_as_the_type() {
        let JsonObject(n) = serde_json::from_str::<JsonObject<Note>>(r#"{"text":"a"}"#).unwrap();
        assert_eq!(n, Note { text: "a".into() });
    }

    #[test]
    fn an_array_is_refused_although_serde_would_fill_the_struct_from_it() {
        assert!(serde_json::from_str::<Note>(r#"["a"]"#).is_ok());
        assert!(serde_json::from_str::<JsonObject<Note>>(r#"["a"]"#).is_err());
        assert!(serde_json::from_str::<JsonObject<Note>>("\"a\"").is_err());
    }

    #[test]
    fn an_unknown_field_is_still_named() {
        let e = serde_json::from_str::<JsonObject<Note>>(r#"{"text":"a","x":1}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}
