//! Attribute lineage: for every column of every collection of a module, the input-interface
//! columns it is an identity copy of.
//!
//! A column copies its sources through projection and renaming, and a column equated in a
//! join is a copy of both sides. A collection written by several rules keeps only the
//! sources that *every* rule copies (a must-analysis, computed as a greatest fixpoint), so
//! "`a` is an identity copy of `click.campaign`" holds for every row. This is the sound,
//! incomplete injective-FD test of the paper: identity is injective.

use crate::ir::{Body, ColRef, CollectionId, ExprKind, ModuleId, Program};
use bloomc_grammar::ast::{CollectionKind, MergeOp};
use std::collections::{BTreeSet, HashMap};

/// A column of an input interface: (the interface, column index).
pub type InputCol = (CollectionId, usize);

#[derive(Debug, Default, Clone)]
pub struct Lineage {
    cols: HashMap<(CollectionId, usize), BTreeSet<InputCol>>,
    /// The part of `cols` for which the column is *partition-closed*: every row with value
    /// `x` in the column derives only from facts of that input with `x` in that column.
    closed: HashMap<(CollectionId, usize), BTreeSet<InputCol>>,
    /// The inputs each collection derives from (through any rule, `notin` included).
    derives: HashMap<CollectionId, BTreeSet<CollectionId>>,
}

impl Lineage {
    /// The input columns that column `col` of `c` is an identity copy of (empty if none).
    pub fn of(&self, c: CollectionId, col: usize) -> BTreeSet<InputCol> {
        self.cols.get(&(c, col)).cloned().unwrap_or_default()
    }

    /// The input columns for which column `col` of `c` is partition-closed (a subset of
    /// [`Lineage::of`]): a seal on such an input column delivers all that a row with that
    /// value derives from, so the partition is complete when its seal arrives.
    pub fn closed(&self, c: CollectionId, col: usize) -> BTreeSet<InputCol> {
        self.closed.get(&(c, col)).cloned().unwrap_or_default()
    }

    fn derives_from(&self, c: CollectionId, input: CollectionId) -> bool {
        self.derives.get(&c).is_some_and(|d| d.contains(&input))
    }

    /// The inputs collection `c` derives from, through any rule.
    pub fn inputs_of(&self, c: CollectionId) -> BTreeSet<CollectionId> {
        self.derives.get(&c).cloned().unwrap_or_default()
    }

    /// The input columns for which the rule-scope column `c` is partition-closed: it traces
    /// to the input column, and every atom and `notin` of the body that derives from that
    /// input is joined to `c` on a column closed for it. A join on another column (a
    /// recursive closure, a `notin .. on x.p == y.k`) lets other partitions in.
    pub fn closed_at(&self, body: &Body, c: ColRef) -> BTreeSet<InputCol> {
        let cls = class(body, c);
        let mut cand: BTreeSet<InputCol> = BTreeSet::new();
        for e in &cls {
            if let Some(a) = body.atoms.get(e.atom) {
                cand.extend(self.closed(a.collection, e.column));
            }
        }
        cand.retain(|ic| {
            let atoms_ok = body.atoms.iter().enumerate().all(|(ai, a)| {
                !self.derives_from(a.collection, ic.0)
                    || cls.iter().any(|e| e.atom == ai && self.closed(a.collection, e.column).contains(ic))
            });
            let anti_ok = body.antijoins.iter().all(|anti| {
                !self.derives_from(anti.collection, ic.0)
                    || anti.pairs.iter().any(|(o, i)| cls.contains(o) && self.closed(anti.collection, *i).contains(ic))
            });
            atoms_ok && anti_ok
        });
        cand
    }
}

/// The equivalence class of `c` under the rule's join equalities (including `c`).
pub fn class(body: &Body, c: ColRef) -> BTreeSet<ColRef> {
    let mut out = BTreeSet::from([c]);
    loop {
        let before = out.len();
        for e in &body.equalities {
            if out.contains(&e.left) || out.contains(&e.right) {
                out.insert(e.left);
                out.insert(e.right);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Lineage of every column of every collection in `module`.
pub fn lineage(p: &Program, module: ModuleId) -> Lineage {
    let Some(m) = p.module(module) else {
        return Lineage::default();
    };
    // `None` is "not yet known" (top): it shrinks to a set as rules are seen.
    let mut cur: HashMap<(CollectionId, usize), Option<BTreeSet<InputCol>>> = HashMap::new();
    for &c in &m.collections {
        let Some(coll) = p.collection(c) else {
            continue;
        };
        for i in 0..coll.columns.len() {
            let init = if coll.kind == CollectionKind::Input { Some(BTreeSet::from([(c, i)])) } else { None };
            cur.insert((c, i), init);
        }
    }
    let mut by_target: HashMap<CollectionId, Vec<&crate::ir::Rule>> = HashMap::new();
    for r in m.rules.iter().filter_map(|&r| p.rule(r)).filter(|r| r.op != MergeOp::Delete) {
        by_target.entry(r.target).or_default().push(r);
    }
    // Values only shrink, so this terminates; the cap guards against a bug looping forever.
    for _ in 0..=cur.len() * 64 + 64 {
        let mut changed = false;
        for &c in &m.collections {
            let Some(coll) = p.collection(c) else {
                continue;
            };
            if coll.kind == CollectionKind::Input {
                continue;
            }
            let rules = by_target.get(&c).map_or(&[][..], Vec::as_slice);
            for i in 0..coll.columns.len() {
                // Intersection over rules of what each rule copies into column i.
                let mut acc: Option<BTreeSet<InputCol>> = None;
                let mut any_rule = false;
                for r in rules {
                    any_rule = true;
                    let copied: Option<BTreeSet<InputCol>> = match r.body.head.get(i).map(|e| &e.kind) {
                        Some(ExprKind::Col(col)) => {
                            let mut set = Some(BTreeSet::new());
                            for e in class(&r.body, *col) {
                                let src = r.body.atoms.get(e.atom).map(|a| a.collection);
                                let lin =
                                    src.and_then(|s| cur.get(&(s, e.column)).cloned()).unwrap_or(Some(BTreeSet::new()));
                                set = match (set, lin) {
                                    (Some(mut a), Some(b)) => {
                                        a.extend(b);
                                        Some(a)
                                    }
                                    _ => None,
                                };
                            }
                            set
                        }
                        _ => Some(BTreeSet::new()),
                    };
                    acc = match (acc, copied) {
                        (None, x) => x,
                        (x, None) => x,
                        (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
                    };
                }
                let new = if any_rule { acc } else { Some(BTreeSet::new()) };
                let slot = cur.entry((c, i)).or_insert(None);
                if *slot != new && new.is_some() {
                    *slot = new;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let cols: HashMap<(CollectionId, usize), BTreeSet<InputCol>> =
        cur.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    let mut lin = Lineage { closed: cols.clone(), cols, derives: derives(p, m) };
    close(p, m, &by_target, &mut lin);
    lin
}

/// For every collection, the inputs it derives from.
fn derives(p: &Program, m: &crate::ir::Module) -> HashMap<CollectionId, BTreeSet<CollectionId>> {
    let mut out: HashMap<CollectionId, BTreeSet<CollectionId>> = HashMap::new();
    for &c in &m.collections {
        if p.collection(c).is_some_and(|x| x.kind == CollectionKind::Input) {
            out.entry(c).or_default().insert(c);
        }
    }
    let rules: Vec<&crate::ir::Rule> = m.rules.iter().filter_map(|&r| p.rule(r)).collect();
    // Sets only grow, bounded by the inputs; the cap guards against a bug looping forever.
    for _ in 0..=rules.len() * 8 + 8 {
        let mut changed = false;
        for r in &rules {
            let mut from: BTreeSet<CollectionId> = BTreeSet::new();
            for c in r.body.atoms.iter().map(|a| a.collection).chain(r.body.antijoins.iter().map(|a| a.collection)) {
                from.extend(out.get(&c).into_iter().flatten().copied());
            }
            let slot = out.entry(r.target).or_default();
            let before = slot.len();
            slot.extend(from);
            changed |= slot.len() != before;
        }
        if !changed {
            break;
        }
    }
    out
}

/// Narrows `lin.closed` (which starts as the lineage) to the partition-closed columns: a
/// greatest fixpoint, so recursion keeps what every rule preserves.
fn close(
    p: &Program,
    m: &crate::ir::Module,
    by_target: &HashMap<CollectionId, Vec<&crate::ir::Rule>>,
    lin: &mut Lineage,
) {
    for _ in 0..=lin.closed.len() * 64 + 64 {
        let mut changed = false;
        for &c in &m.collections {
            let Some(coll) = p.collection(c) else { continue };
            if coll.kind == CollectionKind::Input {
                continue;
            }
            let rules = by_target.get(&c).map_or(&[][..], Vec::as_slice);
            for i in 0..coll.columns.len() {
                let mut keep = lin.closed(c, i);
                for r in rules {
                    let at: BTreeSet<InputCol> = match r.body.head.get(i).map(|e| &e.kind) {
                        Some(ExprKind::Col(x)) => lin.closed_at(&r.body, *x),
                        _ => BTreeSet::new(),
                    };
                    keep.retain(|ic| at.contains(ic));
                }
                if keep != lin.closed(c, i) {
                    lin.closed.insert((c, i), keep);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}
