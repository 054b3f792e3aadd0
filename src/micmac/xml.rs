//! A small element tree for MicMac parameter files: element names, trimmed text, children,
//! and the line each element starts on (for error messages). Comments are dropped.

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

/// Parses `text` (the content of `path`, named in errors) into its root element.
pub fn parse(text: &str, path: &Path) -> Result<Element> {
    let mut reader = Reader::from_str(text);
    let line_of = |offset: u64| text[..(offset as usize).min(text.len())].matches('\n').count() + 1;
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
