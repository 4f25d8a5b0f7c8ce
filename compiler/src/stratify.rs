//! Exact stratification of each module's `<=` rules.
//!
//! The dependency graph has one node per collection and one edge per (body collection,
//! target) pair of every `<=` rule. An edge is nonmonotone when the body collection is
//! negated (`notin`) or the rule aggregates. Any nonmonotone edge inside a strongly connected
//! component makes the module unstratifiable, whatever the order of its rules; the
//! diagnostic prints one cycle through that edge with every edge labelled. Otherwise strata
//! are numbered over the components (in petgraph's reverse topological order) so each nonmonotone read comes
//! from a lower stratum.

use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{CollectionId, Program, RuleId};
use bloomc_grammar::ast::MergeOp;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy)]
struct Dep {
    rule: RuleId,
    nonmonotone: bool,
    /// `notin` (true) or aggregation (false), for the edge label.
    negation: bool,
}

/// Assigns `Collection::stratum` for every module and reports unstratifiable cycles.
pub fn stratify(program: &mut Program) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let modules: Vec<(Vec<CollectionId>, Vec<RuleId>)> =
        program.modules.iter().map(|m| (m.collections.clone(), m.rules.clone())).collect();
    for (collections, rules) in modules {
        let mut graph: DiGraph<CollectionId, Dep> = DiGraph::new();
        let mut node: HashMap<CollectionId, NodeIndex> = HashMap::new();
        for &c in &collections {
            node.insert(c, graph.add_node(c));
        }
        for &r in &rules {
            let Some(rule) = program.rule(r) else {
                continue;
            };
            if rule.op != MergeOp::Instant {
                continue;
            }
            let Some(&to) = node.get(&rule.target) else {
                continue;
            };
            let agg = rule.body.aggregates();
            for atom in &rule.body.atoms {
                if let Some(&from) = node.get(&atom.collection) {
                    graph.add_edge(from, to, Dep { rule: r, nonmonotone: agg, negation: false });
                }
            }
            for anti in &rule.body.antijoins {
                if let Some(&from) = node.get(&anti.collection) {
                    graph.add_edge(from, to, Dep { rule: r, nonmonotone: true, negation: true });
                }
            }
        }
        // Kosaraju, not Tarjan: petgraph's Tarjan recurses once per node of a path, so a
        // chain of 300,000 rules overflowed the stack; Kosaraju's searches are iterative.
        let sccs = petgraph::algo::kosaraju_scc(&graph);
        let mut component = vec![0usize; graph.node_count()];
        for (i, scc) in sccs.iter().enumerate() {
            for n in scc {
                if let Some(slot) = component.get_mut(n.index()) {
                    *slot = i;
                }
            }
        }
        let comp = |n: NodeIndex| component.get(n.index()).copied().unwrap_or(usize::MAX);
        let mut bad_components = Vec::new();
        for e in graph.edge_references() {
            if e.weight().nonmonotone
                && comp(e.source()) == comp(e.target())
                && !bad_components.contains(&comp(e.source()))
            {
                bad_components.push(comp(e.source()));
                diags.push(cycle_diagnostic(program, &graph, e.id(), &comp));
            }
        }
        if !bad_components.is_empty() {
            continue;
        }
        // Strata: longest path over the components, counting nonmonotone edges. Kosaraju
        // yields them sinks first, so walking them backwards visits every component after
        // each one that feeds it. (petgraph's `condensation` would do the same, but it
        // deduplicates edges with `update_edge`, a scan of the source's edges per edge: a
        // collection read by 50,000 rules took seconds.)
        let mut stratum = vec![0u32; sccs.len()];
        for (i, scc) in sccs.iter().enumerate().rev() {
            let here = stratum.get(i).copied().unwrap_or(0);
            for &n in scc {
                for e in graph.edges(n) {
                    let j = comp(e.target());
                    if j != i {
                        if let Some(s) = stratum.get_mut(j) {
                            *s = (*s).max(here + u32::from(e.weight().nonmonotone));
                        }
                    }
                }
                if let Some(coll) = graph.node_weight(n).and_then(|c| program.collections.get_mut(c.index())) {
                    coll.stratum = here;
                }
            }
        }
    }
    diags
}

/// Builds the diagnostic for a nonmonotone edge inside a cycle: the shortest path from the
/// edge's target back to its source closes the cycle.
fn cycle_diagnostic(
    program: &Program,
    graph: &DiGraph<CollectionId, Dep>,
    bad: petgraph::graph::EdgeIndex,
    comp: &dyn Fn(NodeIndex) -> usize,
) -> Diagnostic {
    let (from, to) = graph.edge_endpoints(bad).unwrap_or((NodeIndex::new(0), NodeIndex::new(0)));
    // Breadth-first search from `to` to `from`, staying inside the component.
    let mut prev: HashMap<NodeIndex, petgraph::graph::EdgeIndex> = HashMap::new();
    let mut queue = VecDeque::from([to]);
    while let Some(n) = queue.pop_front() {
        if n == from {
            break;
        }
        for e in graph.edges(n) {
            let t = e.target();
            if comp(t) == comp(to) && t != to && !prev.contains_key(&t) {
                prev.insert(t, e.id());
                queue.push_back(t);
            }
        }
    }
    let mut path = vec![bad];
    let mut at = from;
    while at != to {
        let Some(&e) = prev.get(&at) else { break };
        path.push(e);
        at = graph.edge_endpoints(e).map_or(to, |(s, _)| s);
    }
    // `path` runs backwards from the bad edge; print it forwards starting at the bad edge.
    let mut edges: Vec<petgraph::graph::EdgeIndex> = path.split_off(1);
    edges.reverse();
    let mut cycle = vec![bad];
    cycle.extend(edges);

    let name = |n: NodeIndex| graph.node_weight(n).map_or("?", |c| program.collection_name(*c)).to_string();
    let bad_dep = graph.edge_weight(bad).copied();
    let bad_rule = bad_dep.and_then(|d| program.rule(d.rule));
    let span = bad_rule.map_or(program.system.as_ref().map(|s| s.span).unwrap_or_default(), |r| r.span);
    let how = |d: &Dep| {
        if !d.nonmonotone {
            "reads"
        } else if d.negation {
            "negates (notin)"
        } else {
            "aggregates"
        }
    };
    let mut d = Diagnostic::new(
        Code::Unstratifiable,
        format!("`{}` depends nonmonotonically on itself through `<=`: the module cannot be stratified", name(to)),
        span,
        bad_dep.map_or(String::new(), |dep| format!("`{}` {} `{}` here", name(to), how(&dep), name(from))),
    );
    let mut lines = Vec::new();
    for (i, &e) in cycle.iter().enumerate() {
        let (Some(dep), Some((s, t))) = (graph.edge_weight(e), graph.edge_endpoints(e)) else {
            continue;
        };
        let line = program.rule(dep.rule).map(|r| r.span);
        lines.push(format!("{} <= {}  ({})", name(t), name(s), how(dep)));
        if i > 0 {
            if let Some(span) = line {
                d = d.with_label(span, format!("`{}` {} `{}`", name(t), how(dep), name(s)));
            }
        }
    }
    d.with_note(format!("cycle: {}", lines.join(", then ")))
        .with_help("break the cycle with a deferred merge (`<+`), or compute the negated or aggregated collection from inputs outside the cycle")
}
