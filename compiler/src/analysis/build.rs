//! Builds the component graph of a white-box program: one component per node group (or, for
//! a file without a system, one per module with every input fed from outside), its paths
//! from the module analysis, edges from the wiring and feeds, and seals from the program and
//! the command line.

use super::gates::{facts, Gate as RuleGate};
use super::model::{Annotation, Attr, Component, Edge, Gate, Graph, KeyMap, Path, Producer, SealDecl};
use super::paths::{module_paths, ModulePath};
use crate::ir::{CollectionId, ModuleId, Program};
use bloomc_grammar::ast::CollectionKind;
use std::collections::{BTreeMap, BTreeSet};

fn interfaces(p: &Program, m: ModuleId, kind: CollectionKind) -> Vec<CollectionId> {
    p.module(m)
        .map(|m| m.collections.iter().copied().filter(|&c| p.collection(c).is_some_and(|x| x.kind == kind)).collect())
        .unwrap_or_default()
}

/// A module's input and output interfaces in declaration order, and each one's position
/// there, computed once per module: paths, gates, wires and feeds look positions up rather
/// than scan the module per lookup (quadratic in a module of 10,000 interfaces).
#[derive(Default)]
struct Interfaces {
    inputs: Vec<CollectionId>,
    outputs: Vec<CollectionId>,
    input_at: BTreeMap<CollectionId, usize>,
    output_at: BTreeMap<CollectionId, usize>,
}

impl Interfaces {
    fn new(p: &Program, m: ModuleId) -> Interfaces {
        let inputs = interfaces(p, m, CollectionKind::Input);
        let outputs = interfaces(p, m, CollectionKind::Output);
        let at = |v: &[CollectionId]| v.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        Interfaces { input_at: at(&inputs), output_at: at(&outputs), inputs, outputs }
    }

    fn position(&self, c: CollectionId, kind: CollectionKind) -> Option<usize> {
        match kind {
            CollectionKind::Input => self.input_at.get(&c).copied(),
            CollectionKind::Output => self.output_at.get(&c).copied(),
            _ => None,
        }
    }
}

fn convert_gate(p: &Program, inputs: &BTreeMap<CollectionId, usize>, g: &RuleGate) -> Gate {
    let named = |cols: &BTreeSet<(CollectionId, usize)>| -> BTreeSet<(usize, String)> {
        cols.iter()
            .filter_map(|(c, col)| {
                let i = *inputs.get(c)?;
                let name = p.collection(*c)?.columns.get(*col)?.name.clone();
                Some((i, name))
            })
            .collect()
    };
    g.iter()
        .filter(|a| !a.inputs.is_empty())
        .map(|a| Attr {
            name: a.name.clone(),
            // Compatibility asks for partition-closed columns, not any identity copy.
            inputs: named(&a.closed),
            joined: named(&a.inputs),
        })
        .collect()
}

fn convert(p: &Program, ifaces: &Interfaces, mp: &ModulePath) -> Option<Path> {
    let from = ifaces.position(mp.from, CollectionKind::Input)?;
    let to = ifaces.position(mp.to, CollectionKind::Output)?;
    let out_coll = p.collection(mp.to)?;
    let key_map = KeyMap::Lineage(
        mp.key_map
            .iter()
            .filter_map(|(i, srcs)| {
                let name = out_coll.columns.get(*i)?.name.clone();
                let srcs: BTreeSet<(usize, String)> = srcs
                    .iter()
                    .filter_map(|(c, col)| {
                        let j = *ifaces.input_at.get(c)?;
                        Some((j, p.collection(*c)?.columns.get(*col)?.name.clone()))
                    })
                    .collect();
                Some((name, srcs))
            })
            .collect(),
    );
    Some(Path {
        own_batch: mp.own_batch,
        excused: mp.excused,
        from,
        to,
        annotation: Annotation::new(mp.confluent, mp.stateful),
        gates: mp.gates.iter().map(|g| convert_gate(p, &ifaces.input_at, g)).collect(),
        key_map,
        sources: mp.sources.iter().filter_map(|&r| p.rule(r).map(|r| r.span)).collect(),
    })
}

/// A `--seal NAME=cols` from the command line: NAME is `group.input` or an input name.
#[derive(Debug, Clone)]
pub struct SealArg {
    pub stream: String,
    pub key: Vec<String>,
}

/// The component graph, plus the `--seal` arguments that cannot apply.
pub fn graph(p: &Program, seal_args: &[SealArg]) -> (Graph, Vec<SealProblem>) {
    let ifaces: BTreeMap<ModuleId, Interfaces> = p.modules.iter().map(|m| (m.id, Interfaces::new(p, m.id))).collect();
    let empty = Interfaces::default();
    let iface = |m: ModuleId| ifaces.get(&m).unwrap_or(&empty);
    let mut cache: BTreeMap<ModuleId, Vec<Path>> = BTreeMap::new();
    let mut paths_of = |m: ModuleId| -> Vec<Path> {
        cache
            .entry(m)
            .or_insert_with(|| {
                let f = facts(p, m);
                module_paths(p, m, &f).iter().filter_map(|mp| convert(p, iface(m), mp)).collect()
            })
            .clone()
    };
    let mut g = Graph::default();
    let columns = |p: &Program, ids: &[CollectionId]| -> Option<Vec<Vec<String>>> {
        Some(
            ids.iter()
                .map(|&c| {
                    p.collection(c).map(|c| c.columns.iter().map(|x| x.name.clone()).collect()).unwrap_or_default()
                })
                .collect(),
        )
    };
    let names = |p: &Program, ids: &[CollectionId]| -> Vec<String> {
        ids.iter().map(|&c| p.collection_name(c).to_string()).collect()
    };
    match &p.system {
        Some(s) => {
            for grp in &s.groups {
                let self_fed = s.wires.iter().any(|w| w.from.group == grp.id && w.to.group == grp.id);
                g.components.push(Component {
                    name: grp.name.clone(),
                    replicated: grp.replicated || (self_fed && grp.count > 1),
                    inputs: names(p, &iface(grp.module).inputs),
                    input_columns: columns(p, &iface(grp.module).inputs),
                    outputs: names(p, &iface(grp.module).outputs),
                    paths: paths_of(grp.module),
                    span: Some(grp.span),
                });
            }
            connect(p, s, &iface, &mut g);
        }
        None => {
            for m in &p.modules {
                let inputs = &iface(m.id).inputs;
                let c = g.components.len();
                for i in 0..inputs.len() {
                    g.edges.push(Edge { producer: Producer::External, component: c, input: i });
                }
                g.components.push(Component {
                    name: m.name.clone(),
                    replicated: false,
                    inputs: names(p, inputs),
                    input_columns: columns(p, inputs),
                    outputs: names(p, &iface(m.id).outputs),
                    paths: paths_of(m.id),
                    span: Some(m.span),
                });
            }
        }
    }
    let unmatched = apply_seal_args(&mut g, seal_args);
    (g, unmatched)
}

/// The edges of a system's component graph (its wires and feeds), its seals, and the
/// coordination its operators already hold (`order G`, `hold G.I until sealed`).
fn connect<'i>(p: &Program, s: &crate::ir::System, iface: &dyn Fn(ModuleId) -> &'i Interfaces, g: &mut Graph) {
    let index = |group: crate::ir::GroupId, c: CollectionId, kind: CollectionKind| -> Option<usize> {
        let grp = s.groups.get(group.index())?;
        iface(grp.module).position(c, kind)
    };
    for w in &s.wires {
        let (Some(output), Some(input)) = (
            index(w.from.group, w.from.collection, CollectionKind::Output),
            index(w.to.group, w.to.collection, CollectionKind::Input),
        ) else {
            continue;
        };
        g.edges.push(Edge {
            producer: Producer::Output { component: w.from.group.index(), output },
            component: w.to.group.index(),
            input,
        });
    }
    for f in &s.feeds {
        if let Some(input) = index(f.to.group, f.to.collection, CollectionKind::Input) {
            g.edges.push(Edge { producer: Producer::External, component: f.to.group.index(), input });
        }
    }
    for seal in &s.seals {
        let Some(input) = index(seal.stream.group, seal.stream.collection, CollectionKind::Input) else {
            continue;
        };
        let coll = p.collection(seal.stream.collection);
        let key =
            seal.columns.iter().filter_map(|&i| coll.and_then(|c| c.columns.get(i)).map(|c| c.name.clone())).collect();
        g.seals.push(SealDecl { component: seal.stream.group.index(), input, key });
    }
    g.ordered = s.coordination.orders.iter().map(|o| o.group.index()).collect();
    g.held = s
        .coordination
        .holds
        .iter()
        .filter(|h| h.until.is_none())
        .filter_map(|h| {
            let input = index(h.stream.group, h.stream.collection, CollectionKind::Input)?;
            Some((h.stream.group.index(), input))
        })
        .collect();
}

/// A `--seal` argument that cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealProblem {
    UnknownStream(String),
    UnknownColumn { stream: String, column: String, columns: Vec<String> },
}

/// Adds `--seal` seals, replacing a declared seal on the same stream. Returns the arguments
/// that matched no input stream, or named a column the stream does not have.
pub fn apply_seal_args(g: &mut Graph, args: &[SealArg]) -> Vec<SealProblem> {
    let mut unmatched = Vec::new();
    for a in args {
        let mut hit = false;
        for (c, comp) in g.components.iter().enumerate() {
            for (i, input) in comp.inputs.iter().enumerate() {
                if a.stream == *input || a.stream == format!("{}.{input}", comp.name) {
                    let cols = comp.input_columns.as_ref().and_then(|cols| cols.get(i));
                    if let Some(missing) = a.key.iter().find(|k| cols.is_some_and(|cols| !cols.contains(k))) {
                        unmatched.push(SealProblem::UnknownColumn {
                            stream: a.stream.clone(),
                            column: missing.clone(),
                            columns: cols.cloned().unwrap_or_default(),
                        });
                        hit = true;
                        continue;
                    }
                    hit = true;
                    g.seals.retain(|s| !(s.component == c && s.input == i));
                    g.seals.push(SealDecl { component: c, input: i, key: a.key.clone() });
                }
            }
        }
        if !hit {
            unmatched.push(SealProblem::UnknownStream(a.stream.clone()));
        }
    }
    unmatched
}
