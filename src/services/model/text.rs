//! Deterministic text: replies derived from the prompt, token counts, embeddings.
//!
//! A "token" here is a word with its leading space: cheap, stable, and the streamed
//! chunks concatenate to exactly the full reply.

/// FNV-1a, for stable hashes across runs and platforms.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A well-mixed 64-bit value from `x` (splitmix64).
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Tokens in `text`, estimated like the providers' rule of thumb (4 characters a token),
/// at least one for non-empty text.
pub(super) fn count_tokens(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    let chars = text.chars().count() as u32;
    chars.div_ceil(4).max(1)
}

pub(crate) const WORDS: [&str; 32] = [
    "context",
    "model",
    "stack",
    "token",
    "stream",
    "gateway",
    "answer",
    "mock",
    "local",
    "service",
    "prompt",
    "memory",
    "session",
    "health",
    "port",
    "request",
    "reply",
    "deterministic",
    "fast",
    "simple",
    "test",
    "developer",
    "pipeline",
    "window",
    "budget",
    "retrieval",
    "tool",
    "message",
    "vector",
    "signal",
    "process",
    "container",
];

/// A reply and where its tokens end (each token but the first with its leading space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    text: String,
    /// Byte offsets where each token ends, in order.
    ends: Vec<usize>,
    /// Cut short by the token limit.
    pub truncated: bool,
}

impl Reply {
    /// The whole text.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// How many tokens.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The tokens, in order; they concatenate to [`Reply::text`].
    pub(super) fn tokens(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, b)| &self.text[a..*b])
    }

    /// Keeps the first `limit` tokens (from ends of tokens over the whole `text`).
    fn cut(text: &str, mut ends: Vec<usize>, limit: Option<u32>) -> Reply {
        let truncated = limit.is_some_and(|max| ends.len() > max as usize);
        if let Some(max) = limit.filter(|_| truncated) {
            ends.truncate(max as usize);
        }
        let len = ends.last().copied().unwrap_or(0);
        Reply {
            text: text[..len].to_string(),
            ends,
            truncated,
        }
    }

    /// Splits `text` into tokens at word boundaries, keeping every character.
    pub(super) fn from_text(text: &str, limit: Option<u32>) -> Reply {
        let mut ends = Vec::new();
        let mut prev = None;
        for (i, c) in text.char_indices() {
            // A token ends before a space that follows a non-space.
            if c == ' ' && i > 0 && prev != Some(' ') {
                ends.push(i);
            }
            prev = Some(c);
        }
        if !text.is_empty() {
            ends.push(text.len());
        }
        Reply::cut(text, ends, limit)
    }

    /// Splits a JSON document into tokens of four characters (the rule of thumb
    /// [`count_tokens`] uses), so streams carry it in pieces and a token limit cuts it as
    /// a provider would.
    pub(super) fn from_json(text: &str, limit: Option<u32>) -> Reply {
        let mut ends: Vec<usize> = text
            .char_indices()
            .skip(4)
            .step_by(4)
            .map(|(i, _)| i)
            .collect();
        if !text.is_empty() {
            ends.push(text.len());
        }
        Reply::cut(text, ends, limit)
    }
}

/// The deterministic reply to `prompt`: the same prompt always gets the same reply.
pub(super) fn reply_to(prompt: &str, limit: Option<u32>) -> Reply {
    let h = fnv(prompt.as_bytes());
    let snippet: String = prompt
        .split_whitespace()
        .take(8)
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = if snippet.is_empty() {
        "Mock reply:".to_string()
    } else {
        format!("Mock reply to \"{snippet}\":")
    };
    let n = 8 + (h % 17) as usize;
    let mut x = h;
    for _ in 0..n {
        x = mix(x);
        text.push(' ');
        text.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    text.push('.');
    Reply::from_text(&text, limit)
}

/// A deterministic unit vector of `dims` floats for `text`.
pub(super) fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut x = fnv(text.as_bytes());
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            x = mix(x);
            // Uniform in [-1, 1).
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = v
        .iter()
        .map(|a| f64::from(*a) * f64::from(*a))
        .sum::<f64>()
        .sqrt() as f32;
    if norm > 0.0 {
        for a in &mut v {
            *a /= norm;
        }
    }
    v
}

/// The floats as base64 of their little-endian bytes (OpenAI's `encoding_format: base64`).
pub(super) fn embedding_base64(v: &[f32]) -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for f in v {
        bytes.extend_from_slice(&f.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_deterministic_and_lossless() {
        let a = reply_to("What is a context window?", None);
        assert_eq!(a, reply_to("What is a context window?", None));
        assert_ne!(a, reply_to("Something else", None));
        assert!(
            a.text()
                .starts_with("Mock reply to \"What is a context window?\":")
        );
        let cut = reply_to("What is a context window?", Some(3));
        assert!(cut.truncated && cut.len() == 3);
        assert_eq!(cut.tokens().collect::<String>(), cut.text());
        let spaced = Reply::from_text("a  b c", None);
        assert_eq!(spaced.text(), "a  b c");
        assert_eq!(spaced.tokens().collect::<Vec<_>>(), ["a", "  b", " c"]);
        let json = Reply::from_json(r#"{"é":"ab"}"#, None);
        assert_eq!(
            json.tokens().collect::<Vec<_>>(),
            [r#"{"é""#, r#":"ab"#, r#""}"#]
        );
        assert_eq!(Reply::from_json("abcdefghij", Some(2)).text(), "abcdefgh");
    }

    #[test]
    fn embeddings_are_unit_vectors_and_stable() {
        let v = embedding("hello", 64);
        assert_eq!(v.len(), 64);
        let n: f32 = v.iter().map(|a| a * a).sum();
        assert!((n - 1.0).abs() < 1e-4);
        assert_eq!(v, embedding("hello", 64));
        assert_eq!(embedding_base64(&[1.0]).len(), 8);
    }
}
