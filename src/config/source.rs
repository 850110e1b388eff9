//! Where each field of the stack file is written: a map from field paths
//! (`services.api.health.http`) to line and column, read from the YAML event stream.
//!
//! serde gives no positions once a document is a value; this second, cheap pass over the
//! text gives every diagnostic its `file:line:column`.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `services.api.command[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The empty path (the whole document).
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    /// This path with a key appended.
    pub(crate) fn key(&self, key: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(key.into()));
        Self(v)
    }

    /// This path with an index appended.
    pub(crate) fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        Self(v)
    }

    /// The path for `services.NAME.FIELD…`.
    pub(crate) fn service(name: &str) -> Self {
        Self::root().key("services").key(name)
    }

    /// Appends the segments of a serde_path_to_error path.
    pub(crate) fn join_serde(&self, path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut v = self.0.clone();
        for seg in path.iter() {
            match seg {
                S::Seq { index } => v.push(Segment::Index(*index)),
                S::Map { key } => v.push(Segment::Key(key.clone())),
                S::Enum { variant } => v.push(Segment::Key(variant.clone())),
                S::Unknown => {}
            }
        }
        Self(v)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Positions of keys and values in a YAML document.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    keys: HashMap<FieldPath, Location>,
    values: HashMap<FieldPath, Location>,
    /// What the document may not hold, wherever it is: a tag beyond YAML's core ones, a
    /// second document, nesting deeper than [`MAX_DEPTH`]. Each with its hint.
    pub refusals: Vec<(String, Location, &'static str)>,
}

/// How deeply a stack file may nest: far beyond any real one, and refused before a
/// document tree is built, so a hostile file cannot cost memory.
pub(crate) const MAX_DEPTH: usize = 64;

/// YAML's core schema tags (`!!str`…): anything else (`!!binary`, `!custom`) is refused, so
/// no value is read other than as it is written.
const CORE_TAGS: &[&str] = &["str", "int", "float", "bool", "null", "seq", "map"];

impl Positions {
    /// Reads the positions of `text`; a syntax error is returned with its location.
    pub(crate) fn parse(text: &str) -> Result<Positions, (String, Location)> {
        let mut recv = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        // Every document, so a second one is found and refused.
        parser.load(&mut recv, true).map_err(|e| {
            let m = e.marker();
            (e.info().to_string(), location(m))
        })?;
        Ok(recv.positions)
    }

    /// Where the value at `path` starts, else its key, else the nearest parent.
    pub(crate) fn value(&self, path: &FieldPath) -> Option<Location> {
        self.lookup(path, true)
    }

    /// Where the key of `path` is written, else its value, else the nearest parent.
    pub(crate) fn key(&self, path: &FieldPath) -> Option<Location> {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &FieldPath, value_first: bool) -> Option<Location> {
        let mut p = path.clone();
        loop {
            let (a, b) = if value_first {
                (&self.values, &self.keys)
            } else {
                (&self.keys, &self.values)
            };
            if let Some(l) = a.get(&p).or_else(|| b.get(&p)) {
                return Some(*l);
            }
            p.0.pop()?;
        }
    }
}

fn location(m: &Marker) -> Location {
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

enum Frame {
    Mapping {
        path: FieldPath,
        /// The key whose value comes next; `None` when a key comes next.
        key: Option<String>,
        /// This mapping is itself a key of its parent.
        is_key: bool,
    },
    Sequence {
        path: FieldPath,
        next: usize,
        is_key: bool,
    },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    positions: Positions,
    documents: usize,
    /// Nesting beyond [`MAX_DEPTH`] was met (reported once; nothing deeper is recorded).
    too_deep: bool,
}

impl Receiver {
    /// Refuses a tag that is not one of YAML's core ones.
    fn check_tag(&mut self, tag: Option<&yaml_rust2::parser::Tag>, loc: Location) {
        let Some(tag) = tag else { return };
        let full = format!("{}{}", tag.handle, tag.suffix);
        let full = match full.strip_prefix("tag:yaml.org,2002:") {
            Some(name) => format!("!!{name}"),
            None => full,
        };
        let core = full
            .strip_prefix("!!")
            .is_some_and(|name| CORE_TAGS.contains(&name));
        if !core {
            self.positions.refusals.push((
                format!("the YAML tag `{full}` is not supported"),
                loc,
                "write the value as plain text: a stack file uses YAML's core types only (no `!!binary`, no custom tags)",
            ));
        }
    }
}

impl Receiver {
    /// The path of the node starting now, or `None` when it is a mapping key.
    fn next_path(&mut self) -> Option<FieldPath> {
        match self.stack.last_mut() {
            None => Some(FieldPath::root()),
            Some(Frame::Mapping { path, key, .. }) => key.take().map(|k| path.key(k)),
            Some(Frame::Sequence { path, next, .. }) => {
                let p = path.index(*next);
                *next += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let loc = location(&mark);
        if self.too_deep {
            return;
        }
        match &ev {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, tag)
            | Event::MappingStart(_, tag) => self.check_tag(tag.as_ref(), loc),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.positions.refusals.push((
                        "a second YAML document starts here".into(),
                        loc,
                        "a stack file is one document: remove the `---` line and what follows, or merge it into the first",
                    ));
                }
            }
            _ => {}
        }
        if matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            self.too_deep = true;
            self.positions.refusals.push((
                format!("the document nests deeper than {MAX_DEPTH} levels here"),
                loc,
                "a stack file needs a few levels: flatten this value",
            ));
            return;
        }
        match ev {
            Event::Scalar(value, ..) => match self.next_path() {
                Some(path) => {
                    self.positions.values.insert(path, loc);
                }
                None => {
                    if let Some(Frame::Mapping { path, key, .. }) = self.stack.last_mut() {
                        self.positions.keys.insert(path.key(value.clone()), loc);
                        *key = Some(value);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_path() {
                    self.positions.values.insert(path, loc);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection used as a mapping key gets a placeholder path.
                let next = self.next_path();
                let is_key = next.is_none();
                let path = next.unwrap_or_else(|| FieldPath::root().key("?"));
                self.positions.values.insert(path.clone(), loc);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Mapping {
                        path,
                        key: None,
                        is_key,
                    }
                } else {
                    Frame::Sequence {
                        path,
                        next: 0,
                        is_key,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let was_key = matches!(
                    self.stack.pop(),
                    Some(
                        Frame::Mapping { is_key: true, .. } | Frame::Sequence { is_key: true, .. }
                    )
                );
                if was_key && let Some(Frame::Mapping { key, .. }) = self.stack.last_mut() {
                    // The collection was a key: its value comes next.
                    *key = Some("?".to_string());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values() {
        let text = "name: x\nservices:\n  api:\n    command: [a, b]\n    port: 619009\n";
        let p = Positions::parse(text).expect("parses");
        let port = FieldPath::service("api").key("port");
        assert_eq!(p.key(&port), Some(Location { line: 5, column: 5 }));
        assert_eq!(
            p.value(&port),
            Some(Location {
                line: 5,
                column: 11
            })
        );
        let arg = FieldPath::service("api").key("command").index(1);
        assert_eq!(
            p.value(&arg),
            Some(Location {
                line: 4,
                column: 18
            })
        );
        assert_eq!(arg.to_string(), "services.api.command[1]");
        // unknown paths fall back to the nearest parent
        let deep = FieldPath::service("api").key("port").key("x");
        assert_eq!(
            p.value(&deep),
            Some(Location {
                line: 5,
                column: 11
            })
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = Positions::parse("services:\n  a: [1, 2\n").expect_err("bad yaml");
        assert!(err.1.line >= 2, "{err:?}");
    }
}
