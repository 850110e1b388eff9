//! Token counting with a real BPE tokenizer (o200k_base, embedded in the binary: no
//! download). It is built once, in the background at start-up.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();

fn bpe() -> Option<&'static CoreBPE> {
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

/// Builds the tokenizer now (call at start-up, off the request path).
pub(super) fn warm_up() {
    let _ = bpe();
}

/// Tokens in `text`.
pub(super) fn count(text: &str) -> u32 {
    match bpe() {
        Some(b) => b.encode_ordinary(text).len() as u32,
        // Without the tokenizer (never expected): the providers' rule of thumb.
        None => (text.chars().count() as u32).div_ceil(4),
    }
}

/// `text` cut to at most `max` tokens, at a token boundary.
pub(super) fn truncate(text: &str, max: u32) -> String {
    match bpe() {
        Some(b) => {
            let tokens = b.encode_ordinary(text);
            if tokens.len() <= max as usize {
                return text.to_string();
            }
            // A cut can split a multi-byte character; back off until it decodes.
            let mut n = max as usize;
            loop {
                if let Ok(s) = b.decode(&tokens[..n]) {
                    return s;
                }
                if n == 0 {
                    return String::new();
                }
                n -= 1;
            }
        }
        None => text.chars().take(max as usize * 4).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_truncates_with_bpe() {
        assert_eq!(count(""), 0);
        assert!(count("hello world") >= 2);
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let cut = truncate(&long, 10);
        assert!(count(&cut) <= 10 && !cut.is_empty());
        assert_eq!(truncate("short", 100), "short");
    }
}
