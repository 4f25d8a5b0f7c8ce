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
}

impl Lineage {
    /// The input columns that column `col` of `c` is an identity copy of (empty if none).
    pub fn of(&self, c: CollectionId, col: usize) -> BTreeSet<InputCol> {
        self.cols.get(&(c, col)).cloned().unwrap_or_default()
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
    Lineage { cols: cur.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect() }
}
