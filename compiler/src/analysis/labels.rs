//! Stream labels (paper, Figure 8), the inference rules (Figure 9), reconciliation
//! (Figure 10), and the fixpoint that labels every stream of a component graph.
//!
//! Reading notes, decided here: a Seal passes unchanged through C paths (renamed through
//! lineage) and becomes Async after an O path it is compatible with; `protected(NDRead)`
//! asks whether every *other* input stream with a path to the same output is sealed on a
//! compatible key (with no other stream, nothing protects the read); cycles are a fixpoint
//! over the label order, from "no label" upward.

use super::model::{Edge, Gate, Graph, KeyMap, Path, Producer, SealDecl};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    Seal(Vec<String>),
    Async,
    Run,
    Inst,
    Diverge,
}

impl Label {
    pub fn severity(&self) -> u8 {
        match self {
            Label::Seal(_) => 0,
            Label::Async => 1,
            Label::Run => 2,
            Label::Inst => 3,
            Label::Diverge => 4,
        }
    }

    /// The least upper bound: the more severe label; two different seals give Async.
    pub fn join(&self, other: &Label) -> Label {
        match (self, other) {
            (Label::Seal(a), Label::Seal(b)) if a != b => Label::Async,
            _ if other.severity() > self.severity() => other.clone(),
            _ => self.clone(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Label::Seal(_) => "Seal",
            Label::Async => "Async",
            Label::Run => "Run",
            Label::Inst => "Inst",
            Label::Diverge => "Diverge",
        }
    }

    pub fn key(&self) -> &[String] {
        match self {
            Label::Seal(k) => k,
            _ => &[],
        }
    }

    pub fn deterministic(&self) -> bool {
        self.severity() <= 1
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Seal(k) => write!(f, "Seal{{{}}}", k.join(", ")),
            other => f.write_str(other.name()),
        }
    }
}

/// `compatible(gate, seal)` for a seal on input `input`: every seal column is copied into some
/// attribute of every gate (identity is the injective function; `*` is compatible with nothing).
pub fn compatible(gates: &[Gate], key: &[String], input: usize) -> bool {
    !gates.is_empty()
        && !key.is_empty()
        && gates.iter().all(|g| key.iter().all(|k| g.iter().any(|a| a.inputs.contains(&(input, k.clone())))))
}

/// One derivation step for an output: a path's input label, its annotation, the rule
/// applied and what it added to the output's labels.
#[derive(Debug, Clone)]
pub struct Step {
    pub input: String,
    pub input_label: Label,
    pub path: String,
    pub rule: &'static str,
    pub added: Vec<String>,
}

/// What the analysis concluded for one output stream.
#[derive(Debug, Clone)]
pub struct OutputResult {
    pub component: usize,
    pub output: usize,
    pub label: Label,
    pub steps: Vec<Step>,
    /// Reconciliation, in words: which rule of Figure 10 fired and why.
    pub reconcile: Vec<String>,
    /// Hazards that begin at this component: (path index, why).
    pub hazards: Vec<(usize, String)>,
    /// Seals this output relies on: (path index, input, key).
    pub seals_used: Vec<(usize, usize, Vec<String>)>,
    /// Reads protected by another input's seal whose key the read carries: (read input,
    /// sealed input, (seal column, read column) per seal column). Holding each read fact
    /// until its key's partition is sealed makes the read's answer complete.
    pub read_holds: Vec<ReadHoldAt>,
}

/// (read input, sealed input, (seal column, read column) per seal column).
pub type ReadHoldAt = (usize, usize, Vec<(String, String)>);

pub struct Labels {
    pub outputs: Vec<OutputResult>,
    /// Label of each input stream (component, input) after joining producers and seals.
    pub inputs: BTreeMap<(usize, usize), Label>,
}

fn map_seal(path: &Path, key: &[String]) -> Option<Vec<String>> {
    match &path.key_map {
        KeyMap::ByName => Some(key.to_vec()),
        KeyMap::Lineage(cols) => {
            let mut out = Vec::new();
            for k in key {
                let col = cols.iter().find(|(_, srcs)| srcs.contains(&(path.from, k.clone())))?;
                out.push(col.0.clone());
            }
            Some(out)
        }
    }
}

/// Component indices in dataflow order (producers first; members of a cycle together), so
/// one sweep labels an acyclic graph and cycles take a few more sweeps.
fn order(g: &Graph) -> Vec<usize> {
    let mut dg: petgraph::graph::DiGraph<usize, ()> = petgraph::graph::DiGraph::new();
    let nodes: Vec<_> = (0..g.components.len()).map(|c| dg.add_node(c)).collect();
    for e in &g.edges {
        if let (Producer::Output { component, .. }, Some(&to)) = (&e.producer, nodes.get(e.component)) {
            if let Some(&from) = nodes.get(*component) {
                dg.add_edge(from, to, ());
            }
        }
    }
    // Kosaraju yields components in reverse topological order. (Not Tarjan: petgraph's
    // Tarjan recurses once per node of a path, so a long enough chain overflows the stack.)
    let mut sccs = petgraph::algo::kosaraju_scc(&dg);
    sccs.reverse();
    sccs.into_iter().flatten().filter_map(|n| dg.node_weight(n).copied()).collect()
}

/// Labels every stream of the graph: sweeps in dataflow order until nothing changes. Labels
/// only rise (each new label is joined with the previous one), so cycles converge.
pub fn label(g: &Graph) -> Labels {
    let order = order(g);
    let mut edges: Vec<Vec<&Edge>> = vec![Vec::new(); g.components.len()];
    for e in &g.edges {
        if let Some(v) = edges.get_mut(e.component) {
            v.push(e);
        }
    }
    let mut seals: Vec<Vec<&SealDecl>> = vec![Vec::new(); g.components.len()];
    for s in &g.seals {
        if let Some(v) = seals.get_mut(s.component) {
            v.push(s);
        }
    }
    // Each output's paths, found once: a component of 10,000 outputs and as many paths
    // scanned every path per output and sweep.
    let into: Vec<Vec<Vec<usize>>> = g
        .components
        .iter()
        .map(|comp| {
            let mut v = vec![Vec::new(); comp.outputs.len()];
            for (pi, path) in comp.paths.iter().enumerate() {
                if let Some(list) = v.get_mut(path.to) {
                    list.push(pi);
                }
            }
            v
        })
        .collect();
    let mut outputs: BTreeMap<(usize, usize), Label> = BTreeMap::new();
    let mut results: BTreeMap<(usize, usize), OutputResult> = BTreeMap::new();
    let bound = g.components.iter().map(|c| c.outputs.len()).sum::<usize>() * 8 + 8;
    for _ in 0..bound {
        let mut changed = false;
        for &c in &order {
            let inputs = input_labels(
                &outputs,
                edges.get(c).map_or(&[][..], Vec::as_slice),
                seals.get(c).map_or(&[][..], Vec::as_slice),
            );
            let Some(comp) = g.components.get(c) else { continue };
            for o in 0..comp.outputs.len() {
                let paths = into.get(c).and_then(|v| v.get(o)).map_or(&[][..], Vec::as_slice);
                let Some(mut r) = output(g, (c, o), paths, &inputs) else { continue };
                let joined = outputs.get(&(c, o)).map_or(r.label.clone(), |old| old.join(&r.label));
                if outputs.get(&(c, o)) != Some(&joined) {
                    changed = true;
                    outputs.insert((c, o), joined.clone());
                }
                r.label = joined;
                results.insert((c, o), r);
            }
        }
        if !changed {
            break;
        }
    }
    let all_edges: Vec<&Edge> = g.edges.iter().collect();
    let all_seals: Vec<&SealDecl> = g.seals.iter().collect();
    let inputs = input_labels(&outputs, &all_edges, &all_seals);
    Labels { outputs: results.into_values().collect(), inputs }
}

/// The label of the input streams fed by `edges`, with `seals` applied.
fn input_labels(
    outputs: &BTreeMap<(usize, usize), Label>,
    edges: &[&Edge],
    seals: &[&SealDecl],
) -> BTreeMap<(usize, usize), Label> {
    let mut inputs: BTreeMap<(usize, usize), Label> = BTreeMap::new();
    for e in edges {
        let l = match e.producer {
            Producer::External => Some(Label::Async),
            Producer::Output { component, output } => outputs.get(&(component, output)).cloned(),
        };
        if let Some(l) = l {
            let slot = inputs.entry((e.component, e.input)).or_insert_with(|| l.clone());
            *slot = slot.join(&l);
        }
    }
    for s in seals {
        if let Some(l) = inputs.get_mut(&(s.component, s.input)) {
            // Punctuations order nothing but partitions: a seal makes a deterministic stream
            // sealed, and cannot repair one whose contents are already nondeterministic.
            if l.deterministic() {
                *l = Label::Seal(s.key.clone());
            }
        }
    }
    inputs
}

/// The label of component `c`'s output `o`, reached by `paths` (indices into its paths):
/// Figure 9's rule for each path's input label, then Figure 10's reconciliation of the
/// taints and nondeterministic reads those rules found.
fn output(
    g: &Graph,
    (c, o): (usize, usize),
    paths: &[usize],
    inputs: &BTreeMap<(usize, usize), Label>,
) -> Option<OutputResult> {
    let comp = g.components.get(c)?;
    let mut r = Reasoning {
        comp,
        c,
        paths,
        inputs,
        labels: Vec::new(),
        taint: Vec::new(),
        ndreads: Vec::new(),
        steps: Vec::new(),
        reconcile: Vec::new(),
        hazards: Vec::new(),
        seals_used: Vec::new(),
        read_holds: Vec::new(),
    };
    for (pi, path) in paths.iter().filter_map(|&pi| comp.paths.get(pi).map(|p| (pi, p))) {
        if let Some(l) = inputs.get(&(c, path.from)) {
            r.step(pi, path, l);
        }
    }
    if r.steps.is_empty() {
        return None;
    }
    if !r.taint.is_empty() {
        let l = if comp.replicated { Label::Diverge } else { Label::Run };
        let not = if comp.replicated { "" } else { "not " };
        r.reconcile.push(format!("Taint: `{}` is {not}replicated, so {l}", comp.name));
        r.labels.push(l);
    }
    for (pi, input) in std::mem::take(&mut r.ndreads) {
        if let Some(path) = comp.paths.get(pi) {
            r.read(pi, path, input);
        }
    }
    let labels = &r.labels;
    let label = labels.iter().skip(1).fold(labels.first().cloned().unwrap_or(Label::Async), |a, b| a.join(b));
    let Reasoning { steps, reconcile, hazards, seals_used, read_holds, .. } = r;
    Some(OutputResult { component: c, output: o, label, steps, reconcile, hazards, seals_used, read_holds })
}

/// What the analysis of one output has found so far.
struct Reasoning<'g> {
    comp: &'g super::model::Component,
    c: usize,
    paths: &'g [usize],
    inputs: &'g BTreeMap<(usize, usize), Label>,
    labels: Vec<Label>,
    /// Paths whose state an input can taint.
    taint: Vec<usize>,
    /// Nondeterministic reads: (path index, input).
    ndreads: Vec<(usize, usize)>,
    steps: Vec<Step>,
    reconcile: Vec<String>,
    hazards: Vec<(usize, String)>,
    seals_used: Vec<(usize, usize, Vec<String>)>,
    read_holds: Vec<ReadHoldAt>,
}

impl Reasoning<'_> {
    /// Figure 9: the rule that path `pi` applies to its input's label `l`.
    fn step(&mut self, pi: usize, path: &Path, l: &Label) {
        let comp = self.comp;
        let input = comp.inputs.get(path.from).cloned().unwrap_or_default();
        let ann = path.annotation;
        let mut added = Vec::new();
        let rule = match (l, ann.confluent()) {
            (Label::Seal(k), true) => {
                let mapped = map_seal(path, k).map_or(Label::Async, Label::Seal);
                added.push(mapped.to_string());
                self.labels.push(mapped);
                "p"
            }
            // A compatible seal keeps order-sensitive *state* per partition (no Taint, rule 4).
            // A read (OR) still races with the other inputs; reconciliation decides that.
            (Label::Seal(k), false)
                if ann.stateful()
                    && compatible(&path.gates, k, path.from)
                    && !raced(comp, self.paths, path, self.inputs, self.c) =>
            {
                self.seals_used.push((pi, path.from, k.clone()));
                added.push("Async".into());
                self.labels.push(Label::Async);
                "seal"
            }
            (Label::Seal(_) | Label::Async | Label::Run, false) => {
                let rule = if ann.stateful() {
                    self.taint.push(pi);
                    added.push("Taint".into());
                    if matches!(l, Label::Seal(_)) {
                        "4"
                    } else {
                        "2"
                    }
                } else {
                    self.ndreads.push((pi, path.from));
                    added.push(format!("NDRead{{{}}}", path.subscript().join(", ")));
                    "1"
                };
                let passed = if matches!(l, Label::Seal(_)) { Label::Async } else { l.clone() };
                added.push(passed.to_string());
                self.labels.push(passed);
                rule
            }
            (Label::Inst, _) if ann.stateful() => {
                self.taint.push(pi);
                added.push("Taint".into());
                added.push("Inst".into());
                self.labels.push(Label::Inst);
                "3"
            }
            (l, _) => {
                added.push(l.to_string());
                self.labels.push(l.clone());
                "p"
            }
        };
        if matches!(rule, "2" | "4") {
            let why = format!("{} from `{input}` ({l}) can taint the state of `{}`", path.describe(), comp.name);
            self.hazards.push((pi, why));
        }
        self.steps.push(Step { input, input_label: l.clone(), path: path.describe(), rule, added });
    }

    /// Figure 10: whether the nondeterministic read of `input` on path `pi` is protected by
    /// seals (its own input's, or every other input's, on keys compatible with its gates).
    fn read(&mut self, pi: usize, path: &Path, input: usize) {
        let (comp, c, inputs) = (self.comp, self.c, self.inputs);
        let own_compatible =
            matches!(inputs.get(&(c, input)), Some(Label::Seal(k)) if compatible(&path.gates, k, input));
        let others: Vec<(usize, Option<&Label>)> = self
            .paths
            .iter()
            .filter_map(|&i| comp.paths.get(i))
            .filter(|p| p.from != input)
            .map(|p| (p.from, inputs.get(&(c, p.from))))
            .filter(|(_, l)| l.is_some())
            .collect();
        let gate = path.subscript().join(", ");
        // With no other input to race with, the read's own input sealed compatibly means each
        // partition is read once it is complete.
        if others.is_empty() && own_compatible {
            if let Some(Label::Seal(k)) = inputs.get(&(c, input)) {
                self.seals_used.push((pi, input, k.clone()));
            }
            self.reconcile.push(format!("NDRead{{{gate}}} protected: its own input is sealed on a compatible key"));
            return;
        }
        let unsealed: Vec<String> = others
            .iter()
            .filter(|(j, l)| !matches!(l, Some(Label::Seal(k)) if compatible(&path.gates, k, *j)))
            .map(|(j, l)| {
                let name = comp.inputs.get(*j).map_or("?", String::as_str);
                format!("`{name}` ({})", l.map_or("-".into(), |l| l.to_string()))
            })
            .collect();
        // A read that also depends on how its own input's facts fall into ticks needs that
        // input sealed compatibly too.
        let own_ok = !path.own_batch || own_compatible;
        if !others.is_empty() && unsealed.is_empty() && own_ok {
            for (j, l) in &others {
                if let Some(Label::Seal(k)) = l {
                    self.seals_used.push((pi, *j, k.clone()));
                    // A read that carries the seal's key waits for its partition; one that
                    // does not, for every partition (an empty column list).
                    self.read_holds.push((input, *j, hold_columns(&path.gates, k, *j, input).unwrap_or_default()));
                }
            }
            self.reconcile.push(format!("NDRead{{{gate}}} protected: every other input is sealed on a compatible key"));
            return;
        }
        let l = if comp.replicated { Label::Inst } else { Label::Run };
        let own = comp.inputs.get(input).map_or("?", String::as_str);
        let why = if others.is_empty() {
            "no other input whose seal could protect it".to_string()
        } else if unsealed.is_empty() {
            format!(
                "it also depends on how `{own}`'s own facts fall into ticks, and `{own}` is not sealed on a key compatible with {{{gate}}}"
            )
        } else {
            format!("{}, not sealed on a key compatible with {{{gate}}}", unsealed.join(" and "))
        };
        let not = if comp.replicated { "" } else { "not " };
        self.reconcile.push(format!("NDRead{{{gate}}} unprotected: {why}; `{}` is {not}replicated, so {l}", comp.name));
        self.hazards.push((pi, format!("{} races with {why}", path.describe())));
        self.labels.push(l);
    }
}

/// Does another input race with `path` through a read charged to this path (its own path
/// `excused`), without a seal compatible with this path's gates? Then the seal on this
/// path's own input keeps its state per partition, but which state a partition's facts
/// meet still depends on when the other input's facts arrive.
fn raced(
    comp: &super::model::Component,
    paths: &[usize],
    path: &super::model::Path,
    inputs: &BTreeMap<(usize, usize), Label>,
    c: usize,
) -> bool {
    paths
        .iter()
        .filter_map(|&pj| comp.paths.get(pj))
        .filter(|q| q.from != path.from && q.excused)
        .any(|q| !matches!(inputs.get(&(c, q.from)), Some(Label::Seal(k)) if compatible(&path.gates, k, q.from)))
}

/// For a read of input `read` protected by input `sealed`'s seal on `key`: the read's column
/// that carries each seal column (a gate attribute closed for the seal column and joined to
/// the read's column), or `None` when some seal column has no such column in the read.
fn hold_columns(gates: &[Gate], key: &[String], sealed: usize, read: usize) -> Option<Vec<(String, String)>> {
    key.iter()
        .map(|k| {
            gates
                .iter()
                .flatten()
                .filter(|a| a.inputs.contains(&(sealed, k.clone())))
                .find_map(|a| a.joined.iter().find(|(i, _)| *i == read).map(|(_, c)| (k.clone(), c.clone())))
        })
        .collect()
}
