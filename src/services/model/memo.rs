//! What the mock remembers between requests, so that what a test suite sends again and
//! again costs little: the JSON fragments that carry schemas (a `response_format`, a
//! `tools` list), parsed once by their text, and the documents generated for a schema and
//! a seed (generation is deterministic, so a remembered document is the one that would be
//! made). Each memory is bounded: when full it starts afresh.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use serde_json::value::RawValue;

/// A bounded map from keys to values made once.
#[derive(Debug)]
pub(crate) struct Bounded<K, V> {
    map: Mutex<HashMap<K, V>>,
    max: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Bounded {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// The value for `key`, made by `make` when not remembered (an `Err` is not kept).
    pub(crate) fn get_or_make<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Ok(map) = self.map.lock()
            && let Some(v) = map.get(&key)
        {
            return Ok(v.clone());
        }
        let v = make()?;
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= self.max {
                map.clear();
            }
            map.insert(key, v.clone());
        }
        Ok(v)
    }
}

/// A JSON fragment parsed once: its value and the hash of its text (the key of what is
/// made from it).
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub value: Arc<Value>,
    pub key: u64,
}

/// A value inside a parsed fragment, with the fragment's key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fragment<'a> {
    pub value: &'a Value,
    pub key: u64,
}

impl Parsed {
    /// The whole fragment.
    pub(crate) fn whole(&self) -> Fragment<'_> {
        Fragment {
            value: &self.value,
            key: self.key,
        }
    }

    /// The member `name` of the fragment, if it is there.
    pub(crate) fn member(&self, name: &str) -> Option<Fragment<'_>> {
        self.value.get(name).map(|value| Fragment {
            value,
            key: self.key,
        })
    }
}

/// Fragments by the hash of their text (the text is compared too: a hash alone could
/// collide), and documents by fragment, place and seed.
#[derive(Debug)]
pub(crate) struct Memo {
    fragments: Bounded<u64, (Arc<str>, Arc<Value>)>,
    documents: Bounded<(u64, u64), Arc<str>>,
    hasher: std::hash::RandomState,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            fragments: Bounded::new(256),
            documents: Bounded::new(4096),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl Memo {
    /// `raw` parsed (or remembered).
    pub(crate) fn parse(&self, raw: &RawValue) -> Result<Parsed, serde_json::Error> {
        let text = raw.get();
        let key = self.hasher.hash_one(text);
        let mut fresh = None;
        let (seen, value) = self.fragments.get_or_make(key, || {
            let v: Arc<Value> = Arc::new(serde_json::from_str(text)?);
            fresh = Some(v.clone());
            Ok::<_, serde_json::Error>((Arc::from(text), v))
        })?;
        if let Some(v) = fresh {
            return Ok(Parsed { value: v, key });
        }
        if &*seen == text {
            Ok(Parsed { value, key })
        } else {
            // Two texts with one hash: parse this one, remember nothing of it.
            Ok(Parsed {
                value: Arc::new(serde_json::from_str(text)?),
                key: key ^ 1,
            })
        }
    }

    /// The document for (`key`, `seed`), made by `make` when not remembered.
    pub(crate) fn document<E>(
        &self,
        key: u64,
        seed: u64,
        make: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        self.documents
            .get_or_make((key, seed), || make().map(Arc::from))
    }
}
