//! Reading one member of a JSON body by RFC 6901 pointer, strictly: a body
//! that does not parse, a member given twice anywhere, or a member that
//! only matches the pointer in another letter case is refused, since JSON
//! parsers differ on those and the caller must not pick which one counts.

use super::AccountError;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON document parsed with duplicate members refused.
pub struct Strict(Value);

impl Strict {
    pub fn parse(body: &[u8]) -> Result<Strict, AccountError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let v = de
            .deserialize_any(StrictVisitor)
            .map_err(|_| AccountError::BadBody)?;
        de.end().map_err(|_| AccountError::BadBody)?;
        Ok(Strict(v))
    }

    /// The text at `pointer` (a string, or an integer as decimal digits).
    /// `Ok(None)`: no such member.
    pub fn text(&self, pointer: &str) -> Result<Option<String>, AccountError> {
        let mut at = &self.0;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            at = match at {
                Value::Object(m) => {
                    if m.keys()
                        .any(|k| k != &token && k.eq_ignore_ascii_case(&token))
                    {
                        return Err(AccountError::DisguisedName);
                    }
                    match m.get(&token) {
                        Some(v) => v,
                        None => return Ok(None),
                    }
                }
                Value::Array(a) => match token.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                _ => return Ok(None),
            };
        }
        match at {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Value::Null => Ok(None),
            _ => Err(AccountError::BadAccountId),
        }
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            v.push(item);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom("a member is given twice"));
            }
            let v = map.next_value_seed(StrictSeed)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

struct StrictSeed;

impl<'de> de::DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(body: &str, pointer: &str) -> Result<Option<String>, AccountError> {
        Strict::parse(body.as_bytes())?.text(pointer)
    }

    #[test]
    fn members_are_found_by_pointer() {
        assert_eq!(at(r#"{"from":"acme"}"#, "/from"), Ok(Some("acme".into())));
        assert_eq!(
            at(r#"{"a":{"b/c":["x","y"]}}"#, "/a/b~1c/1"),
            Ok(Some("y".into()))
        );
        assert_eq!(
            at(r#"{"phone":123456789}"#, "/phone"),
            Ok(Some("123456789".into()))
        );
        assert_eq!(at(r#"{"to":"x"}"#, "/from"), Ok(None));
        assert_eq!(at(r#"[1]"#, "/from"), Ok(None));
        assert_eq!(
            at(r#"{"from":"\u0061cme"}"#, "/from"),
            Ok(Some("acme".into()))
        );
    }

    #[test]
    fn ambiguous_or_broken_bodies_are_refused() {
        assert!(matches!(
            at(r#"{"from":"acme","from":"globex"}"#, "/from"),
            Err(AccountError::BadBody)
        ));
        assert!(matches!(
            at(r#"{"x":{"a":1,"a":2},"from":"acme"}"#, "/from"),
            Err(AccountError::BadBody)
        ));
        assert_eq!(
            at(r#"{"From":"globex","from":"acme"}"#, "/from"),
            Err(AccountError::DisguisedName)
        );
        assert_eq!(
            at(r#"{"From":"globex"}"#, "/from"),
            Err(AccountError::DisguisedName)
        );
        assert_eq!(
            at(r#"{"from":["acme"]}"#, "/from"),
            Err(AccountError::BadAccountId)
        );
        assert_eq!(
            at(r#"{"from":1.5}"#, "/from"),
            Err(AccountError::BadAccountId)
        );
        assert!(matches!(
            at(r#"{"from":"acme"} x"#, "/from"),
            Err(AccountError::BadBody)
        ));
        assert!(matches!(
            at("{\"from\":\"ac\u{0}me\"", "/from"),
            Err(AccountError::BadBody)
        ));
    }
}
