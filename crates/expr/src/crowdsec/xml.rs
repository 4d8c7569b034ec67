//! `XMLGetNodeValue` and `XMLGetAttributeValue`: the etree path subset CrowdSec exposes
//! (`/Event/System[1]/EventID`, `//Data[@Name='TargetUserName']`), over documents parsed with
//! `roxmltree`.
//!
//! Windows event parsers call these helpers up to ~185 times on the same line, so each line is
//! parsed once into a small owned tree kept in a short cache of recent documents, and compiled
//! paths are cached too. Path semantics follow etree: a leading `/` starts at the document, an
//! empty segment (`//`) selects the context and all its descendants breadth first, `[n]` counts
//! from 1 among the matches under one parent (`[0]` is the first too, `[-1]` the last), and tag
//! and attribute names match on their local part.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::func::{Arity, Functions};
use crate::value::Value;

use super::{HelperContext, str_arg};

/// How many recent documents are kept parsed.
const DOC_CACHE_SIZE: usize = 8;
/// Compiled paths are cached up to this many (hub paths are constants; this only bounds
/// pathological dynamic paths).
const PATH_CACHE_SIZE: usize = 4096;

pub(super) fn register(f: &mut Functions, ctx: &Arc<HelperContext>) {
    let c = Arc::clone(ctx);
    f.register("XMLGetNodeValue", Arity::Exact(2), true, move |a| {
        let xml = str_arg("XMLGetNodeValue", a, 0)?;
        let path = str_arg("XMLGetNodeValue", a, 1)?;
        Ok(c.xml.find(xml, path).map_or(Value::Str(""), |(doc, n)| {
            Value::String(Arc::clone(&doc.nodes[n].text))
        }))
    });
    let c = Arc::clone(ctx);
    f.register("XMLGetAttributeValue", Arity::Exact(3), true, move |a| {
        let xml = str_arg("XMLGetAttributeValue", a, 0)?;
        let path = str_arg("XMLGetAttributeValue", a, 1)?;
        let attr = str_arg("XMLGetAttributeValue", a, 2)?;
        Ok(c.xml
            .find(xml, path)
            .and_then(|(doc, n)| doc.nodes[n].attr(attr).cloned().map(Value::String))
            .unwrap_or(Value::Str("")))
    });
}

/// A document's source and its parse (`None` when it is not well-formed).
type CachedDoc = (Arc<str>, Option<Arc<Doc>>);

/// Recently parsed documents and compiled paths.
#[derive(Debug, Default)]
pub(super) struct DocCache {
    docs: Mutex<VecDeque<CachedDoc>>,
    paths: RwLock<HashMap<String, Option<Arc<XPath>>>>,
}

impl DocCache {
    /// The first element `path` selects in `xml`, with the document holding it.
    fn find(&self, xml: &str, path: &str) -> Option<(Arc<Doc>, usize)> {
        let path = self.path(path)?;
        let doc = self.doc(xml)?;
        let n = first_match(&doc, 0, &path.0)?;
        Some((doc, n))
    }

    fn path(&self, path: &str) -> Option<Arc<XPath>> {
        if let Some(p) = self
            .paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
        {
            return p.clone();
        }
        let compiled = compile(path).map(Arc::new);
        let mut paths = self.paths.write().unwrap_or_else(PoisonError::into_inner);
        if paths.len() < PATH_CACHE_SIZE {
            paths.insert(path.to_owned(), compiled.clone());
        }
        compiled
    }

    fn doc(&self, xml: &str) -> Option<Arc<Doc>> {
        {
            let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, d)) = docs.iter().find(|(k, _)| **k == *xml) {
                return d.clone();
            }
        }
        // Parse outside the lock; a concurrent parse of the same line only costs time.
        let parsed = Doc::parse(xml).map(Arc::new);
        let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        if docs.len() >= DOC_CACHE_SIZE {
            docs.pop_back();
        }
        docs.push_front((xml.into(), parsed.clone()));
        parsed
    }
}

/// An owned element tree; node 0 is the document itself.
#[derive(Debug)]
struct Doc {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    name: Box<str>,
    attrs: Vec<(Box<str>, Arc<str>)>,
    /// etree's `Text()`: the character data before the first child element.
    text: Arc<str>,
    children: Vec<usize>,
    parent: Option<usize>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&Arc<str>> {
        let local = name.rsplit(':').next().unwrap_or(name);
        self.attrs
            .iter()
            .find(|(k, _)| **k == *local)
            .map(|(_, v)| v)
    }
}

impl Doc {
    fn parse(xml: &str) -> Option<Doc> {
        let d = roxmltree::Document::parse(xml).ok()?;
        let mut nodes = vec![Node {
            name: "".into(),
            attrs: Vec::new(),
            text: "".into(),
            children: Vec::new(),
            parent: None,
        }];
        let mut stack = vec![(d.root(), 0usize)];
        while let Some((parent, idx)) = stack.pop() {
            for child in parent.children().filter(roxmltree::Node::is_element) {
                let id = nodes.len();
                nodes.push(Node {
                    name: child.tag_name().name().into(),
                    attrs: child
                        .attributes()
                        .map(|a| (a.name().into(), a.value().into()))
                        .collect(),
                    text: leading_text(child).into(),
                    children: Vec::new(),
                    parent: Some(idx),
                });
                nodes[idx].children.push(id);
                stack.push((child, id));
            }
        }
        Some(Doc { nodes })
    }
}

/// Text and CDATA up to the first child element, comments skipped, as etree's `Text()`.
fn leading_text(node: roxmltree::Node<'_, '_>) -> String {
    let mut text = String::new();
    for c in node.children() {
        match c.node_type() {
            roxmltree::NodeType::Text => text.push_str(c.text().unwrap_or("")),
            roxmltree::NodeType::Comment => {}
            _ => break,
        }
    }
    text
}

/// A compiled path.
#[derive(Debug)]
struct XPath(Vec<Segment>);

#[derive(Debug)]
struct Segment {
    select: Select,
    filters: Vec<Filter>,
}

#[derive(Debug)]
enum Select {
    Root,
    SelfNode,
    Parent,
    Children,
    Descendants,
    ChildrenByTag(String),
}

#[derive(Debug)]
enum Filter {
    /// 0-based from the start, or negative from the end.
    Pos(i64),
    Attr(String),
    AttrVal(String, String),
    Child(String),
    ChildText(String, String),
    Func(Func),
    FuncVal(Func, String),
}

#[derive(Debug, Clone, Copy)]
enum Func {
    Text,
    LocalName,
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

/// etree's `CompilePath`; `None` for paths it rejects (the helpers then return "").
fn compile(path: &str) -> Option<XPath> {
    let mut path = path.to_owned();
    if path.ends_with("//") {
        path.push('*');
    }
    let mut segments = Vec::new();
    let rest = match path.strip_prefix('/') {
        Some(rest) => {
            segments.push(Segment {
                select: Select::Root,
                filters: Vec::new(),
            });
            rest
        }
        None => path.as_str(),
    };
    for seg in split_outside_quotes(rest) {
        let mut pieces = seg.split('[');
        let select = match pieces.next().unwrap_or("") {
            "." => Select::SelfNode,
            ".." => Select::Parent,
            "*" => Select::Children,
            "" => Select::Descendants,
            tag => Select::ChildrenByTag(local(tag)),
        };
        let filters = pieces
            .map(|p| p.strip_suffix(']').and_then(compile_filter))
            .collect::<Option<Vec<_>>>()?;
        segments.push(Segment { select, filters });
    }
    Some(XPath(segments))
}

/// Splits on `/` except inside quotes (`[@Name='a/b']`).
fn split_outside_quotes(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '/') => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

fn compile_func(name: &str) -> Option<Func> {
    match name {
        "text" => Some(Func::Text),
        "local-name" | "name" => Some(Func::LocalName),
        _ => None,
    }
}

fn compile_filter(f: &str) -> Option<Filter> {
    if f.is_empty() {
        return None;
    }
    let eq = f
        .find("='")
        .map(|i| (i, '\''))
        .or_else(|| f.find("=\"").map(|i| (i, '"')));
    if let Some((i, q)) = eq {
        let key = &f[..i];
        let value = f[i + 2..].strip_suffix(q)?;
        if value.contains(q) {
            return None;
        }
        return Some(if let Some(attr) = key.strip_prefix('@') {
            Filter::AttrVal(local(attr), value.to_owned())
        } else if let Some(func) = key.strip_suffix("()") {
            Filter::FuncVal(compile_func(func)?, value.to_owned())
        } else {
            Filter::ChildText(local(key), value.to_owned())
        });
    }
    if let Some(attr) = f.strip_prefix('@') {
        return Some(Filter::Attr(local(attr)));
    }
    if let Some(func) = f.strip_suffix("()") {
        return Some(Filter::Func(compile_func(func)?));
    }
    if let Ok(n) = f.parse::<i64>() {
        return Some(Filter::Pos(if n > 0 { n - 1 } else { n }));
    }
    Some(Filter::Child(local(f)))
}

/// Depth-first over the candidates of each segment: the first result is the one etree's
/// breadth-by-segment evaluation puts first.
fn first_match(doc: &Doc, ctx: usize, segments: &[Segment]) -> Option<usize> {
    let Some((seg, rest)) = segments.split_first() else {
        return Some(ctx);
    };
    candidates(doc, ctx, seg)
        .into_iter()
        .find_map(|c| first_match(doc, c, rest))
}

fn candidates(doc: &Doc, ctx: usize, seg: &Segment) -> Vec<usize> {
    let node = &doc.nodes[ctx];
    let mut out: Vec<usize> = match &seg.select {
        Select::Root => vec![0],
        Select::SelfNode => vec![ctx],
        Select::Parent => node.parent.into_iter().collect(),
        Select::Children => node.children.clone(),
        Select::ChildrenByTag(tag) => node
            .children
            .iter()
            .copied()
            .filter(|c| *doc.nodes[*c].name == **tag)
            .collect(),
        Select::Descendants => {
            let mut all = vec![ctx];
            let mut i = 0;
            while let Some(&n) = all.get(i) {
                all.extend_from_slice(&doc.nodes[n].children);
                i += 1;
            }
            all
        }
    };
    for filter in &seg.filters {
        out = apply_filter(doc, out, filter);
    }
    out
}

fn apply_filter(doc: &Doc, cands: Vec<usize>, filter: &Filter) -> Vec<usize> {
    let func = |f: Func, n: usize| -> &str {
        match f {
            Func::Text => &doc.nodes[n].text,
            Func::LocalName => &doc.nodes[n].name,
        }
    };
    let has_child = |n: usize, tag: &str, text: Option<&str>| {
        doc.nodes[n].children.iter().any(|c| {
            let c = &doc.nodes[*c];
            *c.name == *tag && text.is_none_or(|t| *c.text == *t)
        })
    };
    match filter {
        Filter::Pos(i) => {
            let idx = if *i >= 0 {
                usize::try_from(*i).ok()
            } else {
                usize::try_from(-*i)
                    .ok()
                    .and_then(|back| cands.len().checked_sub(back))
            };
            idx.and_then(|i| cands.get(i).copied())
                .into_iter()
                .collect()
        }
        Filter::Attr(a) => cands
            .into_iter()
            .filter(|n| doc.nodes[*n].attr(a).is_some())
            .collect(),
        Filter::AttrVal(a, v) => cands
            .into_iter()
            .filter(|n| doc.nodes[*n].attr(a).is_some_and(|x| **x == **v))
            .collect(),
        Filter::Child(tag) => cands
            .into_iter()
            .filter(|n| has_child(*n, tag, None))
            .collect(),
        Filter::ChildText(tag, text) => cands
            .into_iter()
            .filter(|n| has_child(*n, tag, Some(text)))
            .collect(),
        Filter::Func(f) => cands
            .into_iter()
            .filter(|n| !func(*f, *n).is_empty())
            .collect(),
        Filter::FuncVal(f, v) => cands
            .into_iter()
            .filter(|n| func(*f, *n) == v.as_str())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::value::Value;

    const EVENT: &str = r#"<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>
  <System>
    <Provider Name='Microsoft-Windows-Security-Auditing' Guid='{54849625}'/>
    <EventID>4625</EventID>
    <TimeCreated SystemTime='2022-07-18T13:57:33.3413432Z'/>
    <Computer>DESKTOP-éà</Computer>
    <Security UserID='S-1-5-18'/>
  </System>
  <EventData>
    <Data Name='SubjectUserSid'>S-1-5-18</Data>
    <Data Name='TargetUserName'>bob</Data>
    <Data Name='IpAddress'>10.0.0.1</Data>
    <Data Name='Empty'></Data>
    <Data Name='Path'>a/b<!-- c -->c<x/>tail</Data>
  </EventData>
  <Other><Data Name='TargetUserName'>not-this</Data></Other>
</Event>"#;

    fn node(path: &str) -> String {
        let f = funcs();
        ok(&f, "XMLGetNodeValue", &[s(EVENT), Value::string(path)])
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn node_values_by_hub_paths() {
        assert_eq!(node("/Event/System[1]/EventID"), "4625");
        assert_eq!(node("/Event/System/Computer"), "DESKTOP-éà");
        assert_eq!(
            node("/Event/EventData[1]/Data[@Name='TargetUserName']"),
            "bob"
        );
        assert_eq!(node("/Event/EventData[1]/Data[2]"), "bob");
        assert_eq!(node("/Event/EventData[1]/Data[0]"), "S-1-5-18");
        // Text stops at the first child element, comments are skipped.
        assert_eq!(node("/Event/EventData/Data[-1]"), "a/bc");
        assert_eq!(node("//Data[@Name='TargetUserName']"), "bob");
        assert_eq!(node("//Data[@Name=\"IpAddress\"]"), "10.0.0.1");
        assert_eq!(node("/Event/EventData/Data[@Name='Empty']"), "");
        assert_eq!(node("/Event/*/Data[@Name='TargetUserName']"), "bob");
        assert_eq!(node("/Event/Other/Data"), "not-this");
        assert_eq!(node("/Event/System[EventID='4625']/Computer"), "DESKTOP-éà");
        assert_eq!(node("/Event/System[EventID='1']/Computer"), "");
        assert_eq!(node("Event/System/EventID"), "4625");
        assert_eq!(node("/Event/System/EventID/../Computer"), "DESKTOP-éà");
        assert_eq!(node("//Data[text()='bob']"), "bob");
    }

    #[test]
    fn missing_nodes_and_bad_input() {
        assert_eq!(node("/Event/System/Nope"), "");
        assert_eq!(node("/Event/EventData/Data[9]"), "");
        assert_eq!(node("/Event/EventData/Data[@Name='Nope']"), "");
        assert_eq!(node("/Event/EventData/Data[@Name='x"), "");
        assert_eq!(node("/Event/EventData/Data[]"), "");
        let f = funcs();
        assert_eq!(ok(&f, "XMLGetNodeValue", &[s("<not xml"), s("/a")]), s(""));
        assert_eq!(ok(&f, "XMLGetNodeValue", &[s(""), s("/a")]), s(""));
        assert!(call(&f, "XMLGetNodeValue", &[Value::Nil, s("/a")]).is_err());
    }

    #[test]
    fn attribute_values() {
        let f = funcs();
        let a = |p: &'static str, name: &'static str| {
            ok(&f, "XMLGetAttributeValue", &[s(EVENT), s(p), s(name)])
        };
        assert_eq!(
            a("/Event/System[1]/Provider", "Name"),
            s("Microsoft-Windows-Security-Auditing")
        );
        assert_eq!(
            a("/Event/System[1]/TimeCreated", "SystemTime"),
            s("2022-07-18T13:57:33.3413432Z")
        );
        assert_eq!(a("/Event/System[1]/Security", "UserID"), s("S-1-5-18"));
        assert_eq!(a("/Event/System[1]/Security", "Nope"), s(""));
        assert_eq!(a("/Event/System[1]/Nope", "Name"), s(""));
        assert_eq!(
            ok(&f, "XMLGetAttributeValue", &[s("<<"), s("/a"), s("b")]),
            s("")
        );
    }

    #[test]
    fn documents_are_cached_across_calls_and_inputs() {
        let f = funcs();
        let other = "<Event><System><EventID>1</EventID></System></Event>";
        for _ in 0..3 {
            assert_eq!(
                ok(
                    &f,
                    "XMLGetNodeValue",
                    &[s(EVENT), s("/Event/System/EventID")]
                ),
                s("4625")
            );
            assert_eq!(
                ok(
                    &f,
                    "XMLGetNodeValue",
                    &[s(other), s("/Event/System/EventID")]
                ),
                s("1")
            );
        }
        for i in 0..20 {
            let doc = format!("<a><b>{i}</b></a>");
            assert_eq!(
                ok(&f, "XMLGetNodeValue", &[Value::string(doc), s("/a/b")]),
                Value::string(i.to_string())
            );
        }
    }
}
