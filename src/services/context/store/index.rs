//! The in-memory half of the store: every session's entries with their token counts and
//! term frequencies (for BM25), kept in step with the database by the store.

use std::collections::HashMap;

use serde_json::Value;

/// One stored turn.
#[derive(Debug, Clone)]
pub(in crate::services::context) struct Entry {
    /// Its id.
    pub id: String,
    /// Order within the session.
    pub seq: i64,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Free-form metadata.
    pub metadata: Option<Value>,
    /// Tokens of `content`.
    pub tokens: u32,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// Term frequencies for BM25: (term id, count), sorted by id.
    pub terms: Box<[(u32, u16)]>,
    /// Number of terms.
    pub length: u32,
}

impl Entry {
    /// How often term `id` occurs.
    pub(in crate::services::context) fn tf(&self, id: u32) -> u16 {
        self.terms
            .binary_search_by_key(&id, |(t, _)| *t)
            .map_or(0, |i| self.terms[i].1)
    }
}

/// A session in memory.
#[derive(Debug, Default)]
pub(in crate::services::context) struct Session {
    /// Its entries, oldest first.
    pub entries: Vec<Entry>,
    /// When the first entry was stored.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Term ids: each distinct term of the session once.
    vocab: HashMap<Box<str>, u32>,
    /// In how many entries each term (by id) occurs.
    doc_freqs: Vec<u32>,
    /// Sum of entry lengths (terms).
    pub total_length: u64,
    next_seq: i64,
    /// On PostgreSQL: the session row's change count this memory is at.
    pub(super) version: i64,
    /// On PostgreSQL: how many of those changes were not appends.
    pub(super) rewrites: i64,
}

impl Session {
    /// The id of `term`, if the session has seen it.
    pub(in crate::services::context) fn term_id(&self, term: &str) -> Option<u32> {
        self.vocab.get(term).copied()
    }

    /// In how many entries term `id` occurs.
    pub(in crate::services::context) fn doc_freq(&self, id: u32) -> u32 {
        self.doc_freqs.get(id as usize).copied().unwrap_or(0)
    }

    /// The `seq` the next entry gets.
    pub(super) fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Adds an entry (indexed with [`Session::index`]) at the end.
    pub(super) fn push(&mut self, entry: Entry) {
        if self.entries.is_empty() {
            self.created_at.clone_from(&entry.created_at);
        }
        self.updated_at.clone_from(&entry.created_at);
        self.next_seq = entry.seq + 1;
        self.add_terms(&entry);
        self.entries.push(entry);
    }

    /// Replaces the content of entry `idx`.
    pub(super) fn replace(&mut self, idx: usize, content: &str, tokens: u32, at: String) {
        let old = self.entries[idx].clone();
        self.remove_terms(&old);
        let (terms, length) = self.index(content);
        let e = &mut self.entries[idx];
        e.content = content.to_string();
        e.tokens = tokens;
        e.terms = terms;
        e.length = length;
        let updated = e.clone();
        self.add_terms(&updated);
        self.updated_at = at;
    }

    /// How many of the newest entries a prune keeps: the last `keep_last`, and only as
    /// many as fit in `max_tokens` (the newest always stays).
    pub(super) fn keep_count(&self, max_tokens: Option<u64>, keep_last: Option<usize>) -> usize {
        let n = self.entries.len();
        let mut keep = keep_last.unwrap_or(n).min(n);
        if let Some(budget) = max_tokens {
            let mut used = 0u64;
            let mut fit = 0;
            for e in self.entries.iter().rev() {
                if fit > 0 && used + u64::from(e.tokens) > budget {
                    break;
                }
                used += u64::from(e.tokens);
                fit += 1;
            }
            keep = keep.min(fit.max(1.min(n)));
        }
        keep
    }

    /// Removes the oldest `cut` entries.
    pub(super) fn cut(&mut self, cut: usize, at: String) {
        let removed: Vec<Entry> = self.entries.drain(..cut).collect();
        for e in &removed {
            self.remove_terms(e);
        }
        if cut > 0 {
            self.updated_at = at;
        }
    }

    /// Term frequencies of `text` with this session's term ids, and its length.
    pub(super) fn index(&mut self, text: &str) -> (Box<[(u32, u16)]>, u32) {
        let mut counts: HashMap<u32, u16> = HashMap::new();
        let mut n = 0u32;
        for t in terms(text) {
            let next = self.vocab.len() as u32;
            let id = *self.vocab.entry(t.into_boxed_str()).or_insert(next);
            if id as usize >= self.doc_freqs.len() {
                self.doc_freqs.push(0);
            }
            let c = counts.entry(id).or_default();
            *c = c.saturating_add(1);
            n += 1;
        }
        let mut v: Vec<(u32, u16)> = counts.into_iter().collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        (v.into_boxed_slice(), n)
    }

    fn add_terms(&mut self, e: &Entry) {
        for (id, _) in e.terms.iter() {
            if let Some(df) = self.doc_freqs.get_mut(*id as usize) {
                *df += 1;
            }
        }
        self.total_length += u64::from(e.length);
    }

    fn remove_terms(&mut self, e: &Entry) {
        for (id, _) in e.terms.iter() {
            if let Some(df) = self.doc_freqs.get_mut(*id as usize) {
                *df = df.saturating_sub(1);
            }
        }
        self.total_length -= u64::from(e.length);
    }

    /// Tokens of all entries.
    pub(in crate::services::context) fn tokens(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.tokens)).sum()
    }
}

/// Lower-cased alphanumeric words.
pub(in crate::services::context) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}
