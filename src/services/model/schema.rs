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

use std::borrow::Cow;

use super::pattern::Samples;
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

/// A document valid against `schema`, the same for the same `seed`; `samples` remembers
/// the strings made for `pattern`s.
pub(crate) fn generate(
    schema: &Value,
    seed: u64,
    samples: &Samples,
) -> Result<Value, Unsatisfiable> {
    let mut g = Gen {
        root: schema,
        samples,
    };
    g.value(schema, seed, 0).map_err(|mut e| {
        e.path.insert(0, '$');
        e
    })
}

struct Gen<'a> {
    root: &'a Value,
    samples: &'a Samples,
}

type Res<T> = Result<T, Unsatisfiable>;

/// Where a nested value sits in its parent, added to an error's path on its way out
/// (so a document that can be made never pays for paths).
enum Seg<'s> {
    Key(&'s str),
    Index(u64),
}

trait Under<T> {
    fn under(self, seg: Seg<'_>) -> Res<T>;
}

impl<T> Under<T> for Res<T> {
    fn under(self, seg: Seg<'_>) -> Res<T> {
        self.map_err(|mut e| {
            e.path = match seg {
                Seg::Key(k) => format!(".{k}{}", e.path),
                Seg::Index(i) => format!("[{i}]{}", e.path),
            };
            e
        })
    }
}

impl<'a> Gen<'a> {
    fn fail<T>(&self, reason: impl Into<String>) -> Res<T> {
        Err(Unsatisfiable {
            path: String::new(),
            reason: reason.into(),
        })
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
        let kw = Kw::read(&s);
        if let Some(v) = kw.const_ {
            return Ok(v.clone());
        }
        if let Some(e) = kw.enum_ {
            return match e.as_array() {
                Some(values) if !values.is_empty() => {
                    Ok(values[(seed % values.len() as u64) as usize].clone())
                }
                _ => self.fail("`enum` lists no value"),
            };
        }
        if let Some(k) = kw.unsupported {
            return self.fail(format!("the mock does not follow `{k}`"));
        }
        if let Some(branches) = kw.any_of {
            return self.branch(&s, &kw, branches, seed, depth);
        }
        match self.type_of(&kw)? {
            "object" => self.object(&kw, seed, depth),
            "array" => self.array(&kw, seed, depth),
            "string" => self.string(&kw, seed),
            "integer" => self.integer(&kw, seed).map(Value::from),
            "number" => self.number(&kw, seed),
            "boolean" => Ok(Value::Bool(seed & 1 == 0)),
            "null" => Ok(Value::Null),
            other => self.fail(format!("unknown `type` {other:?}")),
        }
    }

    /// The schema with its `$ref` and `allOf` merged in, so one object says it all
    /// (borrowed as it is when it has neither, nor a `not`).
    fn flatten<'s>(
        &mut self,
        s: &'s Map<String, Value>,
        depth: usize,
    ) -> Res<Cow<'s, Map<String, Value>>>
    where
        'a: 's,
    {
        let mut composed = false;
        let mut constrained = false;
        for k in s.keys() {
            match k.as_str() {
                "$ref" | "allOf" | "not" => composed = true,
                k if !ANNOTATIONS.contains(&k) => constrained = true,
                _ => {}
            }
        }
        if !composed {
            return Ok(Cow::Borrowed(s));
        }
        // A bare reference (annotations beside it at most) is its target, borrowed.
        if !constrained
            && s.len()
                == 1 + s
                    .keys()
                    .filter(|k| ANNOTATIONS.contains(&k.as_str()))
                    .count()
            && let Some(Value::String(r)) = s.get("$ref")
        {
            if depth > MAX_DEPTH {
                return self.fail(format!("`$ref` {r:?} recurses without end"));
            }
            return match self.target(r)? {
                Some(t) => self.flatten(t, depth + 1),
                None => Ok(Cow::Owned(Map::new())),
            };
        }
        let mut out = s.clone();
        if let Some(r) = out.remove("$ref") {
            let Some(r) = r.as_str() else {
                return self.fail("`$ref` must be a string");
            };
            if depth > MAX_DEPTH {
                return self.fail(format!("`$ref` {r:?} recurses without end"));
            }
            if let Some(t) = self.target(r)? {
                let target = self.flatten(t, depth + 1)?.into_owned();
                self.merge(&mut out, &target)?;
            }
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
        Ok(Cow::Owned(out))
    }

    /// The schema `$ref` `r` points at (`None` for `true`).
    fn target(&self, r: &str) -> Res<Option<&'a Map<String, Value>>> {
        match self.resolve(r) {
            Some(Value::Object(t)) => Ok(Some(t)),
            Some(Value::Bool(true)) => Ok(None),
            Some(_) => self.fail(format!("`$ref` {r:?} does not point at a schema")),
            None => self.fail(format!(
                "`$ref` {r:?} points at nothing in this schema (only local `#/…` references are followed)"
            )),
        }
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
                "minimum" | "exclusiveMinimum" | "minLength" | "minItems" | "minProperties"
                    if v.as_f64() > have.as_f64() =>
                {
                    *have = v.clone();
                }
                "maximum" | "exclusiveMaximum" | "maxLength" | "maxItems" | "maxProperties"
                    if v.as_f64() < have.as_f64() =>
                {
                    *have = v.clone();
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
        kw: &Kw<'_>,
        branches: &Value,
        seed: u64,
        depth: usize,
    ) -> Res<Value> {
        let Some(list) = branches.as_array().filter(|l| !l.is_empty()) else {
            return self.fail("`anyOf`/`oneOf` must be a non-empty list");
        };
        // Deep in a recursive schema, a branch that ends it (null, a plain type) goes first.
        let mut order: Vec<&Value> = list.iter().collect();
        if depth >= SHALLOW_FROM {
            order.sort_by_key(|b| u8::from(!is_leaf(b)));
        }
        let mut first_err = None;
        for b in order {
            let made = if kw.constrained {
                // What stands beside `anyOf` holds for every branch: merged into each.
                let mut merged = s.clone();
                merged.remove("anyOf");
                merged.remove("oneOf");
                match b {
                    Value::Object(b) => {
                        let b = self.flatten(b, depth + 1)?;
                        self.merge(&mut merged, &b)?;
                    }
                    Value::Bool(true) => {}
                    _ => continue,
                }
                self.value(&Value::Object(merged), seed, depth + 1)
            } else {
                self.value(b, seed, depth + 1)
            };
            match made {
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

    fn type_of(&self, kw: &Kw<'_>) -> Res<&'static str> {
        let Some(t) = kw.type_ else {
            return Ok(
                if kw.properties.is_some() || kw.required.is_some() || kw.additional.is_some() {
                    "object"
                } else if kw.items.is_some()
                    || kw.prefix_items.is_some()
                    || kw.min_items.is_some()
                    || kw.max_items.is_some()
                {
                    "array"
                } else if kw.minimum.is_some()
                    || kw.maximum.is_some()
                    || kw.multiple_of.is_some()
                    || kw.exclusive_minimum.is_some()
                {
                    "number"
                } else {
                    "string"
                },
            );
        };
        // The first type but `null`, unless `null` is all there is.
        let pick = match t {
            Value::String(one) => Some(one.as_str()),
            Value::Array(list) => {
                let names = || list.iter().filter_map(Value::as_str);
                names().find(|n| *n != "null").or_else(|| names().next())
            }
            _ => None,
        };
        let Some(pick) = pick else {
            return self.fail("`type` allows no type");
        };
        match ALL_TYPES.iter().find(|t| **t == pick) {
            Some(t) => Ok(t),
            None => self.fail(format!("unknown `type` {pick:?}")),
        }
    }

    fn object(&mut self, kw: &Kw<'_>, seed: u64, depth: usize) -> Res<Value> {
        let empty = Map::new();
        let props = kw.properties.and_then(Value::as_object).unwrap_or(&empty);
        let required: Vec<&str> = kw
            .required
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let extra = kw.additional;
        let closed = matches!(extra, Some(Value::Bool(false)));
        let shallow = depth >= SHALLOW_FROM;
        let mut out = Map::new();
        for (name, sub) in props {
            if shallow && !required.contains(&name.as_str()) {
                continue;
            }
            let v = self
                .value(sub, mix(seed ^ fnv(name.as_bytes())), depth + 1)
                .under(Seg::Key(name))?;
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
            let v = self
                .value(&extra_schema, mix(seed ^ fnv(name.as_bytes())), depth + 1)
                .under(Seg::Key(name))?;
            out.insert(name.to_string(), v);
        }
        let min = count(kw.min_properties).unwrap_or(0);
        let mut i = 1;
        while (out.len() as u64) < min {
            if closed {
                return self.fail(format!(
                    "`minProperties: {min}` needs more properties than `properties` defines and `additionalProperties: false` allows"
                ));
            }
            let name = format!("extra_{i}");
            let v = self
                .value(&extra_schema, mix(seed ^ i), depth + 1)
                .under(Seg::Key(&name))?;
            out.insert(name, v);
            i += 1;
        }
        if let Some(max) = count(kw.max_properties) {
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

    fn array(&mut self, kw: &Kw<'_>, seed: u64, depth: usize) -> Res<Value> {
        let prefix: &[Value] = kw
            .prefix_items
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let items = kw.items.unwrap_or(&Value::Bool(true));
        let min = count(kw.min_items).unwrap_or(0);
        let mut max = count(kw.max_items).unwrap_or(u64::MAX);
        if *items == Value::Bool(false) {
            max = max.min(prefix.len() as u64);
        }
        if min > max {
            return self.fail(format!(
                "`minItems: {min}` is more than the {max} items allowed"
            ));
        }
        let want = if depth >= SHALLOW_FROM { 0 } else { 2 };
        let n = (want.max(prefix.len() as u64)).clamp(min, max);
        let unique = kw.unique_items == Some(&Value::Bool(true));
        let contains = kw.contains;
        let mut out: Vec<Value> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let plain = prefix.get(i as usize).unwrap_or(items);
            let with_contains;
            let schema = match contains {
                Some(c) if i == 0 => {
                    with_contains = json!({"allOf": [plain, c]});
                    &with_contains
                }
                _ => plain,
            };
            let mut tries = 0u64;
            let v = loop {
                let item_seed = mix(seed ^ (i << 8) ^ tries);
                let v = self
                    .value(schema, item_seed, depth + 1)
                    .under(Seg::Index(i))?;
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
            let v = self
                .value(&json!({"allOf": [items, c]}), seed, depth + 1)
                .under(Seg::Index(0))?;
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn string(&mut self, kw: &Kw<'_>, seed: u64) -> Res<Value> {
        let min = count(kw.min_length).unwrap_or(0) as usize;
        let max = count(kw.max_length).map_or(usize::MAX, |m| m as usize);
        if min > max {
            return self.fail(format!(
                "`minLength: {min}` is more than `maxLength: {max}`"
            ));
        }
        let shaped = match (kw.format.and_then(Value::as_str), kw.pattern) {
            (_, Some(p)) => {
                let Some(p) = p.as_str() else {
                    return self.fail("`pattern` must be a string");
                };
                Some(("`pattern`", self.samples.get(p).or_else(|e| self.fail(e))?))
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

    fn integer(&mut self, kw: &Kw<'_>, seed: u64) -> Res<i64> {
        let (lo, hi) = kw.bounds();
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
        let step = match kw.multiple_of.and_then(Value::as_f64) {
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

    fn number(&mut self, kw: &Kw<'_>, seed: u64) -> Res<Value> {
        if let Some(m) = kw.multiple_of.and_then(Value::as_f64) {
            if m <= 0.0 {
                return self.fail("`multipleOf` must be greater than 0");
            }
            let (lo, hi) = kw.bounds();
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
        let (lo, hi) = kw.bounds();
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

/// A numeric bound and whether it is open (exclusive).
type Bound = (f64, bool);

/// A non-negative whole-number keyword's value (`minItems`…).
fn count(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
}

/// Keywords that say nothing of what is valid.
const ANNOTATIONS: [&str; 14] = [
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "$schema",
    "$id",
    "$defs",
    "definitions",
    "deprecated",
    "readOnly",
    "writeOnly",
    "discriminator",
    "strict",
];

/// The keywords of one schema object, read in one pass (a map lookup per keyword would
/// hash every name again).
#[derive(Default)]
struct Kw<'s> {
    const_: Option<&'s Value>,
    enum_: Option<&'s Value>,
    any_of: Option<&'s Value>,
    type_: Option<&'s Value>,
    properties: Option<&'s Value>,
    required: Option<&'s Value>,
    additional: Option<&'s Value>,
    min_properties: Option<&'s Value>,
    max_properties: Option<&'s Value>,
    items: Option<&'s Value>,
    prefix_items: Option<&'s Value>,
    min_items: Option<&'s Value>,
    max_items: Option<&'s Value>,
    unique_items: Option<&'s Value>,
    contains: Option<&'s Value>,
    min_length: Option<&'s Value>,
    max_length: Option<&'s Value>,
    pattern: Option<&'s Value>,
    format: Option<&'s Value>,
    minimum: Option<&'s Value>,
    maximum: Option<&'s Value>,
    exclusive_minimum: Option<&'s Value>,
    exclusive_maximum: Option<&'s Value>,
    multiple_of: Option<&'s Value>,
    /// A keyword the mock does not follow.
    unsupported: Option<&'s str>,
    /// Something beside `anyOf`/`oneOf` constrains the value (not only annotations).
    constrained: bool,
}

impl<'s> Kw<'s> {
    fn read(s: &'s Map<String, Value>) -> Kw<'s> {
        let mut kw = Kw::default();
        for (k, v) in s {
            let slot = match k.as_str() {
                "const" => &mut kw.const_,
                "enum" => &mut kw.enum_,
                "anyOf" | "oneOf" => &mut kw.any_of,
                "type" => &mut kw.type_,
                "properties" => &mut kw.properties,
                "required" => &mut kw.required,
                "additionalProperties" => &mut kw.additional,
                "minProperties" => &mut kw.min_properties,
                "maxProperties" => &mut kw.max_properties,
                "items" => &mut kw.items,
                "prefixItems" => &mut kw.prefix_items,
                "minItems" => &mut kw.min_items,
                "maxItems" => &mut kw.max_items,
                "uniqueItems" => &mut kw.unique_items,
                "contains" => &mut kw.contains,
                "minLength" => &mut kw.min_length,
                "maxLength" => &mut kw.max_length,
                "pattern" => &mut kw.pattern,
                "format" => &mut kw.format,
                "minimum" => &mut kw.minimum,
                "maximum" => &mut kw.maximum,
                "exclusiveMinimum" => &mut kw.exclusive_minimum,
                "exclusiveMaximum" => &mut kw.exclusive_maximum,
                "multipleOf" => &mut kw.multiple_of,
                "if" | "dependentSchemas" | "patternProperties" => {
                    kw.unsupported = Some(k.as_str());
                    continue;
                }
                other => {
                    kw.constrained |= !ANNOTATIONS.contains(&other);
                    continue;
                }
            };
            if !matches!(k.as_str(), "anyOf" | "oneOf") {
                kw.constrained = true;
            }
            *slot = Some(v);
        }
        kw
    }

    /// The lower and upper bounds, each with whether it is open (exclusive). Both the
    /// numeric (2019+) and the boolean (draft 4) `exclusive*` forms are read; with both
    /// an inclusive and an exclusive bound on one side, the stricter holds.
    fn bounds(&self) -> (Option<Bound>, Option<Bound>) {
        fn side(
            closed: Option<&Value>,
            exclusive: Option<&Value>,
            stricter: fn(f64, f64) -> bool,
        ) -> Option<Bound> {
            let closed = closed.and_then(Value::as_f64);
            match (exclusive, closed) {
                (Some(Value::Bool(true)), c) => c.map(|c| (c, true)),
                (Some(Value::Number(e)), Some(c)) if e.as_f64().is_none_or(|e| stricter(c, e)) => {
                    Some((c, false))
                }
                (Some(Value::Number(e)), _) => e.as_f64().map(|e| (e, true)),
                (_, c) => c.map(|c| (c, false)),
            }
        }
        (
            side(self.minimum, self.exclusive_minimum, |c, e| c > e),
            side(self.maximum, self.exclusive_maximum, |c, e| c < e),
        )
    }
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
