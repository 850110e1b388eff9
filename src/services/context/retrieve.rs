//! The best context for a token budget: the newest turns first, then the older entries
//! most relevant to the query (BM25), then an extractive summary of what was left out.
//!
//! Guarantees: the answer never exceeds `max_tokens` (entry contents plus the summary, as
//! counted by the BPE tokenizer), and always holds the newest turn — cut to the budget
//! when it alone is larger (the entry is then marked `truncated`).

use serde::Serialize;

use super::store::{Entry, Session, terms};
use super::tokens;

/// Share of the budget the newest turns may take when there is a query (the rest goes to
/// relevant older entries and the summary).
const RECENT_WITH_QUERY: f64 = 0.5;
/// Share of the budget the newest turns may take without a query.
const RECENT_WITHOUT_QUERY: f64 = 0.8;
/// Entries (recent and relevant) stop here; the summary gets what is left.
const ENTRIES_SHARE: f64 = 0.85;
/// At most this many relevant entries are considered (best first): a budget holds far
/// fewer, and ranking every entry of a long session would dominate the cost.
const TOP_RELEVANT: usize = 512;
/// At most this many left-out entries are summarised.
const TOP_SUMMARY: usize = 64;
/// BM25 parameters.
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// One entry of a context.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(super) struct ContextEntry {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its text (cut when `truncated`).
    pub content: String,
    /// Tokens of `content` as given here.
    pub tokens: u32,
    /// When it was stored.
    pub created_at: String,
    /// Its metadata, if it was stored with any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub metadata: Option<serde_json::Value>,
    /// Cut to fit the budget.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A context within a budget (SPEC §4.1).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(super) struct Context {
    /// The session.
    pub session_id: String,
    /// The entries included, oldest first.
    pub entries: Vec<ContextEntry>,
    /// Tokens of the entries plus the summary.
    pub tokens: u32,
    /// The budget.
    pub max_tokens: u32,
    /// Entries left out.
    pub omitted: usize,
    /// An extractive summary of what was left out ("" when nothing was).
    pub summary: String,
}

impl Context {
    /// The context of a session with no entries.
    pub(super) fn empty(session_id: &str, max_tokens: u32) -> Context {
        Context {
            session_id: session_id.to_string(),
            entries: Vec::new(),
            tokens: 0,
            max_tokens,
            omitted: 0,
            summary: String::new(),
        }
    }
}

/// Builds the context of `session` within `max_tokens`, favouring entries relevant to
/// `query`.
pub(super) fn context(
    session_id: &str,
    s: &Session,
    max_tokens: u32,
    query: Option<&str>,
) -> Context {
    let n = s.entries.len();
    let mut out = Context::empty(session_id, max_tokens);
    let Some(newest) = s.entries.last() else {
        return out;
    };
    let budget = max_tokens;
    let mut chosen = vec![false; n];
    let mut truncated_newest: Option<ContextEntry> = None;

    // 1. The newest turn, always; cut when it alone is over budget.
    let mut used = if newest.tokens > budget {
        let content = tokens::truncate(&newest.content, budget);
        let t = tokens::count(&content).min(budget);
        truncated_newest = Some(ContextEntry {
            tokens: t,
            content,
            truncated: true,
            ..entry(newest)
        });
        t
    } else {
        newest.tokens
    };
    chosen[n - 1] = true;

    // 2. The turns before it, newest first, while they fit the recency share.
    let query = query.map(str::trim).filter(|q| !q.is_empty());
    let share = if query.is_some() {
        RECENT_WITH_QUERY
    } else {
        RECENT_WITHOUT_QUERY
    };
    let recent_cap = ((f64::from(budget) * share) as u32).max(used);
    let mut i = n - 1;
    while i > 0 && truncated_newest.is_none() {
        i -= 1;
        let t = s.entries[i].tokens;
        if used + t > recent_cap {
            break;
        }
        used += t;
        chosen[i] = true;
    }

    // 3. Older entries relevant to the query, best first.
    let entries_cap = ((f64::from(budget) * ENTRIES_SHARE) as u32).max(used);
    let scores = query.map(|q| bm25(s, q));
    if let Some(scores) = &scores {
        let candidates: Vec<usize> = (0..n).filter(|&j| !chosen[j] && scores[j] > 0.0).collect();
        for j in best(candidates, scores, TOP_RELEVANT) {
            let t = s.entries[j].tokens;
            if used + t <= entries_cap {
                used += t;
                chosen[j] = true;
            }
        }
    }

    // 4. A summary of what is left out, in what budget remains.
    let left_out: Vec<usize> = (0..n).filter(|&j| !chosen[j]).collect();
    out.omitted = left_out.len();
    if !left_out.is_empty() && used < budget {
        let order: Vec<usize> = match &scores {
            Some(sc) => best(left_out.clone(), sc, TOP_SUMMARY),
            None => left_out.iter().rev().take(TOP_SUMMARY).copied().collect(),
        };
        out.summary = summary(s, &order, budget - used);
        used += tokens::count(&out.summary);
    }

    out.entries = (0..n)
        .filter(|&j| chosen[j])
        .map(|j| {
            if j == n - 1
                && let Some(t) = &truncated_newest
            {
                return t.clone();
            }
            entry(&s.entries[j])
        })
        .collect();
    out.tokens = used;
    out
}

/// The `k` best of `candidates` by score (ties: newer first), best first.
fn best(mut candidates: Vec<usize>, scores: &[f64], k: usize) -> Vec<usize> {
    let order = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(b.cmp(a));
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, order);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(order);
    candidates
}

fn entry(e: &Entry) -> ContextEntry {
    ContextEntry {
        id: e.id.clone(),
        role: e.role.clone(),
        content: e.content.clone(),
        tokens: e.tokens,
        created_at: e.created_at.clone(),
        metadata: e.metadata.clone(),
        truncated: false,
    }
}

/// BM25 score of every entry for `query`.
pub(super) fn bm25(s: &Session, query: &str) -> Vec<f64> {
    let mut ids: Vec<u32> = terms(query).filter_map(|t| s.term_id(&t)).collect();
    ids.sort_unstable();
    ids.dedup();
    let n = s.entries.len() as f64;
    let avgdl = if s.entries.is_empty() {
        1.0
    } else {
        (s.total_length as f64 / n).max(1.0)
    };
    let idf: Vec<(u32, f64)> = ids
        .iter()
        .map(|&id| {
            let df = f64::from(s.doc_freq(id));
            (id, ((n - df + 0.5) / (df + 0.5) + 1.0).ln())
        })
        .collect();
    s.entries
        .iter()
        .map(|e| {
            let dl = f64::from(e.length);
            idf.iter()
                .map(|&(id, w)| match e.tf(id) {
                    0 => 0.0,
                    tf => {
                        let tf = f64::from(tf);
                        w * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl))
                    }
                })
                .sum()
        })
        .collect()
}

/// The first sentence of each entry in `order`, as many as fit in `budget` tokens.
fn summary(s: &Session, order: &[usize], budget: u32) -> String {
    const HEAD: &str = "Earlier in this conversation:";
    let head_tokens = tokens::count(HEAD) + 1;
    if budget <= head_tokens + 2 {
        return String::new();
    }
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut used = head_tokens;
    // Candidates in priority order; a few misses in a row mean the budget is spent (this
    // bounds the work on long sessions: tokenising every left-out entry would dominate).
    let mut misses = 0;
    for &j in order {
        let e = &s.entries[j];
        let line = format!("- {}: {}", e.role, first_sentence(&e.content));
        let t = tokens::count(&line) + 1;
        if used + t > budget {
            misses += 1;
            if misses >= 8 || budget - used < 8 {
                break;
            }
            continue;
        }
        misses = 0;
        used += t;
        lines.push((j, line));
    }
    if lines.is_empty() {
        return String::new();
    }
    // Chronological, as the conversation went.
    lines.sort_by_key(|(j, _)| *j);
    let mut text = HEAD.to_string();
    for (_, l) in lines {
        text.push('\n');
        text.push_str(&l);
    }
    // Token counts of parts need not add up exactly: trim until the whole fits.
    while tokens::count(&text) > budget {
        match text.rfind('\n') {
            Some(i) => text.truncate(i),
            None => return String::new(),
        }
    }
    text
}

/// Up to the first sentence end, at most 30 words.
fn first_sentence(text: &str) -> String {
    let end = text
        .char_indices()
        .find(|(i, c)| matches!(c, '.' | '!' | '?' | '\n') && *i > 0)
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    let sentence = text[..end].trim();
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if words.len() > 30 {
        format!("{}…", words[..30].join(" "))
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::context::config::Durability;
    use crate::services::context::store::{Store, read};

    fn store_with(turns: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("c.db"), Durability::Normal).expect("open");
        for (i, t) in turns.iter().enumerate() {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            store.append("s", role, t, None).expect("append");
        }
        (dir, store)
    }

    #[test]
    fn never_over_budget_and_always_the_newest() {
        let turns: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "Turn {i}: we talked about topic {} and details {}.",
                    i % 7,
                    "x ".repeat(i % 13)
                )
            })
            .collect();
        let refs: Vec<&str> = turns.iter().map(String::as_str).collect();
        let (_d, store) = store_with(&refs);
        let s = store.session("s").expect("s");
        let s = read(&s);
        for budget in [1, 3, 10, 40, 100, 500, 5000] {
            for q in [None, Some("topic 3"), Some("nothing matches")] {
                let c = context("s", &s, budget, q);
                assert!(
                    c.tokens <= budget,
                    "budget {budget} query {q:?}: {} tokens",
                    c.tokens
                );
                let counted: u32 = c
                    .entries
                    .iter()
                    .map(|e| tokens::count(&e.content))
                    .sum::<u32>()
                    + tokens::count(&c.summary);
                assert!(counted <= budget, "recounted {counted} > {budget}");
                let last = c.entries.last().expect("an entry");
                assert_eq!(
                    last.id,
                    s.entries.last().expect("newest").id,
                    "the newest turn is there"
                );
                assert_eq!(c.omitted + c.entries.len(), 200);
            }
        }
    }

    #[test]
    fn relevant_old_entries_come_back_with_a_query() {
        let mut turns = vec!["The deployment password rotation happens every Tuesday."];
        let filler: Vec<String> = (0..50)
            .map(|i| format!("Small talk number {i} about the weather."))
            .collect();
        turns.extend(filler.iter().map(String::as_str));
        let (_d, store) = store_with(&turns);
        let s = store.session("s").expect("s");
        let s = read(&s);
        let c = context("s", &s, 200, Some("when is the password rotation?"));
        assert!(
            c.entries
                .iter()
                .any(|e| e.content.contains("password rotation")),
            "{c:?}"
        );
        let plain = context("s", &s, 200, None);
        assert!(!plain.entries.iter().any(|e| e.content.contains("password")));
        assert!(plain.summary.starts_with("Earlier in this conversation:"));
        assert!(plain.omitted > 0);
    }

    #[test]
    fn an_oversized_newest_turn_is_cut() {
        let long = "word ".repeat(500);
        let (_d, store) = store_with(&["hello", &long]);
        let s = store.session("s").expect("s");
        let s = read(&s);
        let c = context("s", &s, 20, None);
        assert_eq!(c.entries.len(), 1);
        assert!(c.entries[0].truncated && c.tokens <= 20);
    }
}
