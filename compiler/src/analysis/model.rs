//! The component graph that the label analysis runs on. White-box programs (`build.rs`) and
//! grey-box YAML files (`greybox.rs`) both produce it, so both get the same labels.

use bloomc_grammar::span::Span;
use std::collections::BTreeSet;

/// A gate attribute: its name and the (input index, column name) pairs it is a copy of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attr {
    pub name: String,
    pub inputs: BTreeSet<(usize, String)>,
    /// Every input column the attribute is an identity copy of, joins included (a superset
    /// of `inputs`): a read input's column here is the one a hold can key on.
    pub joined: BTreeSet<(usize, String)>,
}

/// One nonmonotone operator's partition key; empty means `*` (untraceable).
pub type Gate = Vec<Attr>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Annotation {
    CR,
    CW,
    OR,
    OW,
}

impl Annotation {
    pub fn new(confluent: bool, stateful: bool) -> Self {
        match (confluent, stateful) {
            (true, false) => Annotation::CR,
            (true, true) => Annotation::CW,
            (false, false) => Annotation::OR,
            (false, true) => Annotation::OW,
        }
    }
    pub fn confluent(self) -> bool {
        matches!(self, Annotation::CR | Annotation::CW)
    }
    pub fn stateful(self) -> bool {
        matches!(self, Annotation::CW | Annotation::OW)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Annotation::CR => "CR",
            Annotation::CW => "CW",
            Annotation::OR => "OR",
            Annotation::OW => "OW",
        }
    }
}

/// How a seal key on the path's input maps to the output's columns.
#[derive(Debug, Clone)]
pub enum KeyMap {
    /// Grey box: attribute names pass through unchanged.
    ByName,
    /// White box: for each output column, the (input index, column) pairs it copies.
    Lineage(Vec<(String, BTreeSet<(usize, String)>)>),
}

#[derive(Debug, Clone)]
pub struct Path {
    /// The path's order-sensitivity depends on how its own input's facts fall into ticks
    /// (paths.rs): only a compatible seal on that input protects its read.
    pub own_batch: bool,
    /// A read race on this path is charged to the path of the input that triggers the read
    /// (paths.rs, `ModulePath::excused`).
    pub excused: bool,
    pub from: usize,
    pub to: usize,
    pub annotation: Annotation,
    /// One gate per nonmonotone source (O paths only).
    pub gates: Vec<Gate>,
    pub key_map: KeyMap,
    /// The nonmonotone statements responsible, for diagnostics (white box only).
    pub sources: Vec<Span>,
}

impl Path {
    /// The subscript: sorted attribute names, or `*` when a gate cannot be traced.
    pub fn subscript(&self) -> Vec<String> {
        if self.annotation.confluent() {
            return Vec::new();
        }
        let mut names = Vec::new();
        for g in &self.gates {
            if g.is_empty() {
                return vec!["*".to_string()];
            }
            names.extend(g.iter().map(|a| a.name.clone()));
        }
        if names.is_empty() {
            return vec!["*".to_string()];
        }
        names.sort();
        names.dedup();
        names
    }

    /// `OR{id, campaign}`-style text.
    pub fn describe(&self) -> String {
        let sub = self.subscript();
        if sub.is_empty() {
            self.annotation.as_str().to_string()
        } else {
            format!("{}{{{}}}", self.annotation.as_str(), sub.join(", "))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub replicated: bool,
    pub inputs: Vec<String>,
    /// The columns of each input (white box); grey-box streams have no declared columns.
    pub input_columns: Option<Vec<Vec<String>>>,
    pub outputs: Vec<String>,
    pub paths: Vec<Path>,
    pub span: Option<Span>,
}

/// A producer of an input stream: another component's output, or the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    Output { component: usize, output: usize },
    External,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub producer: Producer,
    pub component: usize,
    pub input: usize,
}

/// A declared seal: the stream into `component.input` is punctuated on `key`.
#[derive(Debug, Clone)]
pub struct SealDecl {
    pub component: usize,
    pub input: usize,
    pub key: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub components: Vec<Component>,
    pub edges: Vec<Edge>,
    pub seals: Vec<SealDecl>,
    /// Components whose inputs an explicit `order` sequences (white box only).
    pub ordered: Vec<usize>,
    /// (component, input) pairs an explicit `hold .. until sealed` holds per seal key.
    pub held: Vec<(usize, usize)>,
}

impl Graph {
    pub fn input_name(&self, c: usize, i: usize) -> String {
        let comp = self.components.get(c);
        format!(
            "{}.{}",
            comp.map_or("?", |c| c.name.as_str()),
            comp.and_then(|c| c.inputs.get(i)).map_or("?", String::as_str)
        )
    }
    pub fn output_name(&self, c: usize, o: usize) -> String {
        let comp = self.components.get(c);
        format!(
            "{}.{}",
            comp.map_or("?", |c| c.name.as_str()),
            comp.and_then(|c| c.outputs.get(o)).map_or("?", String::as_str)
        )
    }
}
