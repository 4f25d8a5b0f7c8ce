//! Pre-aggregation in the driver: on a node that runs on one worker, the facts of a
//! *prefolded* input (see `paths.rs`) never enter the dataflow. The driver applies the rules
//! that fill the input's tables, keeps one set of each table's distinct rows (a table is a
//! set; none for a table whose rows never repeat), folds each new row into the folds that
//! read the table ([`Fold`], the same code the dataflow's fold operator runs, here without
//! a set of its own), and at the end of the tick hands the
//! dataflow only each fold's changes: a group's old row retracted and its new row inserted.
//!
//! This is exact only where one thread sees every row: deduplication (a table is a set) and
//! grouping both need all of a group's rows in one place. With several workers the rows are
//! split among them, so the dataflow's fold operator, which exchanges rows by group key,
//! does the work instead.
//!
//! The facts of a *column-folded* input (`paths.rs`) come as `int` columns
//! ([`Prefold::add_columns`]) and go to column folds (`colfold.rs`); a single fact of such an
//! input ([`Prefold::add`]) goes there as columns of one row.

use crate::colfold::ColumnFold;
use crate::eval::Ctx;
use crate::fold::Fold;
use crate::paths::Paths;
use crate::plan::NodePlan;
use crate::rules::Check;
use crate::value::{Packed, Row, Value};
use bloomc_compiler::ir::{CollectionId, Expr, Program, RuleId, Type};
use std::collections::BTreeMap;

/// A fold's changes in one tick: `(ok, row)` facts with +1 or -1.
type FoldUpdates = Vec<((bool, Row), isize)>;

/// A rule filling a prefolded table from a prefolded input.
struct Fill {
    rule: RuleId,
    /// The table's folds: their position in `Prefold::folds` (none when no fold reads it).
    table: Option<usize>,
    /// The rule copies the input's rows unchanged (no check, no head to evaluate).
    copies: bool,
    check: Check,
    head: Vec<Expr>,
}

/// One of the driver's folds: of rows, or of columns.
enum AnyFold {
    Rows(Box<Fold>),
    Columns(Box<ColumnFold>),
}

impl AnyFold {
    fn finish(&mut self) -> FoldUpdates {
        match self {
            AnyFold::Rows(f) => f.finish(),
            AnyFold::Columns(f) => f.finish(),
        }
    }
}

/// The driver's folds of one node.
pub(crate) struct Prefold {
    /// For each prefolded input, the rules that read it (found once per input and tick by
    /// [`Prefold::input`], not per fact).
    fills: Vec<(CollectionId, Vec<Fill>)>,
    /// For each prefolded table, the folds that read it.
    folds: Vec<Vec<(RuleId, AnyFold)>>,
    /// For each prefolded table, unless its rows never repeat (`paths.rs`), the distinct
    /// rows it holds so far, encoded with its column types: the table is a set, so a row
    /// it already holds goes to none of its folds. One set for the table, not one per fold.
    seen: Vec<Option<(hashbrown::HashSet<Packed>, Vec<Type>)>>,
    /// The inputs folded a column at a time, with their arity.
    columnar: Vec<(CollectionId, usize)>,
    /// The current tick's errors of the filling rules, tagged with the rule as the
    /// dataflow tags a rule's errors.
    errors: Vec<Row>,
}

impl Prefold {
    /// The driver's folds for `plan`, or `None` when nothing is prefolded.
    pub(crate) fn new(p: &Program, plan: &NodePlan, paths: &Paths) -> Option<Prefold> {
        if paths.prefolded_inputs.is_empty() {
            return None;
        }
        let ctx = Ctx { instance: plan.instance, row: 0, seed: 0 };
        // Each `<=` and `<+` rule of the node with the collection it reads first (a `<+`
        // fold over a prefolded table is prefolded too).
        let rules = || {
            plan.strata.iter().flatten().chain(&plan.deferred).filter_map(|&r| {
                let rule = p.rule(r)?;
                Some((r, rule, rule.body.atoms.first()?))
            })
        };
        let mut folds: BTreeMap<CollectionId, Vec<(RuleId, AnyFold)>> = BTreeMap::new();
        let types = |c: CollectionId| -> Vec<Type> {
            p.collection(c).map(|c| c.columns.iter().map(|col| col.ty).collect()).unwrap_or_default()
        };
        for (r, rule, atom) in rules().filter(|(r, _, _)| paths.prefolded.contains(r)) {
            let columns = paths
                .column_folds
                .contains(&r)
                .then(|| ColumnFold::new(rule, &types(atom.collection), plan.instance))
                .flatten();
            let fold = match columns {
                Some(f) => AnyFold::Columns(Box::new(f)),
                // The table's rows reach the fold once each (`Prefold::seen`).
                None => AnyFold::Rows(Box::new(Fold::new(p, rule, plan.instance, true))),
            };
            folds.entry(atom.collection).or_default().push((r, fold));
        }
        let tables: Vec<CollectionId> = folds.keys().copied().collect();
        let seen = tables
            .iter()
            .map(|&t| (!paths.unique.contains(&t)).then(|| (hashbrown::HashSet::new(), types(t))))
            .collect();
        let mut fills: BTreeMap<CollectionId, Vec<Fill>> = BTreeMap::new();
        for (r, rule, atom) in rules() {
            if paths.prefolded.contains(&r) || !paths.prefolded_inputs.contains(&atom.collection) {
                continue;
            }
            fills.entry(atom.collection).or_default().push(Fill {
                rule: r,
                table: tables.iter().position(|t| *t == rule.target),
                copies: crate::paths::copies(p, rule),
                check: Check::single(rule, ctx),
                head: rule.body.head.clone(),
            });
        }
        let fills = fills.into_iter().collect();
        let arity = |c: CollectionId| p.collection(c).map_or(0, |x| x.columns.len());
        let columnar = paths.column_folded.iter().map(|&c| (c, arity(c))).collect();
        Some(Prefold { fills, folds: folds.into_values().collect(), seen, columnar, errors: Vec::new() })
    }

    /// Where the driver folds the facts of `input`, if it does: what [`Prefold::add`] takes.
    pub(crate) fn input(&self, input: CollectionId) -> Option<usize> {
        self.fills.iter().position(|(c, _)| *c == input)
    }

    /// The folds the driver computes, in rule order.
    pub(crate) fn rules(&self) -> Vec<RuleId> {
        let mut rules: Vec<RuleId> = self.folds.iter().flatten().map(|(r, _)| *r).collect();
        rules.sort();
        rules
    }

    /// Whether the facts of `input` (from [`Prefold::input`]) are folded a column at a time:
    /// then [`Prefold::add_columns`] takes them.
    pub(crate) fn columnar(&self, input: usize) -> bool {
        self.fills.get(input).is_some_and(|(c, _)| self.columnar.iter().any(|(x, _)| x == c))
    }

    /// How many columns `input` (from [`Prefold::input`]) has, when it is column-folded.
    pub(crate) fn arity(&self, input: usize) -> usize {
        let c = self.fills.get(input).map(|(c, _)| *c);
        self.columnar.iter().find(|(x, _)| Some(*x) == c).map_or(0, |(_, n)| *n)
    }

    /// Folds facts of a column-folded `input` in, given as its columns (all `int`, of one
    /// length): its one rule copies them into a table that only column folds read.
    pub(crate) fn add_columns(&mut self, input: usize, columns: &[&[i64]]) {
        let Some((_, fills)) = self.fills.get(input) else { return };
        for fill in fills {
            for (_, fold) in fill.table.and_then(|t| self.folds.get_mut(t)).into_iter().flatten() {
                if let AnyFold::Columns(f) = fold {
                    f.add(columns);
                }
            }
        }
    }

    /// Folds one fact of `input` (from [`Prefold::input`]) in: through each rule that reads
    /// it, into the folds over that rule's table. A fact of a column-folded input goes in as
    /// columns of one row; one that does not fit its `int` columns (which its schema rules
    /// out) is an error of the rule that reads it, as a value of the wrong type would be.
    pub(crate) fn add(&mut self, input: usize, row: &Row) {
        if self.columnar(input) {
            let ints: Option<Vec<i64>> =
                row.iter().map(|v| if let Value::Int(i) = v { Some(*i) } else { None }).collect();
            match ints {
                Some(ints) => {
                    let columns: Vec<&[i64]> = ints.iter().map(std::slice::from_ref).collect();
                    self.add_columns(input, &columns);
                }
                None => {
                    let rule = self.fills.get(input).and_then(|(_, f)| f.first()).map(|f| f.rule);
                    self.errors.extend(rule.map(|r| {
                        let mut tagged = Row::new();
                        tagged.push(Value::Int(i64::from(r.0)));
                        tagged.extend(row.iter().cloned());
                        tagged
                    }));
                }
            }
            return;
        }
        let Some((_, fills)) = self.fills.get(input) else { return };
        for fill in fills {
            let produced = if fill.copies {
                Some(None)
            } else {
                match fill.check.project(&fill.head, row) {
                    None => continue,
                    Some(out) => out.map(Some),
                }
            };
            match produced {
                Some(out) => {
                    let out = out.as_ref().unwrap_or(row);
                    if let Some((seen, types)) = fill.table.and_then(|t| self.seen.get_mut(t)).and_then(Option::as_mut)
                    {
                        if !seen.insert(Packed::typed(out, None, types)) {
                            continue;
                        }
                    }
                    for (_, fold) in fill.table.and_then(|t| self.folds.get_mut(t)).into_iter().flatten() {
                        if let AnyFold::Rows(f) = fold {
                            f.add(out);
                        }
                    }
                }
                None => {
                    let mut tagged = Row::new();
                    tagged.push(Value::Int(i64::from(fill.rule.0)));
                    tagged.extend(row.iter().cloned());
                    self.errors.push(tagged);
                }
            }
        }
    }

    /// Ends the tick: each fold's changes (its `(ok, row)` output, as the dataflow's fold
    /// operator produces it), and the filling rules' errors.
    pub(crate) fn finish(&mut self) -> (Vec<(RuleId, FoldUpdates)>, Vec<Row>) {
        let mut changes: Vec<(RuleId, FoldUpdates)> =
            self.folds.iter_mut().flatten().map(|(r, fold)| (*r, fold.finish())).collect();
        changes.sort_by_key(|(r, _)| *r);
        (changes, std::mem::take(&mut self.errors))
    }
}
