//! A small element tree for MicMac parameter files: element names, trimmed text, children,
//! and the line each element starts on (for error messages). Comments are dropped.
//!
//! Both XML flavours (MicMac's `ParamMICMAC` and `<DeepsimMatch>`) come through here, so the
//! bounds on hostile files live here: the file size ([`MAX_FILE_BYTES`], so that `/dev/zero` is
//! not read for ever) and the nesting depth ([`MAX_DEPTH`]: the tree is walked and dropped
//! recursively, and 200000 nested elements would overflow the stack). Lines are counted as
//! the reader advances, in linear time.

use crate::error::{Error, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::path::Path;

/// One XML element.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Text content, trimmed (empty for pure containers).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// 1-based line of the opening tag.
    pub line: usize,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// The largest parameter file read (real ones are a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The deepest element nesting accepted (real files nest fewer than 10 levels).
pub const MAX_DEPTH: usize = 100;

/// Reads a parameter file as text: at most [`MAX_FILE_BYTES`], UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::invalid_input(format!(
            "{}: more than {} MiB: not a parameter file (they are a few kilobytes)",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| Error::decode(path, format!("not UTF-8 text ({e})")))
}

/// Counts lines up to a byte offset, resuming from the previous (smaller or equal) offset.
struct LineCounter<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn line_at(&mut self, offset: u64) -> usize {
        let offset = (offset as usize).min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        let bytes = &self.text.as_bytes()[self.offset..offset];
        self.line += bytes.iter().filter(|&&b| b == b'\n').count();
        self.offset = offset;
        self.line
    }
}

/// Parses `text` (the content of `path`, named in errors) into its root element.
pub fn parse(text: &str, path: &Path) -> Result<Element> {
    let mut reader = Reader::from_str(text);
    let lines = std::cell::RefCell::new(LineCounter { text, offset: 0, line: 1 });
    let line_of = |offset: u64| lines.borrow_mut().line_at(offset);
    let bad = |offset: u64, what: String| {
        Error::invalid_input(format!("{}:{}: malformed XML: {what}", path.display(), line_of(offset)))
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| bad(reader.error_position(), e.to_string()))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(bad(
                        position,
                        format!("elements nested more than {MAX_DEPTH} deep; parameter files nest a few levels"),
                    ));
                }
                let name = start.name().as_ref().to_string();
                stack.push(Element { name, text: String::new(), children: Vec::new(), line: line_of(position) });
            }
            Event::Empty(start) => {
                let name = start.name().as_ref().to_string();
                let element = Element { name, text: String::new(), children: Vec::new(), line: line_of(position) };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Err(bad(position, "the document must have one root element with content".into())),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err(bad(position, "text outside the root element".into()));
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.to_string();
                let ch = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => return Err(bad(position, format!("unknown entity &{other};"))),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(ch);
                }
            }
            Event::End(end) => {
                let name = end.name().as_ref().to_string();
                let mut element = stack.pop().ok_or_else(|| bad(position, format!("unexpected </{name}>")))?;
                if element.name != name {
                    return Err(bad(position, format!("</{name}> closes <{}> (line {})", element.name, element.line)));
                }
                element.text = element.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => {
                        if root.is_some() {
                            return Err(bad(position, "more than one root element".into()));
                        }
                        root = Some(element);
                    }
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(bad(text.len() as u64, format!("<{}> (line {}) is never closed", open.name, open.line)));
    }
    root.ok_or_else(|| bad(0, "no root element".into()))
}
