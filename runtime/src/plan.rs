//! What one node runs: its module's rules sorted by phase and stratum, its feeds, and the
//! loopback wires that deliver its own `<~` outputs back to its inputs next tick.

use crate::feed::{file_source, Feed, Source};
use crate::value::Row;
use bloomc_compiler::ir::{CollectionId, FeedSource, GroupId, ModuleId, Program, RuleId};
use bloomc_grammar::ast::{CollectionKind, MergeOp};

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
