//! The plan in words, for `bloomc dump plan`: a node's feeds, wires, inputs and tables, and
//! per rule the dataflow operators it becomes. Every decision it prints is read from the
//! execution paths (`paths.rs`) and the plan (`plan.rs`); it decides nothing itself.

use crate::coordination::{operators, Operators, ReadHold};
use crate::feed::Source;
use crate::paths::{copies, paths, Paths};
use crate::plan::NodePlan;
use crate::rules::join_on;
use crate::seal::Punctuations;
use crate::value::Row;
use bloomc_compiler::aggregates::AGGREGATES;
use bloomc_compiler::ir::{Delivery, Endpoint, Program, Rule, RuleId};
use bloomc_grammar::ast::CollectionKind;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The plan in words, for `bloomc dump plan`: per rule, its phase and the dataflow operators
/// it becomes, in the order the dataflow builds them.
pub fn describe(p: &Program, plan: &NodePlan) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "node {} (module {})", plan.node_name, p.module(plan.module).map_or("?", |m| m.name.as_str()));
    feeds(&mut out, p, plan);
    wires(&mut out, p, plan);
    let paths = paths(p, plan);
    collections(&mut out, p, plan, &paths);
    Rules::new(p, plan, &paths).write(&mut out);
    let _ = writeln!(
        out,
        "  aggregates over tables that only grow (no `<-`) with {} fold; other counts use the count path; the rest reduce",
        folding_aggregates()
    );
    out
}

/// The aggregates that fold, from the table of aggregate facts: `count/sum(int)/min/max`.
fn folding_aggregates() -> String {
    let names: Vec<String> = AGGREGATES
        .iter()
        .filter(|f| f.accumulator.is_some())
        .map(|f| if f.folds_only_ints { format!("{}(int)", f.name) } else { f.name.to_string() })
        .collect();
    names.join("/")
}

/// The node's feeds, and which of them are sealed.
fn feeds(out: &mut String, p: &Program, plan: &NodePlan) {
    for f in &plan.feeds {
        let what = match &f.source {
            Source::Generate { rows, batch, seed, rate, .. } => {
                let rate = rate.map(|r| format!(", at most {r} rows/s")).unwrap_or_default();
                format!("generator: {rows} rows, {batch} per tick, seed {seed}{rate}")
            }
            Source::Rows { rows, batch } => format!("file: {} rows, {batch} per tick", rows.len()),
            Source::Columns { columns, batch } => format!("file: {} rows, {batch} per tick", columns.len()),
        };
        let _ = writeln!(out, "  feed {} <- {what}", p.collection_name(f.input));
    }
    for (input, cols) in &plan.sealed_feeds {
        let names: Vec<&str> = p
            .collection(*input)
            .map(|c| cols.iter().filter_map(|&i| c.columns.get(i).map(|x| x.name.as_str())).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  feed {} sealed on ({}): each key's rows are delivered together, in the tick of its last row",
            p.collection_name(*input),
            names.join(", ")
        );
    }
}

/// The wires leaving the node: through the transport in a network, loopback on one node.
fn wires(out: &mut String, p: &Program, plan: &NodePlan) {
    if plan.loopback.is_empty() {
        for w in p.system.iter().flat_map(|s| s.wires.iter()).filter(|w| Some(w.from.group) == plan.group) {
            let to = p
                .system
                .iter()
                .flat_map(|s| s.groups.iter())
                .find(|g| g.id == w.to.group)
                .map_or("?", |g| g.name.as_str());
            let how = match &w.delivery {
                Delivery::Broadcast => "broadcast".to_string(),
                Delivery::Partition(cols) => format!("partition on columns {cols:?}"),
                Delivery::Any => "any one instance".to_string(),
                Delivery::Reply(c) => format!("reply to the instance in column {c}"),
            };
            let _ = writeln!(
                out,
                "  wire {} -> {to}.{} ({how}; the receiver's next tick)",
                p.collection_name(w.from.collection),
                p.collection_name(w.to.collection)
            );
        }
    }
    for (o, i) in &plan.loopback {
        let _ = writeln!(out, "  loopback {} -> {} (next tick)", p.collection_name(*o), p.collection_name(*i));
    }
}

/// How each input (its key, and whether the driver folds it) and each table is computed.
fn collections(out: &mut String, p: &Program, plan: &NodePlan, paths: &Paths) {
    for c in plan.collections(p, CollectionKind::Input) {
        if let Some(x) = p.collection(c).filter(|x| x.key.is_some()) {
            let key: Vec<&str> =
                x.key.iter().flatten().filter_map(|&i| x.columns.get(i)).map(|col| col.name.as_str()).collect();
            let _ = writeln!(
                out,
                "  input {}: key ({}): a fact whose key an earlier fact had is rejected",
                x.name,
                key.join(", ")
            );
        }
        let name = p.collection_name(c);
        if paths.column_folded.contains(&c) {
            let _ = writeln!(
                out,
                "  input {name}: insert-only, read only by folds; on one worker the driver checks and folds its facts a column at a time (column fold), before the dataflow",
            );
        } else if paths.prefolded_inputs.contains(&c) {
            let _ = writeln!(
                out,
                "  input {name}: insert-only, read only by folds; on one worker the driver folds its facts before the dataflow",
            );
        } else if paths.insert_only_inputs.contains(&c) {
            let _ = writeln!(out, "  input {name}: insert-only (read only into accumulating tables)");
        }
    }
    for c in plan.collections(p, CollectionKind::Table) {
        let how = if paths.fold_only.contains(&c) && paths.unique.contains(&c) {
            "accumulates its inputs' facts; only folds read it; no row repeats (keyed input), so no set is kept"
        } else if paths.fold_only.contains(&c) {
            "accumulates its inputs' facts; only folds read it (deduplicated there, no set built)"
        } else if paths.accumulating.contains(&c) {
            "accumulates its inputs' facts (insert-only: no feedback loop)"
        } else {
            "fed from tick to tick: (T \\ deleted) ∪ inserted"
        };
        let _ = writeln!(out, "  table {}: {how}", p.collection_name(c));
    }
}

/// Where a join's right side is arranged: the scope, the collection and the key columns.
type Arrangement = (Option<usize>, Option<bloomc_compiler::ir::CollectionId>, Vec<usize>);

/// The node's rules by phase, and how many joins read each arrangement (joins share the
/// arrangement of their right side per scope, collection and key columns: `dataflow::Shared`).
struct Rules<'a> {
    p: &'a Program,
    paths: &'a Paths,
    phases: [(&'static str, Vec<RuleId>); 4],
    readers: BTreeMap<Arrangement, usize>,
}

impl<'a> Rules<'a> {
    fn new(p: &'a Program, plan: &NodePlan, paths: &'a Paths) -> Rules<'a> {
        let phases = [
            ("<=", plan.strata.iter().flatten().copied().collect()),
            ("<+", plan.deferred.clone()),
            ("<-", plan.deletes.clone()),
            ("<~", plan.sends.clone()),
        ];
        let mut rules = Rules { p, paths, phases, readers: BTreeMap::new() };
        let mut readers = BTreeMap::new();
        for (phase, ids) in &rules.phases {
            for rule in ids.iter().filter_map(|r| p.rule(*r)) {
                for i in 1..rule.body.atoms.len() {
                    *readers.entry(rules.arrangement(phase, rule, i)).or_default() += 1;
                }
            }
        }
        rules.readers = readers;
        rules
    }

    fn arrangement(&self, phase: &str, rule: &Rule, i: usize) -> Arrangement {
        let cols: Vec<usize> = join_on(&rule.body, i).into_iter().map(|(_, _, c)| c).collect();
        (self.paths.scope_of(rule, phase == "<="), rule.body.atoms.get(i).map(|a| a.collection), cols)
    }

    fn write(&self, out: &mut String) {
        for (phase, ids) in &self.phases {
            for rule in ids.iter().filter_map(|r| self.p.rule(*r)) {
                let mut ops = self.joins(phase, rule);
                ops.extend(self.operators(rule));
                ops.push(self.end(phase, rule));
                let target = self.p.collection_name(rule.target);
                let _ = writeln!(out, "  r{} {target} {phase}: {}", rule.id.0, ops.join(" -> "));
            }
        }
    }

    /// The scan of the first atom and the join with each later one.
    fn joins(&self, phase: &str, rule: &Rule) -> Vec<String> {
        let (p, b) = (self.p, &rule.body);
        let names: Vec<&str> = b.atoms.iter().map(|a| p.collection_name(a.collection)).collect();
        let mut ops: Vec<String> = names.first().map(|first| format!("scan {first}")).into_iter().collect();
        for (i, n) in names.iter().enumerate().skip(1) {
            let key = self.arrangement(phase, rule, i);
            let shared = match self.readers.get(&key).copied().unwrap_or(0) {
                0 | 1 => String::new(),
                k => format!(", shared by {k} joins"),
            };
            let column = |c: &usize| {
                b.atoms
                    .get(i)
                    .and_then(|a| p.collection(a.collection))
                    .and_then(|x| x.columns.get(*c))
                    .map_or("?", |c| c.name.as_str())
            };
            let cols: Vec<&str> = key.2.iter().map(column).collect();
            ops.push(if cols.is_empty() {
                format!("cross {n} (arranged{shared})")
            } else {
                format!("join {n} on ({}) (arranged by key{shared})", cols.join(", "))
            });
        }
        ops
    }

    /// Filters, antijoins, the aggregation path and the head.
    fn operators(&self, rule: &Rule) -> Vec<String> {
        let (p, paths, b, r) = (self.p, self.paths, &rule.body, rule.id);
        let mut ops = Vec::new();
        if !b.filters.is_empty() {
            ops.push(format!("filter ({})", b.filters.len()));
        }
        for a in &b.antijoins {
            ops.push(format!("antijoin distinct {}", p.collection_name(a.collection)));
        }
        if b.group_by.is_some() {
            let unique = b.atoms.first().is_some_and(|a| paths.unique.contains(&a.collection));
            let dedup = if unique { "rows never repeat" } else { "deduplicate new rows" };
            let place =
                if paths.prefolded.contains(&r) { "; on one worker, in the driver before the dataflow" } else { "" };
            ops.push(if paths.column_folds.contains(&r) {
                format!("fold per group (column fold: {dedup}, int columns folded a column at a time, never retract{place})")
            } else if paths.folds.contains(&r) {
                format!("fold per group (fold path: {dedup}, update accumulators, never retract{place})")
            } else if paths.counted.contains(&r) {
                "count per group (count path: no bindings kept)".to_string()
            } else {
                "reduce (group, aggregate, having)".to_string()
            });
        }
        ops.push(if copies(p, rule) { "copy (no operator)" } else { "map head" }.to_string());
        ops
    }

    /// Where the rule's rows go.
    fn end(&self, phase: &str, rule: &Rule) -> String {
        let (p, paths, b) = (self.p, self.paths, &rule.body);
        let stratum = p.collection(rule.target).map_or(0, |c| c.stratum);
        let target = p.collection_name(rule.target);
        match phase {
            "<=" if paths.fold_only.contains(&rule.target) => {
                format!("to the folds over {target}, no distinct (stratum {stratum})")
            }
            "<=" if paths.fold_sets.contains(&rule.target) => {
                format!("into {target}, one row per group: no distinct (stratum {stratum})")
            }
            "<=" if paths.insert_only_inputs.iter().any(|c| b.atoms.iter().any(|a| a.collection == *c)) => {
                format!("insertions into {target} (stratum {stratum})")
            }
            "<=" => format!("distinct into {target} (stratum {stratum})"),
            "<+" => format!("next tick: insert into {target}"),
            "<-" => format!("next tick: delete from {target}"),
            _ => format!("send on {target}"),
        }
    }
}

/// The program's coordination operators, in words (for `bloomc dump plan`): the
/// sequencers, per enforced seal its producers, their keys and its consumers, and the reads
/// held until their partition is sealed.
pub fn coordination(p: &Program, plans: &[NodePlan]) -> Result<String, String> {
    let Operators { seal, sequenced, holds } = operators(p, plans);
    let mut out = String::new();
    if seal.is_empty() && sequenced.is_empty() {
        out.push_str("coordination: none inserted (messages land in the receiver's next tick, in arrival order)\n");
    }
    for (first, count) in &sequenced {
        let _ = writeln!(
            out,
            "coordination: a sequencer before {}: every replica takes the same batches of input, in the same order, one batch per settled tick",
            names(plans, *first, *count)
        );
    }
    let punctuations = crate::seal::plan(p, plans, &seal)?.punctuations;
    for (end, cols) in &seal {
        seal_line(&mut out, p, plans, (end, cols), &punctuations);
    }
    for h in &holds {
        hold_line(&mut out, p, plans, h);
    }
    Ok(out)
}

/// The names of `count` node instances from the `first`.
fn names(plans: &[NodePlan], first: usize, count: usize) -> String {
    plans.iter().skip(first).take(count).map(|x| x.node_name.as_str()).collect::<Vec<_>>().join(", ")
}

/// One enforced seal: who announces and seals its keys (ahead, or at the end of their
/// stream), how many keys have one producer, and who holds the facts until sealed.
fn seal_line(
    out: &mut String,
    p: &Program,
    plans: &[NodePlan],
    (end, cols): (&Endpoint, &[usize]),
    punctuations: &[Vec<Punctuations>],
) {
    let input = p.collection(end.collection);
    let col_names: Vec<&str> =
        cols.iter().filter_map(|&c| input.and_then(|i| i.columns.get(c)).map(|x| x.name.as_str())).collect();
    let mut producers: BTreeMap<Row, usize> = BTreeMap::new();
    let (mut who, mut at_end) = (Vec::new(), Vec::new());
    let mut consumers = String::new();
    for (me, list) in punctuations.iter().enumerate() {
        for pu in list.iter().filter(|pu| pu.input == end.collection) {
            let name = plans.get(me).map_or("?", |x| x.node_name.as_str());
            consumers = names(plans, pu.to_first, pu.to_count);
            if pu.at_end.is_some() {
                at_end.push(name);
                continue;
            }
            who.push(name);
            for k in &pu.announce {
                *producers.entry(k.clone()).or_default() += 1;
            }
        }
    }
    who.dedup();
    let single = producers.values().filter(|n| **n == 1).count();
    let ahead = if who.is_empty() {
        String::new()
    } else {
        format!(
            "producers {} announce their keys and seal each after the tick of its last fact; {} keys have one producer (independent seal), {} several (shared seal); ",
            who.join(", "),
            single,
            producers.len() - single
        )
    };
    let ending = if at_end.is_empty() {
        String::new()
    } else {
        format!(
            "producers {} punctuate at the end of their stream (once their feeds are done, every node that sends to them has ended and they settled, they announce and seal every key they sent); ",
            at_end.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "coordination: seal {}.{} on ({}): {ahead}{ending}{} hold each key's facts until all its producers sealed it, then release them in one tick",
        p.system.iter().flat_map(|s| s.groups.iter()).find(|g| g.id == end.group).map_or("?", |g| g.name.as_str()),
        p.collection_name(end.collection),
        col_names.join(", "),
        consumers,
    );
}

/// One read held until its partition (or every partition) of a sealed input is sealed.
fn hold_line(out: &mut String, p: &Program, plans: &[NodePlan], h: &ReadHold) {
    let first = plans.iter().position(|x| x.group == Some(h.read.group)).unwrap_or(0);
    let count = plans.iter().filter(|x| x.group == Some(h.read.group)).count();
    let input = p.collection(h.read.collection);
    let cols: Vec<&str> =
        h.columns.iter().filter_map(|&c| input.and_then(|i| i.columns.get(c)).map(|x| x.name.as_str())).collect();
    let holders = names(plans, first, count);
    let (read, sealed) = (p.collection_name(h.read.collection), p.collection_name(h.sealed.collection));
    let _ = if cols.is_empty() {
        writeln!(
            out,
            "coordination: {holders} hold each `{read}` fact until every partition of `{sealed}` is sealed (the read does not carry the seal's key)",
        )
    } else {
        writeln!(
            out,
            "coordination: {holders} hold each `{read}` fact per ({}) until that partition of `{sealed}` is sealed",
            cols.join(", "),
        )
    };
}
