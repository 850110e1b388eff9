//! A deterministic JSON document valid against a JSON Schema: what the mock answers for
//! structured outputs and forced tool calls (SPEC §4.2, "Agents and structured outputs").
//!
//! One walk of the schema, seeded: the same schema and seed always give the same
//! document. Every property is filled (optional ones too, but for deep recursion), arrays
//! get two items within their bounds, numbers land inside their bounds and on their
//! `multipleOf`, strings follow their `format`, `pattern` and length bounds; `$ref` (local,
//! `$defs`/`definitions`), `allOf` (merged), `anyOf`/`oneOf` (the first branch that can be
//! met) and `not: {type}` are understood. A schema no document can meet, or one whose
//! keywords the mock does not follow (`if`/`then`), is an [`Unsatisfiable`] naming where.

use std::fmt;

use serde_json::{Map, Value, json};

use super::pattern;
use super::text::{WORDS, fnv, mix};

/// Past this depth only required properties and the fewest items are made, and `anyOf`
/// prefers a branch that ends the recursion.
const SHALLOW_FROM: usize = 5;
/// A schema that still recurses this deep cannot be met by a finite document.
const MAX_DEPTH: usize = 48;

/// Why no document can be made, and where in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsatisfiable {
    /// Where in the document (`$.address.zip`).
    pub path: String,
    /// What cannot be met.
    pub reason: String,
}

impl fmt::Display for Unsatisfiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at `{}`: {}", self.path, self.reason)
    }
}

/// A document valid against `schema`, the same for the same `seed`.
pub(crate) fn generate(schema: &Value, seed: u64) -> Result<Value, Unsatisfiable> {
    let mut g = Gen {
        root: schema,
        path: vec!["$".to_string()],
    };
    g.value(schema, seed, 0)
}

struct Gen<'a> {
    root: &'a Value,
    path: Vec<String>,
}

type Res<T> = Result<T, Unsatisfiable>;

impl<'a> Gen<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Res<T> {
        let mut path = String::new();
        for (i, seg) in self.path.iter().enumerate() {
            if i > 0 && !seg.starts_with('[') {
                path.push('.');
            }
            path.push_str(seg);
        }
        Err(Unsatisfiable {
            path,
            reason: reason.into(),
        })
    }

    fn nested<T>(&mut self, seg: String, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    fn value(&mut self, schema: &Value, seed: u64, depth: usize) -> Res<Value> {
        if depth > MAX_DEPTH {
            return self.fail(format!(
                "the schema recurses deeper than {MAX_DEPTH} levels without a way out (an optional property or a `null` branch)"
            ));
        }
        let s = match schema {
            Value::Bool(true) => return Ok(json!(words(seed, 2))),
            Value::Bool(false) => return self.fail("the schema is `false`: no value is valid"),
            Value::Object(s) => s,
            _ => return self.fail("a schema must be an object or a boolean"),
        };
        let s = self.flatten(s, depth)?;
        if let Some(v) = s.get("const") {
            return Ok(v.clone());
        }
        if let Some(e) = s.get("enum") {
            return match e.as_array() {
                Some(values) if !values.is_empty() => {
                    Ok(values[(seed % values.len() as u64) as usize].clone())
                }
                _ => self.fail("`enum` lists no value"),
            };
        }
        for kw in ["if", "dependentSchemas", "patternProperties"] {
            if s.contains_key(kw) {
                return self.fail(format!("the mock does not follow `{kw}`"));
            }
        }
        if let Some(branches) = s.get("anyOf").or_else(|| s.get("oneOf")) {
            return self.branch(&s, branches, seed, depth);
        }
        match self.type_of(&s)? {
            "object" => self.object(&s, seed, depth),
            "array" => self.array(&s, seed, depth),
            "string" => self.string(&s, seed),
            "integer" => self.integer(&s, seed).map(Value::from),
            "number" => self.number(&s, seed),
            "boolean" => Ok(Value::Bool(seed & 1 == 0)),
            "null" => Ok(Value::Null),
            other => self.fail(format!("unknown `type` {other:?}")),
        }
    }

    /// The schema with its `$ref` and `allOf` merged in, so one object says it all.
    fn flatten(&mut self, s: &Map<String, Value>, depth: usize) -> Res<Map<String, Value>> {
        let mut out = s.clone();
        if let Some(r) = out.remove("$ref") {
            let Some(r) = r.as_str() else {
                return self.fail("`$ref` must be a string");
            };
            let target = match self.resolve(r) {
                Some(Value::Object(t)) => t.clone(),
                Some(Value::Bool(true)) => Map::new(),
                Some(_) => return self.fail(format!("`$ref` {r:?} does not point at a schema")),
                None => {
                    return self.fail(format!(
                        "`$ref` {r:?} points at nothing in this schema (only local `#/…` references are followed)"
                    ));
                }
            };
            if depth > MAX_DEPTH {
                return self.fail(format!("`$ref` {r:?} recurses without end"));
            }
            let target = self.flatten(&target, depth + 1)?;
            self.merge(&mut out, &target)?;
        }
        if let Some(all) = out.remove("allOf") {
            let Some(all) = all.as_array() else {
                return self.fail("`allOf` must be a list");
            };
            for sub in all {
                match sub {
                    Value::Object(sub) => {
                        let sub = self.flatten(sub, depth + 1)?;
                        self.merge(&mut out, &sub)?;
                    }
                    Value::Bool(true) => {}
                    _ => return self.fail("`allOf` holds a schema that nothing satisfies"),
                }
            }
        }
        if let Some(not) = out.remove("not") {
            let excluded: Vec<String> = match not.get("type") {
                Some(t) if not.as_object().is_some_and(|o| o.len() == 1) => types(t),
                _ => return self.fail("the mock follows `not` only as `not: {type: …}`"),
            };
            let allowed: Vec<Value> = types(out.get("type").unwrap_or(&json!(ALL_TYPES)))
                .into_iter()
                .filter(|t| !excluded.contains(t))
                .map(Value::from)
                .collect();
            out.insert("type".into(), Value::Array(allowed));
        }
        Ok(out)
    }

    fn resolve(&self, r: &str) -> Option<&'a Value> {
        let pointer = r.strip_prefix('#')?;
        let decoded = percent_encoding::percent_decode_str(pointer)
            .decode_utf8()
            .ok()?;
        self.root.pointer(&decoded)
    }

    /// Adds `from`'s constraints to `into`: properties and `required` united, bounds
    /// tightened, types and enums intersected.
    fn merge(&self, into: &mut Map<String, Value>, from: &Map<String, Value>) -> Res<()> {
        for (k, v) in from {
            let Some(have) = into.get_mut(k) else {
                into.insert(k.clone(), v.clone());
                continue;
            };
            match k.as_str() {
                "properties" => {
                    if let (Some(a), Some(b)) = (have.as_object_mut(), v.as_object()) {
                        for (name, sb) in b {
                            match a.get_mut(name) {
                                Some(sa) => *sa = json!({"allOf": [sa.clone(), sb.clone()]}),
                                None => {
                                    a.insert(name.clone(), sb.clone());
                                }
                            }
                        }
                    }
                }
                "required" => {
                    if let (Some(a), Some(b)) = (have.as_array_mut(), v.as_array()) {
                        for name in b {
                            if !a.contains(name) {
                                a.push(name.clone());
                            }
                        }
                    }
                }
                "minimum" | "exclusiveMinimum" | "minLength" | "minItems" | "minProperties" => {
                    if v.as_f64() > have.as_f64() {
                        *have = v.clone();
                    }
                }
                "maximum" | "exclusiveMaximum" | "maxLength" | "maxItems" | "maxProperties" => {
                    if v.as_f64() < have.as_f64() {
                        *have = v.clone();
                    }
                }
                "type" => {
                    let b = types(v);
                    let both: Vec<Value> = types(have)
                        .into_iter()
                        .filter_map(|t| match (t.as_str(), b.contains(&t)) {
                            (_, true) => Some(t),
                            ("number", false) if b.iter().any(|x| x == "integer") => {
                                Some("integer".to_string())
                            }
                            _ => None,
                        })
                        .map(Value::from)
                        .collect();
                    if both.is_empty() {
                        return self.fail(format!("`allOf` asks for types {have} and {v} at once"));
                    }
                    *have = Value::Array(both);
                }
                "enum" => {
                    if let (Some(a), Some(b)) = (have.as_array_mut(), v.as_array()) {
                        a.retain(|x| b.contains(x));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn branch(
        &mut self,
        s: &Map<String, Value>,
        branches: &Value,
        seed: u64,
        depth: usize,
    ) -> Res<Value> {
        let Some(list) = branches.as_array().filter(|l| !l.is_empty()) else {
            return self.fail("`anyOf`/`oneOf` must be a non-empty list");
        };
        let mut rest = s.clone();
        rest.remove("anyOf");
        rest.remove("oneOf");
        // Deep in a recursive schema, a branch that ends it (null, a plain type) goes first.
        let mut order: Vec<&Value> = list.iter().collect();
        if depth >= SHALLOW_FROM {
            order.sort_by_key(|b| u8::from(!is_leaf(b)));
        }
        let mut first_err = None;
        for b in order {
            let mut merged = rest.clone();
            match b {
                Value::Object(b) => {
                    let b = self.flatten(b, depth + 1)?;
                    self.merge(&mut merged, &b)?;
                }
                Value::Bool(true) => {}
                _ => continue,
            }
            match self.value(&Value::Object(merged), seed, depth + 1) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => self.fail(format!("no branch of `anyOf`/`oneOf` can be met ({e})")),
            None => self.fail("no branch of `anyOf`/`oneOf` can be met"),
        }
    }

    fn type_of(&self, s: &Map<String, Value>) -> Res<&'static str> {
        let declared = match s.get("type") {
            Some(t) => types(t),
            None => {
                let inferred = if ["properties", "required", "additionalProperties"]
                    .iter()
                    .any(|k| s.contains_key(*k))
                {
                    "object"
                } else if ["items", "prefixItems", "minItems", "maxItems"]
                    .iter()
                    .any(|k| s.contains_key(*k))
                {
                    "array"
                } else if ["minimum", "maximum", "multipleOf", "exclusiveMinimum"]
                    .iter()
                    .any(|k| s.contains_key(*k))
                {
                    "number"
                } else {
                    "string"
                };
                return Ok(inferred);
            }
        };
        if declared.is_empty() {
            return self.fail("`type` allows no type");
        }
        // The first type but `null`, unless `null` is all there is.
        let pick = declared
            .iter()
            .find(|t| *t != "null")
            .unwrap_or(&declared[0]);
        match ALL_TYPES.iter().find(|t| **t == pick.as_str()) {
            Some(t) => Ok(t),
            None => self.fail(format!("unknown `type` {pick:?}")),
        }
    }

    fn object(&mut self, s: &Map<String, Value>, seed: u64, depth: usize) -> Res<Value> {
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let extra = s.get("additionalProperties");
        let closed = matches!(extra, Some(Value::Bool(false)));
        let shallow = depth >= SHALLOW_FROM;
        let mut out = Map::new();
        for (name, sub) in props {
            if shallow && !required.contains(&name.as_str()) {
                continue;
            }
            let v = self.nested(name.clone(), |g| {
                g.value(sub, mix(seed ^ fnv(name.as_bytes())), depth + 1)
            })?;
            out.insert(name.clone(), v);
        }
        let extra_schema = match extra {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::Bool(true),
        };
        for name in required.iter().filter(|n| !props.contains_key(**n)) {
            if closed {
                return self.fail(format!(
                    "`required` names `{name}`, which `properties` does not define and `additionalProperties: false` forbids"
                ));
            }
            let v = self.nested(name.to_string(), |g| {
                g.value(&extra_schema, mix(seed ^ fnv(name.as_bytes())), depth + 1)
            })?;
            out.insert(name.to_string(), v);
        }
        let min = bound(s, "minProperties").unwrap_or(0);
        let mut i = 1;
        while (out.len() as u64) < min {
            if closed {
                return self.fail(format!(
                    "`minProperties: {min}` needs more properties than `properties` defines and `additionalProperties: false` allows"
                ));
            }
            let name = format!("extra_{i}");
            let v = self.nested(name.clone(), |g| {
                g.value(&extra_schema, mix(seed ^ i), depth + 1)
            })?;
            out.insert(name, v);
            i += 1;
        }
        if let Some(max) = bound(s, "maxProperties") {
            if (required.len() as u64) > max {
                return self.fail(format!(
                    "`required` lists {} properties but `maxProperties` is {max}",
                    required.len()
                ));
            }
            let optional: Vec<String> = out
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .cloned()
                .collect();
            for k in optional.iter().rev() {
                if (out.len() as u64) <= max {
                    break;
                }
                out.remove(k);
            }
        }
        Ok(Value::Object(out))
    }

    fn array(&mut self, s: &Map<String, Value>, seed: u64, depth: usize) -> Res<Value> {
        let prefix: &[Value] = s
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let items = s.get("items").cloned().unwrap_or(Value::Bool(true));
        let min = bound(s, "minItems").unwrap_or(0);
        let mut max = bound(s, "maxItems").unwrap_or(u64::MAX);
        if items == Value::Bool(false) {
            max = max.min(prefix.len() as u64);
        }
        if min > max {
            return self.fail(format!(
                "`minItems: {min}` is more than the {max} items allowed"
            ));
        }
        let want = if depth >= SHALLOW_FROM { 0 } else { 2 };
        let n = (want.max(prefix.len() as u64)).clamp(min, max);
        let unique = s.get("uniqueItems") == Some(&Value::Bool(true));
        let contains = s.get("contains");
        let mut out: Vec<Value> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut schema = prefix.get(i as usize).unwrap_or(&items).clone();
            if i == 0
                && let Some(c) = contains
            {
                schema = json!({"allOf": [schema, c]});
            }
            let mut tries = 0u64;
            let v = loop {
                let item_seed = mix(seed ^ (i << 8) ^ tries);
                let v =
                    self.nested(format!("[{i}]"), |g| g.value(&schema, item_seed, depth + 1))?;
                if !unique || !out.contains(&v) {
                    break v;
                }
                tries += 1;
                if tries > 16 {
                    return self.fail(format!(
                        "`uniqueItems` wants {n} different items, but the item schema gives too few values"
                    ));
                }
            };
            out.push(v);
        }
        if n == 0
            && let Some(c) = contains
        {
            if max == 0 {
                return self.fail("`contains` needs an item but `maxItems` is 0");
            }
            let v = self.nested("[0]".into(), |g| {
                g.value(&json!({"allOf": [items, c]}), seed, depth + 1)
            })?;
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn string(&mut self, s: &Map<String, Value>, seed: u64) -> Res<Value> {
        let min = bound(s, "minLength").unwrap_or(0) as usize;
        let max = bound(s, "maxLength").map_or(usize::MAX, |m| m as usize);
        if min > max {
            return self.fail(format!(
                "`minLength: {min}` is more than `maxLength: {max}`"
            ));
        }
        let shaped = match (s.get("format").and_then(Value::as_str), s.get("pattern")) {
            (_, Some(p)) => {
                let Some(p) = p.as_str() else {
                    return self.fail("`pattern` must be a string");
                };
                Some(("`pattern`", pattern::sample(p).or_else(|e| self.fail(e))?))
            }
            (Some(f), None) => formatted(f, seed).map(|v| ("`format`", v)),
            (None, None) => None,
        };
        if let Some((what, v)) = shaped {
            let len = v.chars().count();
            if len < min || len > max {
                return self.fail(format!(
                    "a string of {what} is {len} characters, outside the length bounds {min}..{}",
                    if max == usize::MAX {
                        "".to_string()
                    } else {
                        max.to_string()
                    }
                ));
            }
            return Ok(Value::String(v));
        }
        let mut text = words(seed, 2);
        let mut x = seed;
        while text.chars().count() < min {
            x = mix(x);
            text.push(' ');
            text.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
        }
        if text.chars().count() > max {
            text = text.chars().take(max).collect();
        }
        Ok(Value::String(text))
    }

    fn integer(&mut self, s: &Map<String, Value>, seed: u64) -> Res<i64> {
        let (lo, hi) = bounds(s);
        let lo = lo.map(|(v, open)| {
            if open {
                v.floor() as i64 + 1
            } else {
                v.ceil() as i64
            }
        });
        let hi = hi.map(|(v, open)| {
            if open {
                v.ceil() as i64 - 1
            } else {
                v.floor() as i64
            }
        });
        let step = match s.get("multipleOf").and_then(Value::as_f64) {
            Some(m) if m > 0.0 && m.fract() == 0.0 => m as i64,
            Some(m) if m > 0.0 => {
                return self.fail(format!(
                    "an integer cannot be a multiple of {m} (the mock answers whole multiples only)"
                ));
            }
            Some(_) => return self.fail("`multipleOf` must be greater than 0"),
            None => 1,
        };
        let spread = (seed % 10) as i64;
        let want = match (lo, hi) {
            (Some(l), Some(h)) if l > h => {
                return self.fail(format!("no integer lies between {l} and {h}"));
            }
            (Some(l), Some(h)) => l + ((seed as i128 % (i128::from(h) - i128::from(l) + 1)) as i64),
            (Some(l), None) => l.saturating_add(spread),
            (None, Some(h)) => h.saturating_sub(spread),
            (None, None) => 1 + (seed % 100) as i64,
        };
        if step == 1 {
            return Ok(want);
        }
        // The multiple nearest above `want`, else the first one from the bottom.
        let up = want.div_euclid(step) * step + if want.rem_euclid(step) == 0 { 0 } else { step };
        let fits = |v: i64| lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v <= h);
        if fits(up) {
            return Ok(up);
        }
        if let Some(l) = lo {
            let first = l.div_euclid(step) * step + if l.rem_euclid(step) == 0 { 0 } else { step };
            if fits(first) {
                return Ok(first);
            }
        }
        self.fail(format!("no multiple of {step} lies within the bounds"))
    }

    fn number(&mut self, s: &Map<String, Value>, seed: u64) -> Res<Value> {
        if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
            if m <= 0.0 {
                return self.fail("`multipleOf` must be greater than 0");
            }
            let (lo, hi) = bounds(s);
            let lo_k = lo.map(|(v, open)| {
                let k = (v / m).ceil();
                if open && k * m <= v { k + 1.0 } else { k }
            });
            let hi_k = hi.map(|(v, open)| {
                let k = (v / m).floor();
                if open && k * m >= v { k - 1.0 } else { k }
            });
            let k = match (lo_k, hi_k) {
                (Some(l), Some(h)) if l > h => {
                    return self.fail(format!("no multiple of {m} lies within the bounds"));
                }
                (Some(l), Some(h)) => l + ((seed % ((h - l) as u64 + 1)) as f64),
                (Some(l), None) => l + (seed % 10) as f64,
                (None, Some(h)) => h - (seed % 10) as f64,
                (None, None) => 1.0 + (seed % 100) as f64,
            };
            return Ok(number(k * m));
        }
        let (lo, hi) = bounds(s);
        let frac = ((seed % 89) + 5) as f64 / 100.0; // 0.05..0.93: never an open bound
        let v = match (lo, hi) {
            (Some((l, lo_open)), Some((h, hi_open))) => {
                if l > h || (l == h && (lo_open || hi_open)) {
                    return self.fail(format!("no number lies between {l} and {h}"));
                }
                l + (h - l) * frac
            }
            (Some((l, _)), None) => l + 1.0 + frac,
            (None, Some((h, _))) => h - 1.0 - frac,
            (None, None) => (seed % 10_000) as f64 / 100.0,
        };
        // Two decimals read well; keep them only while they stay inside the bounds.
        let rounded = (v * 100.0).round() / 100.0;
        let inside = |x: f64| {
            lo.is_none_or(|(l, open)| if open { x > l } else { x >= l })
                && hi.is_none_or(|(h, open)| if open { x < h } else { x <= h })
        };
        Ok(number(if inside(rounded) { rounded } else { v }))
    }
}

const ALL_TYPES: [&str; 7] = [
    "object", "array", "string", "integer", "number", "boolean", "null",
];

/// The names in a `type` (a string or a list).
fn types(t: &Value) -> Vec<String> {
    match t {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a branch ends a recursion: no `$ref`, no nested object or array.
fn is_leaf(b: &Value) -> bool {
    let Some(o) = b.as_object() else {
        return true;
    };
    !o.contains_key("$ref")
        && !types(o.get("type").unwrap_or(&Value::Null))
            .iter()
            .any(|t| t == "object" || t == "array")
}

/// A non-negative whole-number keyword (`minItems`…).
fn bound(s: &Map<String, Value>, key: &str) -> Option<u64> {
    s.get(key)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
}

/// The lower and upper bounds, each with whether it is open (exclusive). Both the
/// numeric (2019+) and the boolean (draft 4) `exclusive*` forms are read; with both an
/// inclusive and an exclusive bound on one side, the stricter holds.
fn bounds(s: &Map<String, Value>) -> (Option<(f64, bool)>, Option<(f64, bool)>) {
    let side = |inclusive: &str, exclusive: &str, stricter: fn(f64, f64) -> bool| {
        let closed = s.get(inclusive).and_then(Value::as_f64);
        match (s.get(exclusive), closed) {
            (Some(Value::Bool(true)), c) => c.map(|c| (c, true)),
            (Some(Value::Number(e)), Some(c)) if e.as_f64().is_none_or(|e| stricter(c, e)) => {
                Some((c, false))
            }
            (Some(Value::Number(e)), _) => e.as_f64().map(|e| (e, true)),
            (_, c) => c.map(|c| (c, false)),
        }
    };
    (
        side("minimum", "exclusiveMinimum", |c, e| c > e),
        side("maximum", "exclusiveMaximum", |c, e| c < e),
    )
}

/// A JSON number, written as an integer when it is one.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::from(0), Value::Number)
    }
}

/// `n` words from the mock's vocabulary, chosen by `seed`.
fn words(seed: u64, n: usize) -> String {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = mix(x);
            WORDS[(x % WORDS.len() as u64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A string of a well-known `format`; `None` for a format that asks nothing of the text.
fn formatted(format: &str, seed: u64) -> Option<String> {
    let n = seed % 1000;
    let day = 1 + seed % 28;
    let hour = seed % 24;
    Some(match format {
        "date-time" => format!("2026-01-{day:02}T{hour:02}:30:00Z"),
        "date" => format!("2026-01-{day:02}"),
        "time" => format!("{hour:02}:30:00Z"),
        "duration" => format!("PT{}M", 1 + n % 59),
        "email" | "idn-email" => format!("user{n}@example.com"),
        "hostname" | "idn-hostname" => format!("host{n}.example.com"),
        "ipv4" => format!("192.0.2.{}", 1 + n % 254),
        "ipv6" => format!("2001:db8::{:x}", 1 + n),
        "uri" | "iri" => format!("https://example.com/{}", words(seed, 1)),
        "uri-reference" | "iri-reference" => format!("/{}", words(seed, 1)),
        "uri-template" => "https://example.com/{id}".to_string(),
        "json-pointer" => format!("/{}", words(seed, 1)),
        "relative-json-pointer" => "0".to_string(),
        "regex" => "^.*$".to_string(),
        "uuid" => {
            let a = mix(seed);
            let b = mix(a);
            format!(
                "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                8 + (b >> 62),
                (b >> 48) & 0xfff,
                b & 0xffff_ffff_ffff
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
