//! The fold path's timely operator (see `fold.rs` for the fold itself): the rows arriving
//! in a fold rule's table, exchanged to the worker their group's key hashes to, folded as
//! they arrive (rows of a later tick that arrive early wait), and each tick's changes
//! emitted once no more of its rows can come.

use crate::eval::{eval, Flat};
use crate::fold::Fold;
use crate::rules::Coll;
use crate::value::Row;
use bloomc_compiler::ir::{Program, Rule};
use differential_dataflow::hashable::Hashable;
use differential_dataflow::AsCollection;
use std::collections::BTreeMap;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

/// Renders fold rule `r` over `table`: the table's rows as they arrive (only insertions;
/// duplicates allowed; a retraction, which a table that only grows never has, is ignored). Returns the rule's `(ok, row)` output collection, as the
/// other aggregation paths produce it.
pub fn dataflow<'s>(
    p: &Program,
    r: &Rule,
    table: Coll<'s, u64>,
    instance: u32,
    unique: bool,
) -> differential_dataflow::VecCollection<'s, u64, (bool, Row), isize> {
    let fold = Fold::new(p, r, instance, unique);
    let (key_cols, keys, ctx) = fold.route();
    let stream = table.inner;
    let out = if stream.scope().peers() == 1 {
        operator(stream, Pipeline, fold)
    } else {
        // Equal rows have equal keys, so deduplication and grouping both happen where the
        // key hashes to. A key that fails to evaluate routes like the empty key.
        let route = move |(row, _, _): &(Row, u64, isize)| -> u64 {
            if let Some(cols) = &key_cols {
                return key_of(row, cols).hashed();
            }
            let offsets = [0usize];
            let flat = Flat { row, offsets: &offsets };
            let key: Row = keys.iter().map(|k| eval(k, &flat, &ctx, &[])).collect::<Result<_, _>>().unwrap_or_default();
            key.hashed()
        };
        operator(stream, Exchange::new(route), fold)
    };
    out.as_collection()
}

fn key_of(row: &Row, cols: &[usize]) -> Row {
    cols.iter().filter_map(|&c| row.get(c).cloned()).collect()
}

type Rows<'s> = Stream<'s, u64, Vec<(Row, u64, isize)>>;
type Produced<'s> = Stream<'s, u64, Vec<((bool, Row), u64, isize)>>;

fn operator<'s, P>(stream: Rows<'s>, pact: P, mut fold: Fold) -> Produced<'s>
where
    P: ParallelizationContract<u64, Vec<(Row, u64, isize)>>,
{
    stream.unary_frontier(pact, "Fold", move |_, _| {
        // The tick being folded, and the rows of later ticks that arrived before it ended.
        // The driver completes each tick before it feeds the next, so rows are almost
        // always folded as they arrive.
        let mut current: Option<Capability<u64>> = None;
        let mut early: BTreeMap<u64, (Capability<u64>, Vec<Row>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                for (row, t, d) in data.drain(..) {
                    if d <= 0 {
                        continue;
                    }
                    let first = early.is_empty() && frontier.frontier().iter().all(|f| *f == t);
                    match &current {
                        Some(c) if *c.time() == t => fold.add(&row),
                        None if first => {
                            current = Some(cap.delayed(&t, 0));
                            fold.add(&row);
                        }
                        _ => early.entry(t).or_insert_with(|| (cap.delayed(&t, 0), Vec::new())).1.push(row),
                    }
                }
            });
            loop {
                // A tick ends once no more of its rows can arrive.
                if let Some(cap) = current.take() {
                    if frontier.frontier().less_equal(cap.time()) {
                        current = Some(cap);
                        break;
                    }
                    let t = *cap.time();
                    let changes = fold.finish();
                    let mut session = output.session(&cap);
                    for (row, d) in changes {
                        session.give((row, t, d));
                    }
                }
                // The earliest buffered tick becomes current once nothing earlier can come.
                let Some(entry) = early.first_entry() else { break };
                if frontier.frontier().iter().any(|f| f < entry.key()) {
                    break;
                }
                let (cap, rows) = entry.remove();
                for row in rows {
                    fold.add(&row);
                }
                current = Some(cap);
            }
        }
    })
}
