//! The rewriter: an IR-to-IR pass that makes a run's coordination explicit. From the
//! analysis's choices (`auto`) or a forced strategy (`seal`, `order`), it inserts the
//! operators of `ir::Coordination` into the system: `order G` at a replicated group,
//! `hold G.I until sealed on (k)` at a sealed input with a `punctuate` on every wire into it,
//! and the read holds a seal protects (`hold G.R until G.S sealed`, also where `G.S` is a
//! fed input sealed by its feed). `none` inserts nothing. The seals given with `--seal`
//! become declarations (`with_seals`). The runtime applies only these operators and
//! declarations (what the program says, plus what this pass inserted), and `text.rs` prints
//! the rewritten program as source (`bloomc rewrite`).

pub mod text;

use crate::analysis::coordination::Strategy as Chosen;
use crate::analysis::report::Analysis;
use crate::ir::{Coordination, Endpoint, GroupId, Hold, Order, Program, Punctuate, Seal, System};
use bloomc_grammar::span::Span;

/// What `--coordination` asks the rewriter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// What the analysis chose, per component.
    Auto,
    /// Nothing inserted: the program runs as written.
    None,
    /// Every seal enforced (declared, or given with `--seal`).
    Seal,
    /// Every replicated group sequenced.
    Order,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::None => "none",
            Strategy::Seal => "seal",
            Strategy::Order => "order",
        }
    }
}

/// Whether the program's system runs as a network (more than one node instance): the only
/// programs with coordination between nodes.
pub fn is_network(p: &Program) -> bool {
    p.system.as_ref().is_some_and(|s| s.groups.len() > 1 || s.groups.iter().any(|g| g.count > 1))
}

/// The operators `strategy` inserts into `p` (none already in it). Errors say why a forced
/// strategy has nothing to apply.
pub fn operators(p: &Program, analysis: Option<&Analysis>, strategy: Strategy) -> Result<Coordination, String> {
    let mut out = Coordination::default();
    let s = match &p.system {
        Some(s) if is_network(p) => s,
        _ => {
            return match strategy {
                Strategy::Seal | Strategy::Order => {
                    Err("`--coordination` applies to networks (several nodes); this program runs on one node"
                        .to_string())
                }
                _ => Ok(out),
            }
        }
    };
    match strategy {
        Strategy::None => {}
        Strategy::Order => {
            let replicated: Vec<GroupId> = s.groups.iter().filter(|g| g.replicated).map(|g| g.id).collect();
            if replicated.is_empty() {
                return Err("`--coordination order` sequences replicated groups, and this system has none".to_string());
            }
            out.orders = replicated.into_iter().map(|group| Order { group, span: Span::default() }).collect();
        }
        Strategy::Seal => {
            let seals = seals(p, s, analysis);
            if seals.is_empty() {
                return Err("`--coordination seal`: the system declares no seal".to_string());
            }
            for (end, cols) in seals {
                seal(s, &mut out, end, cols);
            }
        }
        Strategy::Auto => auto(p, s, analysis, &mut out),
    }
    let have = &s.coordination;
    out.orders.retain(|o| !have.orders.iter().any(|x| x.group == o.group));
    out.holds.retain(|h| !have.holds.iter().any(|x| x.stream == h.stream && x.until == h.until));
    out.punctuations.retain(|pu| !have.punctuations.iter().any(|x| x.from == pu.from && x.to == pu.to));
    Ok(out)
}

/// `p` with the operators of `strategy` inserted and the `--seal` seals declared: the
/// program a run executes.
pub fn rewrite(p: &Program, analysis: Option<&Analysis>, strategy: Strategy) -> Result<Program, String> {
    Ok(apply(&with_seals(p, analysis), operators(p, analysis, strategy)?))
}

/// `p` with the seals of the run declared: those the analysis used, where `--seal` replaces
/// a declared seal of the same stream. A program without an analysis keeps its own.
pub fn with_seals(p: &Program, analysis: Option<&Analysis>) -> Program {
    let mut out = p.clone();
    let (Some(s), Some(_)) = (&mut out.system, analysis) else { return out };
    let declared = std::mem::take(&mut s.seals);
    let seals = seals(p, s, analysis);
    s.seals = seals
        .into_iter()
        .map(|(stream, columns)| {
            let span = declared
                .iter()
                .find(|d| d.stream == stream && d.columns == columns)
                .map_or_else(Span::default, |d| d.span);
            Seal { stream, columns, span }
        })
        .collect();
    out
}

/// `p` with `ops` (from `operators`) inserted.
pub fn apply(p: &Program, ops: Coordination) -> Program {
    let mut out = p.clone();
    if let Some(s) = &mut out.system {
        s.coordination.orders.extend(ops.orders);
        s.coordination.holds.extend(ops.holds);
        s.coordination.punctuations.extend(ops.punctuations);
    }
    out
}

/// The seals of the run: declared, with `--seal` replacing a declared seal of the same
/// stream (the analysis's seals, when there is an analysis).
fn seals(p: &Program, s: &System, analysis: Option<&Analysis>) -> Vec<(Endpoint, Vec<usize>)> {
    let Some(a) = analysis else {
        return s.seals.iter().map(|x| (x.stream, x.columns.clone())).collect();
    };
    a.graph
        .seals
        .iter()
        .filter_map(|d| {
            let comp = a.graph.components.get(d.component)?;
            let end = input(p, s, &comp.name, comp.inputs.get(d.input)?)?;
            Some((end, columns(p, end, d.key.iter())?))
        })
        .collect()
}

/// A hold on `end` per `cols` and a punctuation on every wire into it (a fed input, which
/// no wire reaches, is sealed by its feed instead: see `fed_seal`).
fn seal(s: &System, out: &mut Coordination, end: Endpoint, cols: Vec<usize>) {
    let into: Vec<&crate::ir::Wire> = s.wires.iter().filter(|w| w.to == end).collect();
    if into.is_empty() || out.holds.iter().any(|h| h.stream == end && h.until.is_none()) {
        return;
    }
    for w in into {
        out.punctuations.push(Punctuate { from: w.from, to: end, columns: cols.clone(), span: Span::default() });
    }
    out.holds.push(Hold { stream: end, columns: cols, until: None, span: Span::default() });
}

/// What the analysis chose, per component: a seal at a group holds each of its wired inputs
/// whose seal the choice relies on, and each read the choice protects (per key when the
/// read carries the seal's key, else until every partition is sealed); an order at a
/// replicated group sequences it (a group of one instance already takes its deliveries one
/// at a time, in arrival order).
fn auto(p: &Program, s: &System, analysis: Option<&Analysis>, out: &mut Coordination) {
    let seals = seals(p, s, analysis);
    for choice in analysis.map(|a| a.choices.as_slice()).unwrap_or_default() {
        let Some(g) = s.groups.iter().find(|g| g.name == choice.component) else { continue };
        match choice.strategy {
            Chosen::Seal => {
                for end in choice.sealed.iter().filter_map(|n| input(p, s, &g.name, n)) {
                    if let Some(cols) = columns(p, end, choice.key.iter()) {
                        seal(s, out, end, cols);
                    }
                }
                for (read, sealed, pairs) in &choice.holds {
                    let (Some(read), Some(sealed)) = (input(p, s, &g.name, read), input(p, s, &g.name, sealed)) else {
                        continue;
                    };
                    if let Some(seal_cols) = fed_seal(s, &seals, sealed) {
                        push(out, fed_read(p, read, sealed, seal_cols, pairs));
                        continue;
                    }
                    if !out.holds.iter().any(|h| h.stream == sealed && h.until.is_none()) {
                        continue;
                    }
                    // The read's columns in the order of the seal's key columns; no pairs:
                    // the read waits for the whole sealed input.
                    let ordered: Option<Vec<&String>> =
                        choice.key.iter().map(|k| pairs.iter().find(|(sk, _)| sk == k).map(|(_, rc)| rc)).collect();
                    let cols = match ordered {
                        _ if pairs.is_empty() => Some(Vec::new()),
                        Some(ordered) => columns(p, read, ordered.into_iter()),
                        None => None,
                    };
                    if let Some(columns) = cols {
                        push(out, Hold { stream: read, columns, until: Some(sealed), span: Span::default() });
                    }
                }
            }
            Chosen::Order if g.replicated => {
                if !out.orders.iter().any(|o| o.group == g.id) {
                    out.orders.push(Order { group: g.id, span: Span::default() });
                }
            }
            Chosen::Order => {}
        }
    }
}

/// Adds hold `h` unless one of the same read and sealed input is there.
fn push(out: &mut Coordination, h: Hold) {
    if !out.holds.iter().any(|x| x.stream == h.stream && x.until == h.until) {
        out.holds.push(h);
    }
}

/// The seal columns of `end` if it is a fed input with a seal (of `seals`) that no wire
/// reaches: its feed delivers each key's facts together, so a read can wait for its key.
fn fed_seal<'a>(s: &System, seals: &'a [(Endpoint, Vec<usize>)], end: Endpoint) -> Option<&'a [usize]> {
    let fed = s.feeds.iter().any(|f| f.to == end) && !s.wires.iter().any(|w| w.to == end);
    let (_, cols) = seals.iter().find(|(e, _)| *e == end).filter(|_| fed)?;
    Some(cols.as_slice())
}

/// The hold of `read` until fed input `sealed` (sealed on `seal_cols`) is complete: keyed
/// by the read's column for each seal column, in the seal's order, when the choice pairs
/// every one (`pairs`: seal column, read column); else the read waits for the whole input.
fn fed_read(p: &Program, read: Endpoint, sealed: Endpoint, seal_cols: &[usize], pairs: &[(String, String)]) -> Hold {
    let name = |c: &usize| p.collection(sealed.collection).and_then(|x| x.columns.get(*c)).map(|x| x.name.clone());
    let cols: Option<Vec<usize>> = seal_cols
        .iter()
        .map(|c| {
            let n = name(c)?;
            let (_, rc) = pairs.iter().find(|(sk, _)| *sk == n)?;
            p.collection(read.collection)?.column_index(rc)
        })
        .collect();
    let columns = cols.filter(|_| !pairs.is_empty()).unwrap_or_default();
    Hold { stream: read, columns, until: Some(sealed), span: Span::default() }
}

/// Input `name` of group `group`.
fn input(p: &Program, s: &System, group: &str, name: &str) -> Option<Endpoint> {
    let g = s.groups.iter().find(|g| g.name == group)?;
    let c = p.module(g.module)?.collections.iter().copied().find(|&c| p.collection_name(c) == name)?;
    Some(Endpoint { group: g.id, collection: c })
}

/// The positions of columns `names` of `end`'s collection (none if one is missing, or no
/// names).
fn columns<'a>(p: &Program, end: Endpoint, names: impl Iterator<Item = &'a String>) -> Option<Vec<usize>> {
    let coll = p.collection(end.collection)?;
    names.map(|k| coll.column_index(k)).collect::<Option<Vec<usize>>>().filter(|c| !c.is_empty())
}
