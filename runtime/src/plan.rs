//! What one node runs: its module's rules sorted by phase and stratum, its feeds, and the
//! loopback wires that deliver its own `<~` outputs back to its inputs next tick.

use crate::eval::{eval, mix, Ctx};
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, FeedSource, GroupId, ModuleId, Program, RuleId};
use bloomc_grammar::ast::{CollectionKind, MergeOp};

/// A source of input facts for one input interface.
#[derive(Debug, Clone)]
pub enum Source {
    /// A seeded generator: `rows` rows, `batch` per tick, fields evaluated per row; with a
    /// `rate`, at most that many rows per second.
    Generate { rows: u64, batch: u64, seed: u64, rate: Option<u64>, fields: Vec<bloomc_compiler::ir::Expr> },
    /// Rows already read (from a file), split into ticks of `batch` rows. Shared, so a plan
    /// is cloned for every worker and node without copying them.
    Rows { rows: std::sync::Arc<Vec<Row>>, batch: usize },
    /// Rows already read, kept by column (`columns.rs`), split into ticks of `batch` rows:
    /// the compact form of a file's rows, and of rows a program hands over in columns.
    Columns { columns: std::sync::Arc<crate::columns::Columns>, batch: usize },
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub input: CollectionId,
    pub source: Source,
}

impl Feed {
    /// When batch `t` is due, counted from the node's start: `None` when the feed has no
    /// rate (every batch is due at once).
    pub fn due(&self, t: u64) -> Option<std::time::Duration> {
        match &self.source {
            Source::Generate { batch, rate: Some(rate), .. } => {
                Some(std::time::Duration::from_secs_f64(t as f64 * *batch as f64 / (*rate).max(1) as f64))
            }
            _ => None,
        }
    }

    /// How many ticks this feed needs.
    pub fn ticks(&self) -> u64 {
        match &self.source {
            Source::Generate { rows, batch, .. } => rows.div_ceil((*batch).max(1)),
            Source::Rows { rows, batch } => (rows.len() as u64).div_ceil((*batch).max(1) as u64),
            Source::Columns { columns, batch } => (columns.len() as u64).div_ceil((*batch).max(1) as u64),
        }
    }

    /// The rows of tick `t` that worker `worker` of `workers` produces (rows are dealt out
    /// round-robin by row number, so the union over workers is the same for any count).
    pub fn batch(&self, t: u64, instance: u32, worker: usize, workers: usize, errors: &mut u64) -> Vec<Row> {
        let mut out = Vec::new();
        self.visit(t, instance, (worker, workers), errors, &mut |row| out.push(row.clone()));
        out
    }

    /// Calls `f` on each row of batch `t` that belongs to `worker` of `workers` (the rows
    /// whose number modulo `workers` is `worker`), without copying rows read from a file.
    /// Returns how many rows it visited; a generated row whose field fails to evaluate is
    /// counted in `errors` instead.
    pub fn visit(
        &self,
        t: u64,
        instance: u32,
        (worker, workers): (usize, usize),
        errors: &mut u64,
        f: &mut dyn FnMut(&Row),
    ) -> u64 {
        let mut visited = 0;
        match &self.source {
            Source::Generate { rows, batch, seed, fields, .. } => {
                let start = t.saturating_mul(*batch);
                let end = start.saturating_add(*batch).min(*rows);
                for row in start..end {
                    if (row % workers as u64) as usize != worker {
                        continue;
                    }
                    let mut values = Row::new();
                    let mut failed = false;
                    for (i, f) in fields.iter().enumerate() {
                        let ctx = Ctx { instance, row, seed: mix(*seed ^ mix(i as u64)) };
                        match eval(f, &[] as &[&Row], &ctx, &[]) {
                            Ok(v) => values.push(v),
                            Err(_) => failed = true,
                        }
                    }
                    if failed {
                        *errors += 1;
                    } else {
                        f(&values);
                        visited += 1;
                    }
                }
            }
            Source::Rows { rows, batch } => {
                let start = (t as usize).saturating_mul(*batch);
                for (i, r) in rows.iter().enumerate().skip(start).take(*batch) {
                    if i % workers == worker {
                        f(r);
                        visited += 1;
                    }
                }
            }
            Source::Columns { columns, batch } => {
                let start = (t as usize).saturating_mul(*batch);
                for i in start..start.saturating_add(*batch).min(columns.len()) {
                    if i % workers == worker {
                        f(&columns.row(i));
                        visited += 1;
                    }
                }
            }
        }
        visited
    }
}

/// The feed of rows read from a file: kept by column (`columns.rs`), or as rows when one
/// does not fit the input's schema (which `input::read` rules out).
fn file_source(p: &Program, input: CollectionId, rows: &[Row], batch: usize) -> Source {
    let types: Vec<bloomc_compiler::ir::Type> =
        p.collection(input).map(|c| c.columns.iter().map(|col| col.ty).collect()).unwrap_or_default();
    match crate::columns::Columns::from_rows(&types, rows) {
        Some(columns) => Source::Columns { columns: std::sync::Arc::new(columns), batch },
        None => Source::Rows { rows: std::sync::Arc::new(rows.to_vec()), batch },
    }
}

/// The executable shape of one node.
#[derive(Debug, Clone)]
pub struct NodePlan {
    pub module: ModuleId,
    /// The node group this node is an instance of (none for a module run without a system).
    pub group: Option<GroupId>,
    pub instance: u32,
    pub node_name: String,
    /// `<=` rules, grouped by the stratum of their target, lowest first.
    pub strata: Vec<Vec<RuleId>>,
    pub deferred: Vec<RuleId>,
    pub deletes: Vec<RuleId>,
    pub sends: Vec<RuleId>,
    pub feeds: Vec<Feed>,
    /// Fed inputs with a declared seal, and the seal's columns: each key's rows are
    /// delivered together, in the tick of the key's last row (`fed.rs`).
    pub sealed_feeds: Vec<(CollectionId, Vec<usize>)>,
    /// Reads protected by a sealed feed: (read input, sealed input, the read's columns in
    /// the order of the seal's; none when the read does not carry the seal's key).
    pub fed_reads: Vec<(CollectionId, CollectionId, Vec<usize>)>,
    /// (output, input) pairs wired from this node to itself.
    pub loopback: Vec<(CollectionId, CollectionId)>,
}

impl NodePlan {
    pub fn collections(&self, p: &Program, kind: CollectionKind) -> Vec<CollectionId> {
        p.module(self.module)
            .map(|m| {
                m.collections.iter().copied().filter(|&c| p.collection(c).is_some_and(|x| x.kind == kind)).collect()
            })
            .unwrap_or_default()
    }

    /// Ticks needed to consume every feed.
    pub fn feed_ticks(&self) -> u64 {
        self.feeds.iter().map(Feed::ticks).max().unwrap_or(0)
    }

    /// When tick `t`'s feed batches are due (the latest of the paced feeds that still have a
    /// batch at `t`), counted from the node's start; `None` when none is paced.
    pub fn due(&self, t: u64) -> Option<std::time::Duration> {
        self.feeds.iter().filter(|f| t < f.ticks()).filter_map(|f| f.due(t)).max()
    }
}

/// File feeds as empty files, for describing a program without reading its files.
fn no_files(p: &Program) -> Vec<(CollectionId, Vec<Row>, usize)> {
    p.system
        .iter()
        .flat_map(|s| s.feeds.iter())
        .filter(|f| matches!(f.source, FeedSource::File { .. }))
        .map(|f| (f.to.collection, Vec::new(), 1))
        .collect()
}

/// The plan with file feeds left out (for describing a program without reading its files).
pub fn plan_without_files(p: &Program) -> Result<NodePlan, String> {
    plan(p, &no_files(p))
}

/// The network's plans with file feeds left out.
pub fn network_without_files(p: &Program) -> Result<Vec<NodePlan>, String> {
    plan_network(p, &no_files(p))
}

/// The plan of the program's one node. `files` holds the rows read for file feeds and
/// `--input` files: (input, rows, rows per tick). Errors say why the program cannot run on
/// one node (yet).
pub fn plan(p: &Program, files: &[(CollectionId, Vec<Row>, usize)]) -> Result<NodePlan, String> {
    let (module, group, node_name, mut feeds, loopback) = match &p.system {
        Some(s) => {
            let [g] = s.groups.as_slice() else {
                return Err(format!(
                    "system `{}` has {} node groups: it runs as a network of nodes (`network::network`, or one process per node), not as one node",
                    s.name,
                    s.groups.len()
                ));
            };
            if g.count != 1 {
                return Err(format!(
                    "node group `{}` has {} instances: it runs as a network of nodes, not as one node",
                    g.name, g.count
                ));
            }
            check_file_feeds(p, files)?;
            let loopback = s.wires.iter().map(|w| (w.from.collection, w.to.collection)).collect();
            (g.module, Some(g.id), g.name.clone(), group_feeds(p, g.id), loopback)
        }
        None => {
            let with_rules: Vec<_> = p.modules.iter().filter(|m| !m.rules.is_empty()).collect();
            let [m] = with_rules.as_slice() else {
                return Err(
                    "the program has no system and more than one module with rules: declare a system".to_string()
                );
            };
            (m.id, None, m.name.clone(), Vec::new(), Vec::new())
        }
    };
    for (input, rows, batch) in files {
        feeds.push(Feed { input: *input, source: file_source(p, *input, rows, *batch) });
    }
    let (strata, deferred, deletes, sends) = phases(p, module)?;
    let sealed_feeds = group.map(|g| crate::fed::sealed_feeds(p, g, &feeds)).unwrap_or_default();
    let fed_reads = group.map(|g| crate::fed::fed_reads(p, g, &sealed_feeds)).unwrap_or_default();
    Ok(NodePlan {
        module,
        group,
        instance: 0,
        node_name,
        strata,
        deferred,
        deletes,
        sends,
        feeds,
        sealed_feeds,
        fed_reads,
        loopback,
    })
}

/// The generated feeds of a group (file feeds are read by the caller and arrive in `files`).
fn group_feeds(p: &Program, group: GroupId) -> Vec<Feed> {
    p.system
        .iter()
        .flat_map(|s| s.feeds.iter())
        .filter(|f| f.to.group == group)
        .filter_map(|f| match &f.source {
            FeedSource::Generate { rows, seed, batch, rate, fields } => Some(Feed {
                input: f.to.collection,
                source: Source::Generate {
                    rows: *rows,
                    batch: *batch,
                    seed: *seed,
                    rate: *rate,
                    fields: fields.clone(),
                },
            }),
            FeedSource::File { .. } => None,
        })
        .collect()
}

/// Every file feed of the system must have been read into `files`.
fn check_file_feeds(p: &Program, files: &[(CollectionId, Vec<Row>, usize)]) -> Result<(), String> {
    let Some(s) = &p.system else { return Ok(()) };
    for f in &s.feeds {
        if let FeedSource::File { path } = &f.source {
            if !files.iter().any(|(c, _, _)| *c == f.to.collection) {
                let group = s.groups.iter().find(|g| g.id == f.to.group).map_or("?", |g| g.name.as_str());
                return Err(format!(
                    "the feed of `{group}.{}` from file \"{path}\" was not read",
                    p.collection_name(f.to.collection)
                ));
            }
        }
    }
    Ok(())
}

/// The rules of module `module` sorted into phases, `<=` rules by stratum.
type Phases = (Vec<Vec<RuleId>>, Vec<RuleId>, Vec<RuleId>, Vec<RuleId>);

fn phases(p: &Program, module: ModuleId) -> Result<Phases, String> {
    let m = p.module(module).ok_or("unknown module")?;
    let mut strata: Vec<Vec<RuleId>> = Vec::new();
    let (mut deferred, mut deletes, mut sends) = (Vec::new(), Vec::new(), Vec::new());
    for &r in &m.rules {
        let Some(rule) = p.rule(r) else { continue };
        match rule.op {
            MergeOp::Instant => {
                let s = p.collection(rule.target).map_or(0, |c| c.stratum) as usize;
                if strata.len() <= s {
                    strata.resize(s + 1, Vec::new());
                }
                if let Some(v) = strata.get_mut(s) {
                    v.push(r);
                }
            }
            MergeOp::Deferred => deferred.push(r),
            MergeOp::Delete => deletes.push(r),
            MergeOp::Async => sends.push(r),
        }
    }
    Ok((strata, deferred, deletes, sends))
}

/// One plan per node instance of the system, group by group: what `network::network` runs
/// in one process, and `mesh::node_process` one node per process. Wires are left to the transport (no loopback inside a node), and a group's file
/// feed goes to each of its instances. Instance `i` of group `g` is named `g[i]`, or `g`
/// when the group has one instance.
pub fn plan_network(p: &Program, files: &[(CollectionId, Vec<Row>, usize)]) -> Result<Vec<NodePlan>, String> {
    let s = p.system.as_ref().ok_or("the program has no system to run as a network")?;
    check_file_feeds(p, files)?;
    let mut plans = Vec::new();
    for g in &s.groups {
        let (strata, deferred, deletes, sends) = phases(p, g.module)?;
        let mut feeds = group_feeds(p, g.id);
        // The group's own file feeds (two groups of one module share input ids, so match the
        // system's feeds of this group, not the module's inputs).
        let own: Vec<CollectionId> = s
            .feeds
            .iter()
            .filter(|f| f.to.group == g.id && matches!(f.source, FeedSource::File { .. }))
            .map(|f| f.to.collection)
            .collect();
        for (input, rows, batch) in files.iter().filter(|(c, _, _)| own.contains(c)) {
            feeds.push(Feed { input: *input, source: file_source(p, *input, rows, *batch) });
        }
        let sealed_feeds = crate::fed::sealed_feeds(p, g.id, &feeds);
        let fed_reads = crate::fed::fed_reads(p, g.id, &sealed_feeds);
        for instance in 0..g.count {
            let node_name = if g.count == 1 { g.name.clone() } else { format!("{}[{instance}]", g.name) };
            plans.push(NodePlan {
                module: g.module,
                group: Some(g.id),
                instance,
                node_name,
                strata: strata.clone(),
                deferred: deferred.clone(),
                deletes: deletes.clone(),
                sends: sends.clone(),
                feeds: feeds.clone(),
                sealed_feeds: sealed_feeds.clone(),
                fed_reads: fed_reads.clone(),
                loopback: Vec::new(),
            });
        }
    }
    Ok(plans)
}

/// The plan in words, for `bloomc dump plan`: per rule, its phase and the dataflow operators
/// it becomes, in the order the renderer builds them.
pub fn describe(p: &Program, plan: &NodePlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ =
        writeln!(out, "node {} (module {})", plan.node_name, p.module(plan.module).map_or("?", |m| m.name.as_str()));
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
    if plan.loopback.is_empty() {
        // In a network, the wires from this node's group go through the transport.
        for w in p.system.iter().flat_map(|s| s.wires.iter()).filter(|w| Some(w.from.group) == plan.group) {
            let to = p
                .system
                .iter()
                .flat_map(|s| s.groups.iter())
                .find(|g| g.id == w.to.group)
                .map_or("?", |g| g.name.as_str());
            let how = match &w.delivery {
                bloomc_compiler::ir::Delivery::Broadcast => "broadcast".to_string(),
                bloomc_compiler::ir::Delivery::Partition(cols) => format!("partition on columns {cols:?}"),
                bloomc_compiler::ir::Delivery::Any => "any one instance".to_string(),
                bloomc_compiler::ir::Delivery::Reply(c) => format!("reply to the instance in column {c}"),
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
    let paths = crate::paths::paths(p, plan);
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
        if paths.column_folded.contains(&c) {
            let _ = writeln!(
                out,
                "  input {}: insert-only, read only by folds; on one worker the driver checks and folds its facts a column at a time (column fold), before the dataflow",
                p.collection_name(c)
            );
        } else if paths.prefolded_inputs.contains(&c) {
            let _ = writeln!(
                out,
                "  input {}: insert-only, read only by folds; on one worker the driver folds its facts before the dataflow",
                p.collection_name(c)
            );
        } else if paths.insert_only_inputs.contains(&c) {
            let _ = writeln!(out, "  input {}: insert-only (read only into accumulating tables)", p.collection_name(c));
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
    let phases: [(&str, Vec<RuleId>); 4] = [
        ("<=", plan.strata.iter().flatten().copied().collect()),
        ("<+", plan.deferred.clone()),
        ("<-", plan.deletes.clone()),
        ("<~", plan.sends.clone()),
    ];
    // Joins share the arrangement of their right side per scope, collection and key columns
    // (`render::Shared`): count the joins that read each. A `<=` rule into a recursive
    // collection is rendered in its component's iterative scope; every other in the node's.
    let scope_of = |phase: &str, rule: &bloomc_compiler::ir::Rule| -> Option<usize> {
        let inner = phase == "<=" && paths.recursive.contains(&rule.target);
        inner.then(|| paths.order.iter().position(|c| c.contains(&rule.target))).flatten()
    };
    let arrangement = |phase: &str, rule: &bloomc_compiler::ir::Rule, i: usize| {
        let cols: Vec<usize> = crate::render::join_on(&rule.body, i).into_iter().map(|(_, _, c)| c).collect();
        (scope_of(phase, rule), rule.body.atoms.get(i).map(|a| a.collection), cols)
    };
    let mut readers: std::collections::BTreeMap<_, usize> = std::collections::BTreeMap::new();
    for (phase, rules) in &phases {
        for rule in rules.iter().filter_map(|r| p.rule(*r)) {
            for i in 1..rule.body.atoms.len() {
                *readers.entry(arrangement(phase, rule, i)).or_default() += 1;
            }
        }
    }
    for (phase, rules) in phases {
        for r in rules {
            let Some(rule) = p.rule(r) else { continue };
            let b = &rule.body;
            let mut ops: Vec<String> = Vec::new();
            let names: Vec<&str> = b.atoms.iter().map(|a| p.collection_name(a.collection)).collect();
            if let Some(first) = names.first() {
                ops.push(format!("scan {first}"));
            }
            for (i, n) in names.iter().enumerate().skip(1) {
                let key = arrangement(phase, rule, i);
                let shared = match readers.get(&key).copied().unwrap_or(0) {
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
            if !b.filters.is_empty() {
                ops.push(format!("filter ({})", b.filters.len()));
            }
            for a in &b.antijoins {
                ops.push(format!("antijoin distinct {}", p.collection_name(a.collection)));
            }
            if let Some(keys) = &b.group_by {
                let counts = crate::eval::counts_only(b.head.iter().chain(b.having.iter()));
                let unique = b.atoms.first().is_some_and(|a| paths.unique.contains(&a.collection));
                let dedup = if unique { "rows never repeat" } else { "deduplicate new rows" };
                let place = if paths.prefolded.contains(&r) {
                    "; on one worker, in the driver before the dataflow"
                } else {
                    ""
                };
                ops.push(if paths.column_folds.contains(&r) {
                    format!("fold per group (column fold: {dedup}, int columns folded a column at a time, never retract{place})")
                } else if paths.folds.contains(&r) {
                    format!("fold per group (fold path: {dedup}, update accumulators, never retract{place})")
                } else if counts && !keys.is_empty() {
                    "count per group (count path: no bindings kept)".to_string()
                } else {
                    "reduce (group, aggregate, having)".to_string()
                });
            }
            if crate::paths::copies(p, rule) {
                ops.push("copy (no operator)".to_string());
            } else {
                ops.push("map head".to_string());
            }
            let stratum = p.collection(rule.target).map_or(0, |c| c.stratum);
            let target = p.collection_name(rule.target);
            let end = match phase {
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
            };
            ops.push(end);
            let _ = writeln!(out, "  r{} {target} {phase}: {}", r.0, ops.join(" -> "));
        }
    }
    out.push_str(
        "  aggregates over tables that only grow (no `<-`) with count/sum(int)/min/max fold; other counts use the count path; the rest reduce\n",
    );
    out
}
