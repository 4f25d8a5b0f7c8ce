//! The analysis result and its renderings: text lines, JSON, `--explain` derivations, DOT,
//! and diagnostics at the nonmonotonic statements.

use super::coordination::{choose, Choice, Strategy};
use super::labels::{label, Label, Labels};
use super::model::{Graph, Producer};
use crate::diagnostic::{Code, Diagnostic};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write;

pub struct Analysis {
    pub graph: Graph,
    pub labels: Labels,
    pub choices: Vec<Choice>,
    /// Grey-box streams are named by interface; white-box ones by `group.interface`.
    pub greybox: bool,
}

impl Analysis {
    pub fn new(graph: Graph, greybox: bool) -> Analysis {
        let labels = label(&graph);
        let choices = choose(&graph, &labels);
        Analysis { graph, labels, choices, greybox }
    }

    fn consumed(&self, c: usize, o: usize) -> bool {
        self.graph.edges.iter().any(|e| e.producer == Producer::Output { component: c, output: o })
    }

    /// Every labelled output stream, with whether it leaves the system (a sink). In grey-box
    /// files a name produced by several components carries the highest label.
    pub fn streams(&self) -> Vec<(String, Label, bool)> {
        let mut out: Vec<(String, Label, bool)> = Vec::new();
        for r in &self.labels.outputs {
            let name = if self.greybox {
                self.graph
                    .components
                    .get(r.component)
                    .and_then(|c| c.outputs.get(r.output))
                    .cloned()
                    .unwrap_or_default()
            } else {
                self.graph.output_name(r.component, r.output)
            };
            let sink = !self.consumed(r.component, r.output);
            match out.iter_mut().find(|(n, _, _)| *n == name) {
                Some(slot) => {
                    slot.1 = slot.1.join(&r.label);
                    slot.2 |= sink;
                }
                None => out.push((name, r.label.clone(), sink)),
            }
        }
        out
    }

    /// The worst label over all streams.
    pub fn worst(&self) -> Option<Label> {
        self.streams().into_iter().map(|(_, l, _)| l).reduce(|a, b| a.join(&b))
    }

    pub fn json(&self) -> serde_json::Value {
        let components: Vec<serde_json::Value> = self
            .graph
            .components
            .iter()
            .map(|c| {
                let paths: Vec<serde_json::Value> = c
                    .paths
                    .iter()
                    .map(|p| {
                        json!({
                            "from": c.inputs.get(p.from),
                            "to": c.outputs.get(p.to),
                            "annotation": p.annotation.as_str(),
                            "gate": p.subscript(),
                        })
                    })
                    .collect();
                json!({ "name": c.name, "replicated": c.replicated, "paths": paths })
            })
            .collect();
        let streams: Vec<serde_json::Value> = self
            .streams()
            .into_iter()
            .map(|(name, l, sink)| json!({ "name": name, "label": l.name(), "key": l.key(), "sink": sink }))
            .collect();
        let coordination: Vec<serde_json::Value> = self
            .choices
            .iter()
            .map(|c| {
                json!({
                    "component": c.component,
                    "strategy": c.strategy.as_str(),
                    "key": c.key,
                    "reason": c.reason,
                    "would_seal": c.would_seal.iter().map(|(s, k)| json!({"stream": s, "key": k})).collect::<Vec<_>>(),
                    "present": c.present,
                })
            })
            .collect();
        json!({ "components": components, "streams": streams, "coordination": coordination })
    }

    /// One line per output stream, then the coordination choices.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let streams = self.streams();
        let width = streams.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        for (name, l, sink) in &streams {
            let _ = writeln!(out, "{name:<width$}  {l}{}", if *sink { "  (leaves the system)" } else { "" });
        }
        out.push_str(&self.coordination());
        out
    }

    /// The coordination choices and why, one line each (and one per read to hold).
    pub fn coordination(&self) -> String {
        let mut out = String::new();
        if self.choices.is_empty() {
            out.push_str("coordination: none needed\n");
        }
        for c in &self.choices {
            let _ = match c.strategy {
                Strategy::Seal => {
                    let _ = writeln!(
                        out,
                        "coordination: seal at `{}` on ({}): {}{}",
                        c.component,
                        c.key.join(", "),
                        c.reason,
                        if c.present { " (present: the program holds it)" } else { "" }
                    );
                    for (read, sealed, pairs) in &c.holds {
                        let _ = match pairs.as_slice() {
                            [] => writeln!(
                                out,
                                "  and hold each `{read}` fact until every partition of `{sealed}` is sealed (`{read}` does not carry the seal's key)"
                            ),
                            _ => {
                                let cols: Vec<&str> = pairs.iter().map(|(_, r)| r.as_str()).collect();
                                writeln!(
                                    out,
                                    "  and hold each `{read}` fact per ({}) until that partition of `{sealed}` is sealed",
                                    cols.join(", ")
                                )
                            }
                        };
                    }
                    Ok(())
                }
                Strategy::Order => writeln!(
                    out,
                    "coordination: order deliveries to `{}`: {}{}",
                    c.component,
                    c.reason,
                    if c.present { format!(" (present: `order {};`)", c.component) } else { String::new() }
                ),
            };
        }
        out
    }

    /// Each output's derivation in the paper's notation: rule, input label, annotation, result.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for r in &self.labels.outputs {
            let _ = writeln!(out, "{}: {}", self.graph.output_name(r.component, r.output), r.label);
            for s in &r.steps {
                let _ = writeln!(
                    out,
                    "  ({}) {}: {} / {} => {}",
                    s.rule,
                    s.input,
                    s.input_label,
                    s.path,
                    s.added.join(", ")
                );
            }
            for line in &r.reconcile {
                let _ = writeln!(out, "  reconcile: {line}");
            }
        }
        out
    }

    /// A Graphviz graph of components and streams, edges coloured by label.
    pub fn dot(&self) -> String {
        let color = |l: &Label| match l {
            Label::Seal(_) => "darkgreen",
            Label::Async => "black",
            Label::Run => "orange",
            Label::Inst => "red",
            Label::Diverge => "purple",
        };
        let mut out = String::from("digraph blazes {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
        for (i, c) in self.graph.components.iter().enumerate() {
            let rep = if c.replicated { "\\n(Rep)" } else { "" };
            let paths: Vec<String> = c
                .paths
                .iter()
                .map(|p| {
                    format!(
                        "{}->{}: {}",
                        c.inputs.get(p.from).map_or("?", String::as_str),
                        c.outputs.get(p.to).map_or("?", String::as_str),
                        p.describe()
                    )
                })
                .collect();
            let _ = writeln!(out, "  c{i} [label=\"{}{rep}\\n{}\"];", c.name, paths.join("\\n"));
        }
        for (k, e) in self.graph.edges.iter().enumerate() {
            let l = self.labels.inputs.get(&(e.component, e.input));
            let input =
                self.graph.components.get(e.component).and_then(|c| c.inputs.get(e.input)).map_or("?", String::as_str);
            let text = l.map_or("-".to_string(), |l| l.to_string());
            let col = l.map_or("gray", color);
            match &e.producer {
                Producer::External => {
                    let _ = writeln!(out, "  src{k} [shape=plaintext, label=\"{input}\"];");
                    let _ =
                        writeln!(out, "  src{k} -> c{} [label=\"{text}\", color={col}, fontcolor={col}];", e.component);
                }
                Producer::Output { component, output } => {
                    let from = self
                        .graph
                        .components
                        .get(*component)
                        .and_then(|c| c.outputs.get(*output))
                        .map_or("?", String::as_str);
                    let _ = writeln!(
                        out,
                        "  c{component} -> c{} [label=\"{from} -> {input}\\n{text}\", color={col}, fontcolor={col}];",
                        e.component
                    );
                }
            }
        }
        for r in &self.labels.outputs {
            if !self.consumed(r.component, r.output) {
                let name = self
                    .graph
                    .components
                    .get(r.component)
                    .and_then(|c| c.outputs.get(r.output))
                    .map_or("?", String::as_str);
                let col = color(&r.label);
                let _ = writeln!(out, "  sink{}_{} [shape=plaintext, label=\"{name}\"];", r.component, r.output);
                let _ = writeln!(
                    out,
                    "  c{} -> sink{}_{} [label=\"{}\", color={col}, fontcolor={col}];",
                    r.component, r.component, r.output, r.label
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// The most severe stream leaving the system that output (c, o) can reach.
    fn worst_sink_from(&self, c: usize, o: usize) -> Option<(String, Label)> {
        let mut seen = std::collections::BTreeSet::from([(c, o)]);
        let mut stack = vec![(c, o)];
        let mut worst: Option<(String, Label)> = None;
        while let Some((c, o)) = stack.pop() {
            if !self.consumed(c, o) {
                if let Some(r) = self.labels.outputs.iter().find(|r| r.component == c && r.output == o) {
                    let name = if self.greybox {
                        self.graph.components.get(c).and_then(|x| x.outputs.get(o)).cloned().unwrap_or_default()
                    } else {
                        self.graph.output_name(c, o)
                    };
                    if worst.as_ref().is_none_or(|(_, w)| r.label.severity() > w.severity()) {
                        worst = Some((name, r.label.clone()));
                    }
                }
            }
            for e in &self.graph.edges {
                if e.producer != (Producer::Output { component: c, output: o }) {
                    continue;
                }
                // Follow the paths of the consumer that start at this input.
                let Some(comp) = self.graph.components.get(e.component) else { continue };
                for p in comp.paths.iter().filter(|p| p.from == e.input) {
                    if seen.insert((e.component, p.to)) {
                        stack.push((e.component, p.to));
                    }
                }
            }
        }
        worst
    }

    /// A diagnostic per non-confluent path at its nonmonotonic statements: a warning where it
    /// makes an output nondeterministic, a note where a seal keeps it deterministic.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        // Each output's order-sensitive paths, found in one pass over the paths rather than
        // one per output (quadratic in a component of many outputs).
        let mut sensitive: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (c, comp) in self.graph.components.iter().enumerate() {
            for (pi, path) in comp.paths.iter().enumerate().filter(|(_, p)| !p.annotation.confluent()) {
                sensitive.entry((c, path.to)).or_default().push(pi);
            }
        }
        for r in &self.labels.outputs {
            let Some(comp) = self.graph.components.get(r.component) else { continue };
            let at = sensitive.get(&(r.component, r.output)).map_or(&[][..], Vec::as_slice);
            for (pi, path) in at.iter().filter_map(|&pi| comp.paths.get(pi).map(|p| (pi, p))) {
                let Some((&first, rest)) = path.sources.split_first() else { continue };
                let from = comp.inputs.get(path.from).map_or("?", String::as_str);
                let to = comp.outputs.get(path.to).map_or("?", String::as_str);
                let hazard = r.hazards.iter().find(|(i, _)| *i == pi);
                let sealed = r.seals_used.iter().find(|(i, _, _)| *i == pi);
                let mut d = if let (Some((_, why)), true) = (hazard, self.graph.ordered.contains(&r.component)) {
                    Diagnostic::new(
                        Code::OrderedPath,
                        format!(
                            "path `{from}` -> `{to}` of `{}` is {}, made consistent across replicas by `order {};`",
                            comp.name,
                            path.describe(),
                            comp.name
                        ),
                        first,
                        format!("order-sensitive: {}", path.describe()),
                    )
                    .with_note(format!(
                        "{why}; every replica of `{}` takes the same batches of input in the same order",
                        comp.name
                    ))
                } else if let Some((_, why)) = hazard {
                    let mut d = Diagnostic::new(
                        Code::Nondeterministic,
                        format!("`{}.{to}` is {}: path `{from}` -> `{to}` is {}", comp.name, r.label, path.describe()),
                        first,
                        format!("order-sensitive: {}", path.describe()),
                    )
                    .with_note(why.clone());
                    if let Some((sink, l)) = self.worst_sink_from(r.component, r.output) {
                        if !l.deterministic() && (sink != self.graph.output_name(r.component, r.output) || self.greybox)
                        {
                            d = d.with_note(format!("downstream, `{sink}` is {l}"));
                        }
                    }
                    let choice =
                        self.choices.iter().find(|c| c.component == comp.name && c.strategy == Strategy::Order);
                    let seals: Vec<String> = choice
                        .map(|c| {
                            c.would_seal.iter().map(|(s, k)| format!("seal `{s}` on ({})", k.join(", "))).collect()
                        })
                        .unwrap_or_default();
                    let help = if seals.is_empty() {
                        format!(
                            "order deliveries to `{}` (no seal is compatible with gate {{{}}})",
                            comp.name,
                            path.subscript().join(", ")
                        )
                    } else {
                        format!(
                            "{}, compatible with gate {{{}}}, or order deliveries to `{}`",
                            seals.join(" or "),
                            path.subscript().join(", "),
                            comp.name
                        )
                    };
                    d.with_help(help)
                } else if let Some((_, input, key)) = sealed {
                    Diagnostic::new(
                        Code::SealedPath,
                        format!("path `{from}` -> `{to}` of `{}` is {}, made deterministic by a seal", comp.name, path.describe()),
                        first,
                        format!("order-sensitive: {}", path.describe()),
                    )
                    .with_note(format!(
                        "`{}` is sealed on ({}), compatible with gate {{{}}}: `{}` holds each partition until it is sealed",
                        comp.inputs.get(*input).map_or("?", String::as_str),
                        key.join(", "),
                        path.subscript().join(", "),
                        comp.name
                    ))
                } else {
                    continue;
                };
                for &s in rest {
                    d = d.with_label(s, "also order-sensitive");
                }
                out.push(d);
            }
        }
        out
    }
}
