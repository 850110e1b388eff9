//! Client keys and their per-minute limits (requests and tokens), as token buckets that
//! refill continuously. Keys are never logged: they are named `key#N` by their position.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;

use super::config::KeySpec;

/// A known key.
#[derive(Debug)]
pub(super) struct Key {
    /// `key#N`, for logs and metrics.
    pub label: String,
    requests: Option<Mutex<Bucket>>,
    tokens: Option<Mutex<Bucket>>,
}

/// A bucket holding up to `capacity`, refilled at `capacity` per minute.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: f64) -> Bucket {
        Bucket {
            capacity: per_minute,
            level: per_minute,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.level = (self.level + secs * self.capacity / 60.0).min(self.capacity);
        self.at = now;
    }

    /// Seconds until `n` would fit (0 when it fits now).
    fn wait_for(&mut self, n: f64) -> f64 {
        self.refill();
        if self.level >= n.min(self.capacity) {
            0.0
        } else {
            (n.min(self.capacity) - self.level) * 60.0 / self.capacity
        }
    }

    fn take(&mut self, n: f64) {
        self.refill();
        self.level -= n;
    }
}

/// Why a request is refused before it is forwarded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Refusal {
    /// No key, or an unknown one.
    Unauthorized(&'static str),
    /// Over a limit: retry after this many seconds.
    Limited {
        what: &'static str,
        retry_after: f64,
    },
}

/// All keys.
#[derive(Debug)]
pub(super) struct Keys {
    keys: HashMap<String, Key>,
}

impl Keys {
    /// The configured keys.
    pub(super) fn new(specs: &[KeySpec]) -> Keys {
        let keys = specs
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.key().to_string(),
                    Key {
                        label: format!("key#{}", i + 1),
                        requests: k.rpm().map(|n| Mutex::new(Bucket::new(f64::from(n)))),
                        tokens: k.tpm().map(|n| Mutex::new(Bucket::new(n as f64))),
                    },
                )
            })
            .collect();
        Keys { keys }
    }

    /// Whether keys are required at all.
    pub(super) fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Authenticates a request and charges one request and `tokens` (an estimate) to its
    /// key; returns the key (none when keys are not required).
    pub(super) fn admit(&self, headers: &HeaderMap, tokens: u64) -> Result<Option<&Key>, Refusal> {
        if !self.required() {
            return Ok(None);
        }
        let given = api_key(headers).ok_or(Refusal::Unauthorized(
            "no API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
        ))?;
        let key = self
            .keys
            .get(given)
            .ok_or(Refusal::Unauthorized("invalid API key"))?;
        // Check both limits before charging either.
        let mut req = key.requests.as_ref().map(lock);
        let mut tok = key.tokens.as_ref().map(lock);
        if let Some(b) = req.as_mut() {
            let wait = b.wait_for(1.0);
            if wait > 0.0 {
                return Err(Refusal::Limited {
                    what: "requests per minute",
                    retry_after: wait,
                });
            }
        }
        if let Some(b) = tok.as_mut() {
            let wait = b.wait_for(tokens as f64);
            if wait > 0.0 {
                return Err(Refusal::Limited {
                    what: "tokens per minute",
                    retry_after: wait,
                });
            }
        }
        if let Some(b) = req.as_mut() {
            b.take(1.0);
        }
        if let Some(b) = tok.as_mut() {
            b.take(tokens as f64);
        }
        Ok(Some(key))
    }
}

impl Keys {
    /// Charges tokens learnt after the response (completion tokens) to the key `label`.
    pub(super) fn charge(&self, label: &str, tokens: u64) {
        if let Some(b) = self
            .keys
            .values()
            .find(|k| k.label == label)
            .and_then(|k| k.tokens.as_ref())
        {
            lock(b).take(tokens as f64);
        }
    }
}

fn lock(m: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key of a request: `Authorization: Bearer KEY`, else `x-api-key`.
pub(super) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The limits' names as metric label values (no spaces).
pub(super) const LIMITS: [&str; 2] = ["requests_per_minute", "tokens_per_minute"];

/// The label value of a refusal's `what`.
pub(super) fn limit_label(what: &str) -> &'static str {
    if what.starts_with("requests") {
        LIMITS[0]
    } else {
        LIMITS[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(k: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", k.parse().expect("header"));
        h
    }

    #[test]
    fn keys_and_limits() {
        let keys = Keys::new(&[
            KeySpec::Plain("open".into()),
            KeySpec::Limited {
                key: "two".into(),
                rpm: Some(2),
                tpm: None,
            },
            KeySpec::Limited {
                key: "few-tokens".into(),
                rpm: None,
                tpm: Some(100),
            },
        ]);
        assert!(matches!(
            keys.admit(&HeaderMap::new(), 1),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(
            keys.admit(&headers("nope"), 1),
            Err(Refusal::Unauthorized(_))
        ));
        for _ in 0..10 {
            assert!(keys.admit(&headers("open"), 1).is_ok());
        }
        assert!(keys.admit(&headers("two"), 1).is_ok());
        assert!(keys.admit(&headers("two"), 1).is_ok());
        match keys.admit(&headers("two"), 1) {
            Err(Refusal::Limited { retry_after, .. }) => {
                assert!(retry_after > 0.0 && retry_after <= 30.0)
            }
            other => panic!("{other:?}"),
        }
        assert!(keys.admit(&headers("few-tokens"), 80).is_ok());
        assert!(matches!(
            keys.admit(&headers("few-tokens"), 80),
            Err(Refusal::Limited {
                what: "tokens per minute",
                ..
            })
        ));
        assert_eq!(keys.admit(&headers("two"), 1).err().map(|_| ()), Some(()));
    }
}
