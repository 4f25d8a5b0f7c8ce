//! A naive evaluator of one node's ticks: sets and nested loops, nothing clever. It follows
//! the tick semantics of docs/language.md (inputs and `<=` rules to a fixpoint stratum by
//! stratum, then `<+`, `<-` and `<~` into the next tick) and is the reference that the
//! dataflow runtime is tested against. The explorer (`sim::world`) runs it because it must
//! decide, fact by fact, what each tick of each node receives.

use crate::eval::{aggregate, collect_aggs, eval, truthy, Ctx, Flat};
use crate::plan::NodePlan;
use crate::value::{Row, Value};
use bloomc_compiler::ir::{CollectionId, Program, Rule, RuleId};
use bloomc_grammar::ast::CollectionKind;
use std::collections::{BTreeMap, BTreeSet};

/// The contents of a node's collections.
pub type State = BTreeMap<CollectionId, BTreeSet<Row>>;

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

/// A failed binding, tagged with its rule so equal rows of two rules count twice.
fn tag(rule: RuleId, row: &Row) -> Row {
    let mut t = Row::new();
    t.push(Value::Int(i64::from(rule.0)));
    t.extend(row.iter().cloned());
    t
}

/// The facts a rule derives from `state`; failed bindings go to `errors`.
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
    let mut head_aggs = Vec::new();
    for e in &b.head {
        collect_aggs(e, &mut head_aggs);
    }
    let mut having_aggs = Vec::new();
    if let Some(h) = &b.having {
        collect_aggs(h, &mut having_aggs);
    }
    for (group_key, rows) in &groups {
        let group: Vec<Flat<'_>> = rows.iter().map(|row| Flat { row, offsets: &offsets }).collect();
        let Some(first) = group.first() else { continue };
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

/// What one tick of a node did.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    /// The facts each output held in the tick (its `<=` facts and its `<~` sends).
    pub outputs: BTreeMap<CollectionId, BTreeSet<Row>>,
    /// The state carried into the next tick differs from the one carried into this one.
    pub changed: bool,
}

/// One node's state between ticks, and its tick.
#[derive(Debug, Clone)]
pub struct Node {
    pub plan: NodePlan,
    /// What the next tick starts from: tables, deferred scratch inserts and loopback facts.
    pub carried: State,
    /// Distinct failed bindings over the run.
    pub errors: BTreeSet<Row>,
    /// Keys seen so far per keyed input, and facts rejected for a repeated key.
    keys_seen: BTreeMap<CollectionId, BTreeSet<Row>>,
    pub rejected: BTreeMap<CollectionId, u64>,
    pub ticks: u64,
}

impl Node {
    pub fn new(plan: NodePlan) -> Node {
        Node {
            plan,
            carried: State::new(),
            errors: BTreeSet::new(),
            keys_seen: BTreeMap::new(),
            rejected: BTreeMap::new(),
            ticks: 0,
        }
    }

    /// Runs one tick with `delivered` facts added to the node's inputs, in the order given
    /// (a keyed input keeps the first fact of each key and rejects the rest).
    pub fn tick(&mut self, p: &Program, delivered: &[(CollectionId, Row)]) -> Tick {
        let ctx = Ctx { instance: self.plan.instance, row: 0, seed: 0 };
        let mut state = self.carried.clone();
        for (input, fact) in delivered {
            if let Some(key) = p.collection(*input).and_then(|c| c.key.as_ref()) {
                let k: Row = key.iter().filter_map(|&i| fact.get(i).cloned()).collect();
                if !self.keys_seen.entry(*input).or_default().insert(k) {
                    *self.rejected.entry(*input).or_default() += 1;
                    continue;
                }
            }
            state.entry(*input).or_default().insert(fact.clone());
        }
        for stratum in &self.plan.strata {
            loop {
                let mut changed = false;
                for r in stratum.iter().filter_map(|&r| p.rule(r)) {
                    let facts = rule(p, r, &state, &ctx, &mut self.errors);
                    let slot = state.entry(r.target).or_default();
                    for f in facts {
                        changed |= slot.insert(f);
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        let mut derive = |rules: &[RuleId]| -> State {
            let mut out: State = BTreeMap::new();
            for r in rules.iter().filter_map(|&r| p.rule(r)) {
                out.entry(r.target).or_default().extend(rule(p, r, &state, &ctx, &mut self.errors));
            }
            out
        };
        let plus = derive(&self.plan.deferred);
        let minus = derive(&self.plan.deletes);
        let sent = derive(&self.plan.sends);
        let next = self.next_state(p, &state, &plus, &minus, &sent);
        let mut outputs = BTreeMap::new();
        for c in self.plan.collections(p, CollectionKind::Output) {
            let mut facts = state.get(&c).cloned().unwrap_or_default();
            facts.extend(sent.get(&c).cloned().unwrap_or_default());
            outputs.insert(c, facts);
        }
        let changed = next != self.carried;
        self.carried = next;
        self.ticks += 1;
        Tick { outputs, changed }
    }

    /// Next tick: tables keep (T \ deleted) ∪ inserted; scratches get their deferred
    /// inserts; loopback inputs get what their output held.
    fn next_state(&self, p: &Program, state: &State, plus: &State, minus: &State, sent: &State) -> State {
        let mut next: State = BTreeMap::new();
        let Some(m) = p.module(self.plan.module) else { return next };
        for &c in &m.collections {
            match p.collection(c).map(|x| x.kind) {
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
        for (o, i) in &self.plan.loopback {
            let mut facts: BTreeSet<Row> = state.get(o).cloned().unwrap_or_default();
            facts.extend(sent.get(o).cloned().unwrap_or_default());
            if !facts.is_empty() {
                next.entry(*i).or_default().extend(facts);
            }
        }
        next
    }
}
