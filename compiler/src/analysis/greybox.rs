//! Grey-box input: the paper's YAML annotation files (Section VI), read into the same
//! component graph as white-box programs.
//!
//! ```yaml
//! Count:
//!   annotation:
//!     - { from: words, to: counts, label: OW, subscript: [word, batch] }
//! Report:
//!   Rep: true
//!   annotation: { from: click, to: response, label: CW }   # one entry or a list
//! POOR: { from: request, to: response, label: OR, subscript: [id] }
//! streams:
//!   click: { seal: [campaign] }
//! ```
//!
//! Streams connect by interface name: an output `x` feeds every input `x`. An input that no
//! other component produces also comes from outside. A component whose output feeds its own input runs as several
//! instances that talk to each other, so it counts as replicated. A top-level entry that is a
//! bare annotation (as the paper prints POOR, THRESH, WINDOW and CAMPAIGN) is a *variant* of
//! the component declared just before it: `--variant NAME` picks one, and without it every
//! variant is analysed in turn.

use super::model::{Annotation, Attr, Component, Edge, Graph, KeyMap, Path, Producer, SealDecl};
use crate::diagnostic::{Code, Diagnostic};
use bloomc_grammar::span::{FileId, Span};
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// A parsed annotation file: its components and variants, before a variant is chosen.
pub struct GreyBox {
    components: Vec<ComponentDecl>,
    /// (variant name, index of the component it belongs to, its annotations).
    pub variants: Vec<(String, usize, Vec<PathDecl>)>,
    seals: Vec<(String, Vec<String>)>,
}

struct ComponentDecl {
    name: String,
    rep: bool,
    paths: Vec<PathDecl>,
    span: Span,
}

#[derive(Clone)]
pub struct PathDecl {
    from: String,
    to: String,
    annotation: Annotation,
    subscript: Option<Vec<String>>,
    span: Span,
}

struct Reader<'a> {
    file: FileId,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Reader<'_> {
    /// saphyr marks positions in characters; spans are bytes.
    fn span(&self, node: &MarkedYaml<'_>) -> Span {
        let byte = |chars: usize| self.text.char_indices().nth(chars).map_or(self.text.len(), |(b, _)| b);
        let start = byte(node.span.start.index());
        let mut end = byte(node.span.end.index()).max(start);
        if end == start {
            end = self.text[start..].find('\n').map_or(self.text.len(), |n| start + n).max(start);
        }
        Span::new(self.file, start, end)
    }

    fn error(&mut self, code: Code, node: &MarkedYaml<'_>, message: String, label: &str, help: &str) {
        let span = self.span(node);
        self.diags.push(Diagnostic::new(code, message, span, label).with_help(help));
    }

    fn string(&mut self, node: &MarkedYaml<'_>, what: &str) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
            YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
            _ => {
                self.error(
                    Code::GreyBoxShape,
                    node,
                    format!("{what} must be a name"),
                    "not a name",
                    "write a plain name, like `click`",
                );
                None
            }
        }
    }

    fn names(&mut self, node: &MarkedYaml<'_>, what: &str) -> Option<Vec<String>> {
        match &node.data {
            YamlData::Sequence(items) => items.iter().map(|i| self.string(i, what)).collect(),
            _ => {
                self.error(
                    Code::GreyBoxShape,
                    node,
                    format!("{what} must be a list"),
                    "not a list",
                    "write a list of names, like `[id, campaign]`",
                );
                None
            }
        }
    }

    /// The `streams:` entry: a seal per stream (`{ seal: [columns] }`), into `seals`.
    fn streams(&mut self, value: &MarkedYaml<'_>, seals: &mut Vec<(String, Vec<String>)>) {
        let Some(streams) = self.entries(value, "`streams`") else { return };
        for (stream, _, spec) in streams {
            let Some(fields) = self.entries(spec, "a stream annotation") else { continue };
            for (field, fnode, v) in fields {
                if field == "seal" {
                    if let Some(key) = self.names(v, "`seal`") {
                        seals.push((stream.clone(), key));
                    }
                } else {
                    self.error(
                        Code::GreyBoxShape,
                        fnode,
                        format!("unknown stream field `{field}`"),
                        "unknown field",
                        "a stream annotation is `{ seal: [columns] }`",
                    );
                }
            }
        }
    }

    /// A component's fields: whether it is replicated (`Rep`), and its annotated paths.
    fn component(&mut self, fields: &[(String, &MarkedYaml<'_>, &MarkedYaml<'_>)]) -> (bool, Vec<PathDecl>) {
        let (mut rep, mut paths) = (false, Vec::new());
        for (field, fnode, v) in fields {
            match field.as_str() {
                "Rep" => match &v.data {
                    YamlData::Value(Scalar::Boolean(b)) => rep = *b,
                    _ => self.error(
                        Code::GreyBoxShape,
                        v,
                        "`Rep` must be true or false".into(),
                        "not a boolean",
                        "write `Rep: true`",
                    ),
                },
                "annotation" => paths.extend(self.annotations(v).unwrap_or_default()),
                other => self.error(
                    Code::GreyBoxShape,
                    fnode,
                    format!("unknown component field `{other}`"),
                    "unknown field",
                    "a component has `annotation:` and optionally `Rep: true`",
                ),
            }
        }
        (rep, paths)
    }

    fn entries<'n, 'i>(
        &mut self,
        node: &'n MarkedYaml<'i>,
        what: &str,
    ) -> Option<Vec<(String, &'n MarkedYaml<'i>, &'n MarkedYaml<'i>)>> {
        let YamlData::Mapping(map) = &node.data else {
            self.error(
                Code::GreyBoxShape,
                node,
                format!("{what} must be a mapping"),
                "not a mapping",
                "write `key: value` pairs",
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let key = self.string(k, "a key")?;
            out.push((key, k, v));
        }
        Some(out)
    }

    fn annotation(&mut self, node: &MarkedYaml<'_>) -> Option<PathDecl> {
        let entries = self.entries(node, "an annotation")?;
        let (mut from, mut to, mut label, mut subscript) = (None, None, None, None);
        let mut label_node = None;
        for (key, knode, v) in entries {
            match key.as_str() {
                "from" => from = self.string(v, "`from`"),
                "to" => to = self.string(v, "`to`"),
                "label" => {
                    label_node = Some(v);
                    label = self.string(v, "`label`");
                }
                "subscript" => subscript = Some(self.names(v, "`subscript`")?),
                other => {
                    self.error(
                        Code::GreyBoxShape,
                        knode,
                        format!("unknown annotation field `{other}`"),
                        "unknown field",
                        "an annotation has `from`, `to`, `label` and, for OR and OW, `subscript`",
                    );
                    return None;
                }
            }
        }
        let (Some(from), Some(to), Some(label), Some(label_node)) = (from, to, label, label_node) else {
            self.error(
                Code::GreyBoxShape,
                node,
                "an annotation needs `from`, `to` and `label`".to_string(),
                "incomplete annotation",
                "write `{ from: input, to: output, label: CR }`",
            );
            return None;
        };
        let annotation = match label.as_str() {
            "CR" => Annotation::CR,
            "CW" => Annotation::CW,
            "OR" => Annotation::OR,
            "OW" => Annotation::OW,
            other => {
                self.error(
                    Code::GreyBoxLabel,
                    label_node,
                    format!("unknown label `{other}`"),
                    "not a component annotation",
                    "the labels are CR, CW, OR and OW (stream labels such as Async are derived, not written)",
                );
                return None;
            }
        };
        if annotation.confluent() && subscript.is_some() {
            self.error(
                Code::GreyBoxSubscript,
                node,
                format!("a subscript on the confluent label {label}"),
                "confluent paths have no gate",
                "remove `subscript`, or label the path OR or OW if it is order-sensitive",
            );
            return None;
        }
        Some(PathDecl { from, to, annotation, subscript, span: self.span(node) })
    }

    fn annotations(&mut self, node: &MarkedYaml<'_>) -> Option<Vec<PathDecl>> {
        match &node.data {
            YamlData::Sequence(items) => items.iter().map(|i| self.annotation(i)).collect(),
            _ => Some(vec![self.annotation(node)?]),
        }
    }
}

/// Reads an annotation file. Errors are located in `file`.
pub fn parse(file: FileId, text: &str) -> Result<GreyBox, Vec<Diagnostic>> {
    let docs = match MarkedYaml::load_from_str(text) {
        Ok(d) => d,
        Err(e) => {
            let m = e.marker();
            let start = text.char_indices().nth(m.index()).map_or(text.len(), |(b, _)| b);
            let end = text[start..].chars().next().map_or(start, |c| start + c.len_utf8());
            return Err(vec![Diagnostic::new(
                Code::GreyBoxSyntax,
                format!("malformed YAML: {}", e.info()),
                Span::new(file, start, end),
                "here",
            )
            .with_help("fix the YAML syntax; annotation files are plain YAML mappings")]);
        }
    };
    let mut r = Reader { file, text, diags: Vec::new() };
    let mut g = GreyBox { components: Vec::new(), variants: Vec::new(), seals: Vec::new() };
    let Some(root) = docs.first() else {
        return Err(vec![Diagnostic::new(
            Code::GreyBoxShape,
            "the file is empty",
            Span::new(file, 0, 0),
            "no components",
        )
        .with_help("list components with their `annotation:` entries")]);
    };
    let Some(entries) = r.entries(root, "the file") else { return Err(r.diags) };
    for (name, knode, value) in entries {
        if name == "streams" {
            r.streams(value, &mut g.seals);
            continue;
        }
        let fields = match &value.data {
            YamlData::Mapping(_) => r.entries(value, "a component"),
            _ => {
                r.error(
                    Code::GreyBoxShape,
                    value,
                    format!("`{name}` must be a mapping"),
                    "not a mapping",
                    "write `Name:` followed by `annotation:` entries",
                );
                continue;
            }
        };
        let Some(fields) = fields else { continue };
        let is_variant = fields.iter().any(|(k, _, _)| k == "from" || k == "label");
        if is_variant {
            let Some(owner) = g.components.len().checked_sub(1) else {
                r.error(
                    Code::GreyBoxShape,
                    knode,
                    format!("variant `{name}` comes before any component"),
                    "no component to attach to",
                    "put query variants right after the component they annotate",
                );
                continue;
            };
            if let Some(paths) = r.annotations(value) {
                g.variants.push((name, owner, paths));
            }
            continue;
        }
        let (rep, paths) = r.component(&fields);
        let span = r.span(knode);
        g.components.push(ComponentDecl { name, rep, paths, span });
    }
    if r.diags.is_empty() {
        Ok(g)
    } else {
        Err(r.diags)
    }
}

impl GreyBox {
    /// The component graph with `variant` (if any) added to its component.
    pub fn graph(&self, variant: Option<&str>) -> Graph {
        let mut comps: Vec<(String, bool, Vec<PathDecl>, Span)> =
            self.components.iter().map(|c| (c.name.clone(), c.rep, c.paths.clone(), c.span)).collect();
        if let Some((_, owner, paths)) = self.variants.iter().find(|(n, _, _)| Some(n.as_str()) == variant) {
            if let Some(c) = comps.get_mut(*owner) {
                c.2.extend(paths.iter().cloned());
            }
        }
        let mut g = Graph::default();
        for (name, rep, decls, span) in &comps {
            g.components.push(component(name, *rep, decls, *span));
        }
        for c in 0..g.components.len() {
            let inputs = g.components.get(c).map(|x| x.inputs.clone()).unwrap_or_default();
            for (i, input) in inputs.iter().enumerate() {
                // Produced only by itself (instances talking to each other), a stream must
                // still start somewhere: outside, as for an input nobody produces.
                let mut produced = false;
                for (p, pc) in g.components.iter().enumerate() {
                    if let Some(o) = pc.outputs.iter().position(|x| x == input) {
                        produced |= p != c;
                        g.edges.push(Edge {
                            producer: Producer::Output { component: p, output: o },
                            component: c,
                            input: i,
                        });
                    }
                }
                if !produced {
                    g.edges.push(Edge { producer: Producer::External, component: c, input: i });
                }
                for (stream, key) in &self.seals {
                    if stream == input {
                        g.seals.push(SealDecl { component: c, input: i, key: key.clone() });
                    }
                }
            }
        }
        // A component feeding its own input runs as several communicating instances.
        let self_fed: Vec<usize> = g
            .edges
            .iter()
            .filter(|e| matches!(e.producer, Producer::Output { component, .. } if component == e.component))
            .map(|e| e.component)
            .collect();
        for c in self_fed {
            if let Some(comp) = g.components.get_mut(c) {
                comp.replicated = true;
            }
        }
        g
    }
}

/// A component of a grey-box file with its declared paths: its inputs and outputs in order
/// of first mention, each path gated by its subscript's attributes (every input carries
/// them by name) or, without a subscript, by an empty gate.
fn component(name: &str, replicated: bool, decls: &[PathDecl], span: Span) -> Component {
    let mut inputs: Vec<String> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();
    for d in decls {
        if !inputs.contains(&d.from) {
            inputs.push(d.from.clone());
        }
        if !outputs.contains(&d.to) {
            outputs.push(d.to.clone());
        }
    }
    let paths = decls
        .iter()
        .filter_map(|d| {
            let from = inputs.iter().position(|x| *x == d.from)?;
            let to = outputs.iter().position(|x| *x == d.to)?;
            let gates = match (&d.subscript, d.annotation.confluent()) {
                (_, true) => Vec::new(),
                (None, false) => vec![Vec::new()],
                (Some(names), false) => vec![names
                    .iter()
                    .map(|n| Attr {
                        name: n.clone(),
                        inputs: (0..inputs.len()).map(|i| (i, n.clone())).collect(),
                        joined: (0..inputs.len()).map(|i| (i, n.clone())).collect(),
                    })
                    .collect()],
            };
            Some(Path {
                // A grey-box annotation says nothing about batching.
                own_batch: false,
                excused: false,
                from,
                to,
                annotation: d.annotation,
                gates,
                key_map: KeyMap::ByName,
                sources: vec![d.span],
            })
        })
        .collect();
    Component { name: name.to_string(), replicated, inputs, input_columns: None, outputs, paths, span: Some(span) }
}
