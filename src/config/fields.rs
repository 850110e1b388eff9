//! The field names a serde struct accepts, read from its `Deserialize` impl, so the
//! unknown-field check never drifts from the types.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The fields `T` (a struct deriving `Deserialize`) accepts.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture {
        fields: &mut fields,
    });
    fields
}

struct Capture<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Captured;

impl std::fmt::Display for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names captured")
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Captured
    }
}

impl<'de> Deserializer<'de> for Capture<'_> {
    type Error = Captured;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Captured> {
        *self.fields = fields;
        Err(Captured)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Captured> {
        Err(Captured)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::{RawHealth, RawService};

    #[test]
    fn reads_struct_fields() {
        let f = field_names::<RawService>();
        assert!(f.contains(&"depends_on") && f.contains(&"health"), "{f:?}");
        assert!(field_names::<RawHealth>().contains(&"start_period"));
    }
}
