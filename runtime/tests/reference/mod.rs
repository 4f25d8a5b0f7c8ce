//! A naive reference evaluator, used only by the tests: it follows the tick-by-tick
//! semantics of docs/language.md with sets and nested loops, nothing clever.

use bloomc_compiler::ir::{CollectionId, Program, Rule, RuleId};
use bloomc_grammar::ast::CollectionKind;
use bloomc_runtime::eval::{aggregate, collect_aggs, eval, truthy, Ctx, Flat};
use bloomc_runtime::plan::NodePlan;
use bloomc_runtime::value::{Row, Value};
use std::collections::{BTreeMap, BTreeSet};

type State = BTreeMap<CollectionId, BTreeSet<Row>>;

/// The flat binding rows of a rule body (atom rows concatenated), filtered and antijoined.
fn bindings(p: &Program, r: &Rule, state: &State, ctx: &Ctx, errors: &mut BTreeSet<Row>) -> (Vec<Row>, Vec<usize>) {
    let b = &r.body;
    let mut offsets = Vec::new();
    let mut width = 0;
    for a in &b.atoms {
        offsets.push(width);
        width += p.collection(a.collection).map_or(0, |c| c.columns.len());
    }
    let empty = BTreeSet::new();
    let mut partial: Vec<Row> = vec![Row::new()];
    for a in &b.atoms {
        let rows = state.get(&a.collection).unwrap_or(&empty);
        let mut next = Vec::new();
        for left in &partial {
            for right in rows {
                let mut row = left.clone();
                row.extend(right.iter().cloned());
                next.push(row);
            }
        }
        partial = next;
    }
    let flat = |atom: usize, col: usize| offsets.get(atom).map_or(0, |o| o + col);
    let mut out = Vec::new();
    'binding: for row in partial {
        for e in &b.equalities {
            if row.get(flat(e.left.atom, e.left.column)) != row.get(flat(e.right.atom, e.right.column)) {
                continue 'binding;
            }
        }
        for f in &b.filters {
            match eval(f, &Flat { row: &row, offsets: &offsets }, ctx, &[]) {
                Ok(v) if truthy(&v) => {}
                Ok(_) => continue 'binding,
                Err(_) => {
                    errors.insert(tag(r.id, &row));
                    continue 'binding;
                }
            }
        }
        for anti in &b.antijoins {
            let negated = state.get(&anti.collection).unwrap_or(&empty);
            if negated.iter().any(|n| anti.pairs.iter().all(|(o, i)| row.get(flat(o.atom, o.column)) == n.get(*i))) {
                continue 'binding;
            }
        }
        out.push(row);
    }
    (out, offsets)
}

fn tag(rule: RuleId, row: &Row) -> Row {
    let mut t = Row::new();
    t.push(Value::Int(i64::from(rule.0)));
    t.extend(row.iter().cloned());
    t
}

/// The facts a rule derives from `state`.
pub fn rule(p: &Program, r: &Rule, state: &State, ctx: &Ctx, errors: &mut BTreeSet<Row>) -> BTreeSet<Row> {
    let (binds, offsets) = bindings(p, r, state, ctx, errors);
    let b = &r.body;
    let mut out = BTreeSet::new();
    let Some(keys) = &b.group_by else {
        for row in binds {
            let f = Flat { row: &row, offsets: &offsets };
            match b.head.iter().map(|e| eval(e, &f, ctx, &[])).collect::<Result<Row, _>>() {
                Ok(h) => {
                    out.insert(h);
                }
                Err(_) => {
                    errors.insert(tag(r.id, &row));
                }
            }
        }
        return out;
    };
    let mut groups: BTreeMap<Row, BTreeSet<Row>> = BTreeMap::new();
    for row in binds {
        let f = Flat { row: &row, offsets: &offsets };
        match keys.iter().map(|e| eval(e, &f, ctx, &[])).collect::<Result<Row, _>>() {
            Ok(k) => {
                groups.entry(k).or_default().insert(row);
            }
            Err(_) => {
                errors.insert(tag(r.id, &row));
            }
        }
    }
    for (group_key, rows) in &groups {
        let group: Vec<Flat<'_>> = rows.iter().map(|row| Flat { row, offsets: &offsets }).collect();
        let Some(first) = group.first() else { continue };
        let mut head_aggs = Vec::new();
        for e in &b.head {
            collect_aggs(e, &mut head_aggs);
        }
        let mut having_aggs = Vec::new();
        if let Some(h) = &b.having {
            collect_aggs(h, &mut having_aggs);
        }
        let compute = |aggs: &[&bloomc_compiler::ir::Expr]| -> Result<Vec<Value>, ()> {
            aggs.iter().map(|a| aggregate(a, &group, ctx).map_err(|_| ())).collect()
        };
        let (Ok(hv), Ok(gv)) = (compute(&head_aggs), compute(&having_aggs)) else {
            errors.insert(tag(r.id, group_key));
            continue;
        };
        if let Some(h) = &b.having {
            match eval(h, first, ctx, &gv) {
                Ok(v) if truthy(&v) => {}
                Ok(_) => continue,
                Err(_) => {
                    errors.insert(tag(r.id, group_key));
                    continue;
                }
            }
        }
        let mut head = Row::new();
        let mut used = 0;
        let mut failed = false;
        for e in &b.head {
            let mut v = Vec::new();
            collect_aggs(e, &mut v);
            match eval(e, first, ctx, hv.get(used..used + v.len()).unwrap_or(&[])) {
                Ok(x) => head.push(x),
                Err(_) => failed = true,
            }
            used += v.len();
        }
        if failed {
            errors.insert(tag(r.id, group_key));
        } else {
            out.insert(head);
        }
    }
    out
}

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
    let m = p.module(plan.module).expect("module");
    let kind = |c: CollectionId| p.collection(c).map(|x| x.kind);
    let ctx = Ctx { instance: plan.instance, row: 0, seed: 0 };
    let mut next_base: State = BTreeMap::new();
    let mut errors = BTreeSet::new();
    let mut outputs: BTreeMap<String, BTreeMap<u64, BTreeSet<Row>>> = BTreeMap::new();
    let mut last_output: BTreeMap<String, BTreeSet<Row>> = BTreeMap::new();
    let mut tick = 0;
    let mut feed_errors = 0;
    let mut keys_seen: BTreeMap<CollectionId, BTreeSet<Row>> = BTreeMap::new();
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    while tick < max_ticks {
        let mut state: State = next_base.clone();
        for f in &plan.feeds {
            let key = p.collection(f.input).and_then(|c| c.key.clone());
            for fact in f.batch(tick, plan.instance, 0, 1, &mut feed_errors) {
                if let Some(key) = &key {
                    let k: Row = key.iter().filter_map(|&i| fact.get(i).cloned()).collect();
                    if !keys_seen.entry(f.input).or_default().insert(k) {
                        *rejected.entry(p.collection_name(f.input).to_string()).or_default() += 1;
                        continue;
                    }
                }
                state.entry(f.input).or_default().insert(fact);
            }
        }
        // `<=` rules to fixpoint, stratum by stratum.
        for stratum in &plan.strata {
            loop {
                let mut changed = false;
                for &r in stratum {
                    let rule_ir = p.rule(r).expect("rule");
                    let facts = rule(p, rule_ir, &state, &ctx, &mut errors);
                    let slot = state.entry(rule_ir.target).or_default();
                    for f in facts {
                        changed |= slot.insert(f);
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        let derive = |rules: &[RuleId], errors: &mut BTreeSet<Row>| -> State {
            let mut out: State = BTreeMap::new();
            for &r in rules {
                let rule_ir = p.rule(r).expect("rule");
                out.entry(rule_ir.target).or_default().extend(rule(p, rule_ir, &state, &ctx, errors));
            }
            out
        };
        let plus = derive(&plan.deferred, &mut errors);
        let minus = derive(&plan.deletes, &mut errors);
        let sent = derive(&plan.sends, &mut errors);
        // Next tick: tables keep (T \ deleted) ∪ inserted; scratches get their deferred inserts;
        // loopback inputs get what was sent.
        let mut next: State = BTreeMap::new();
        for &c in &m.collections {
            match kind(c) {
                Some(CollectionKind::Table) => {
                    let mut t: BTreeSet<Row> = state.get(&c).cloned().unwrap_or_default();
                    if let Some(del) = minus.get(&c) {
                        t.retain(|r| !del.contains(r));
                    }
                    t.extend(plus.get(&c).cloned().unwrap_or_default());
                    if !t.is_empty() {
                        next.insert(c, t);
                    }
                }
                Some(CollectionKind::Scratch) => {
                    if let Some(x) = plus.get(&c).filter(|x| !x.is_empty()) {
                        next.insert(c, x.clone());
                    }
                }
                _ => {}
            }
        }
        // A wire carries everything its output emits in a tick: `<=` facts and sends.
        for (o, i) in &plan.loopback {
            let mut facts: BTreeSet<Row> = state.get(o).cloned().unwrap_or_default();
            facts.extend(sent.get(o).cloned().unwrap_or_default());
            if !facts.is_empty() {
                next.entry(*i).or_default().extend(facts);
            }
        }
        for &c in &m.collections {
            if kind(c) == Some(CollectionKind::Output) {
                let mut facts = state.get(&c).cloned().unwrap_or_default();
                facts.extend(sent.get(&c).cloned().unwrap_or_default());
                let name = p.collection_name(c).to_string();
                if last_output.get(&name).unwrap_or(&BTreeSet::new()) != &facts {
                    outputs.entry(name.clone()).or_default().insert(tick, facts.clone());
                    last_output.insert(name, facts);
                }
            }
        }
        let changed = next != next_base;
        next_base = next;
        tick += 1;
        if tick > plan.feed_ticks() && !changed {
            break;
        }
    }
    Outcome { outputs, ticks: tick, errors, rejected }
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
