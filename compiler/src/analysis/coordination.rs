//! Coordination choice: for every hazard, the cheapest fix, with the reason.
//!
//! Where a declared (or `--seal`) seal is compatible with a non-confluent path, the consumer
//! needs a seal operator: it holds each partition until every producer has sealed it.
//! Where a hazard begins and no compatible seal exists, deliveries to that component must be
//! ordered. Hazards that only propagate (an Inst input tainting downstream state) are fixed
//! where they begin, so no choice is made for them.

use super::labels::Labels;
use super::model::Graph;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    Seal,
    Order,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Seal => "seal",
            Strategy::Order => "order",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Choice {
    pub component: String,
    pub strategy: Strategy,
    pub key: Vec<String>,
    pub reason: String,
    /// For `order`: seals that would make a seal strategy possible, as (stream, key).
    pub would_seal: Vec<(String, Vec<String>)>,
    /// For `seal`: the inputs whose seals are relied on (held per key by the component).
    pub sealed: Vec<String>,
    /// For `seal`: reads to hold until their key's partition is sealed.
    pub holds: Vec<HeldRead>,
    /// The program already has this coordination as explicit operators (`order G;`, or a
    /// `hold .. until sealed` on every sealed input): a rewritten program.
    pub present: bool,
}

/// A read to hold: (read input, sealed input, (seal column, read column) per seal column).
/// With no pairs the read does not carry the seal's key, and waits until every partition
/// of the sealed input is sealed.
pub type HeldRead = (String, String, Vec<(String, String)>);

pub fn choose(g: &Graph, labels: &Labels) -> Vec<Choice> {
    let mut out: Vec<Choice> = Vec::new();
    for r in &labels.outputs {
        let Some(comp) = g.components.get(r.component) else { continue };
        for (pi, input, key) in &r.seals_used {
            let Some(path) = comp.paths.get(*pi) else { continue };
            let stream = comp.inputs.get(*input).cloned().unwrap_or_default();
            let reason = format!(
                "`{stream}` is sealed on ({}), compatible with gate {{{}}} of {} `{}` -> `{}`",
                key.join(", "),
                path.subscript().join(", "),
                path.annotation.as_str(),
                comp.inputs.get(path.from).map_or("?", String::as_str),
                comp.outputs.get(path.to).map_or("?", String::as_str),
            );
            push(
                &mut out,
                Choice {
                    component: comp.name.clone(),
                    strategy: Strategy::Seal,
                    key: key.clone(),
                    reason,
                    would_seal: Vec::new(),
                    sealed: vec![stream.clone()],
                    present: g.held.contains(&(r.component, *input)),
                    holds: r
                        .read_holds
                        .iter()
                        .filter(|(_, j, _)| j == input)
                        .map(|(read, j, cols)| {
                            let name = |i: &usize| comp.inputs.get(*i).cloned().unwrap_or_default();
                            (name(read), name(j), cols.clone())
                        })
                        .collect(),
                },
            );
        }
        for (pi, why) in &r.hazards {
            let Some(path) = comp.paths.get(*pi) else { continue };
            // Which streams, sealed on which of their gate columns, would allow a seal instead.
            let others: Vec<usize> =
                comp.paths.iter().filter(|p| p.to == path.to && p.from != path.from).map(|p| p.from).collect();
            // State is protected by sealing its own input; a read by sealing the streams it
            // races with, or its own input when there are none.
            let streams: Vec<usize> =
                if path.annotation.stateful() || others.is_empty() { vec![path.from] } else { others };
            let mut would = Vec::new();
            for j in streams {
                let mut key = BTreeSet::new();
                for gate in &path.gates {
                    for a in gate {
                        key.extend(a.inputs.iter().filter(|(i, _)| *i == j).map(|(_, n)| n.clone()));
                    }
                }
                // One column suffices when it is in every gate; prefer those.
                let in_all: Vec<String> = key
                    .iter()
                    .filter(|k| path.gates.iter().all(|g| g.iter().any(|a| a.inputs.contains(&(j, (*k).clone())))))
                    .cloned()
                    .collect();
                if let (Some(stream), false) = (comp.inputs.get(j), in_all.is_empty()) {
                    for k in in_all {
                        would.push((stream.clone(), vec![k]));
                    }
                }
            }
            push(
                &mut out,
                Choice {
                    component: comp.name.clone(),
                    strategy: Strategy::Order,
                    key: Vec::new(),
                    reason: why.clone(),
                    would_seal: would,
                    sealed: Vec::new(),
                    holds: Vec::new(),
                    present: g.ordered.contains(&r.component),
                },
            );
        }
    }
    out.sort();
    out
}

fn push(out: &mut Vec<Choice>, c: Choice) {
    match out.iter_mut().find(|x| x.component == c.component && x.strategy == c.strategy && x.key == c.key) {
        Some(x) => {
            if !x.reason.contains(&c.reason) {
                x.reason = format!("{}; {}", x.reason, c.reason);
            }
            for w in c.would_seal {
                if !x.would_seal.contains(&w) {
                    x.would_seal.push(w);
                }
            }
            x.present &= c.present;
            for s in c.sealed {
                if !x.sealed.contains(&s) {
                    x.sealed.push(s);
                }
            }
            for h in c.holds {
                if !x.holds.contains(&h) {
                    x.holds.push(h);
                }
            }
        }
        None => out.push(c),
    }
}
