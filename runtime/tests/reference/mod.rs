//! The tests' reference: the naive evaluator of `bloomc_runtime::sim::naive` (sets and
//! nested loops, nothing clever), driven tick by tick with a node's feeds as `bloomc run`
//! drives the dataflow.

use bloomc_compiler::ir::{CollectionId, Program};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::sim::naive::Node;
use bloomc_runtime::value::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Output contents per tick, and the distinct failed bindings, for `ticks` ticks or until
/// quiescent by the runtime's rule.
pub struct Outcome {
    pub outputs: BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>>,
    pub ticks: u64,
    pub errors: BTreeSet<Row>,
    /// Per keyed input, the facts rejected because an earlier fact of the run (in an
    /// earlier tick, or earlier in this tick's feed order) had their key.
    pub rejected: BTreeMap<String, u64>,
}

pub fn run(p: &Program, plan: &NodePlan, max_ticks: u64) -> Outcome {
    let mut node = Node::new(plan.clone());
    let mut outputs: BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>> = BTreeMap::new();
    let mut last_output: BTreeMap<String, BTreeSet<Row>> = BTreeMap::new();
    let mut tick = 0;
    let mut feed_errors = 0;
    // Sealed feeds: every row of a key enters in the tick of the key's last row, and a read
    // they protect in the tick its partition (or, with no columns, the whole feed) is
    // complete, computed here from the whole feed at once.
    let key = |row: &Row, cols: &[usize]| -> Row { cols.iter().filter_map(|&c| row.get(c).cloned()).collect() };
    let mut all: Vec<(u64, CollectionId, Row)> = Vec::new();
    for t in 0..plan.feed_ticks() {
        for f in &plan.feeds {
            all.extend(f.batch(t, plan.instance, 0, 1, &mut 0).into_iter().map(|r| (t, f.input, r)));
        }
    }
    let mut last: BTreeMap<(CollectionId, Row), u64> = BTreeMap::new();
    for (t, c, row) in &all {
        if let Some((_, cols)) = plan.sealed_feeds.iter().find(|(s, _)| s == c) {
            let at = last.entry((*c, key(row, cols))).or_insert(*t);
            *at = (*at).max(*t);
        }
    }
    let due = |t: u64, c: CollectionId, row: &Row| -> u64 {
        if let Some((_, cols)) = plan.sealed_feeds.iter().find(|(s, _)| *s == c) {
            return last.get(&(c, key(row, cols))).copied().unwrap_or(t);
        }
        let mut at = t;
        for (_, sealed, cols) in plan.fed_reads.iter().filter(|(r, _, _)| *r == c) {
            let complete = match cols.is_empty() {
                true => last.iter().filter(|((s, _), _)| s == sealed).map(|(_, t)| *t).max(),
                false => last.get(&(*sealed, key(row, cols))).copied(),
            };
            at = at.max(complete.unwrap_or(0));
        }
        at
    };
    let mut scheduled: BTreeMap<u64, Vec<(CollectionId, Row)>> = BTreeMap::new();
    for (t, c, row) in all {
        scheduled.entry(due(t, c, &row)).or_default().push((c, row));
    }
    while tick < max_ticks {
        let mut delivered = Vec::new();
        if plan.sealed_feeds.is_empty() {
            for f in &plan.feeds {
                delivered
                    .extend(f.batch(tick, plan.instance, 0, 1, &mut feed_errors).into_iter().map(|r| (f.input, r)));
            }
        } else {
            delivered = scheduled.remove(&tick).unwrap_or_default();
        }
        let result = node.tick(p, &delivered);
        for (c, facts) in result.outputs {
            let name = p.collection_name(c).to_string();
            if last_output.get(&name).unwrap_or(&BTreeSet::new()) != &facts {
                outputs.entry(name.clone()).or_default().insert(tick, facts.clone());
                last_output.insert(name, facts);
            }
        }
        tick += 1;
        if tick > plan.feed_ticks() && !result.changed {
            break;
        }
    }
    let rejected = node.rejected.iter().map(|(c, n)| (p.collection_name(*c).to_string(), *n)).collect();
    Outcome { outputs, ticks: tick, errors: node.errors, rejected }
}

/// The proptest settings of the random tests: `cases` cases from a fixed seed, so CI is
/// reproducible; `BLOOMC_EXPLORE=1` draws fresh cases instead.
#[allow(dead_code)]
pub fn proptest_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    let rng_seed = if std::env::var_os("BLOOMC_EXPLORE").is_some() {
        proptest::test_runner::RngSeed::Random
    } else {
        proptest::test_runner::RngSeed::Fixed(seed)
    };
    proptest::test_runner::Config { cases, rng_seed, ..proptest::test_runner::Config::default() }
}
