//! The paper's experiment across processes: `cargo bench --bench experiment -- --processes`.
//! Every run is `bloomc run examples/adtrack.bl --processes` (every node its own process,
//! facts sent straight from node to node), with the CAMPAIGN query, 3 reporting replicas and
//! 5 or 10 ad servers, under `none`, `order` (the replicas sequenced by the embedded ordering
//! service, and by Apache ZooKeeper: a server this program starts on a loopback port, when
//! Debian's `zookeeper` package is installed), `seal`, and `independent seal` with its own
//! `none, mastered` baseline; with
//! `--link-delay-ms D` every node delays each data frame it sends by D ms and each request to
//! the ordering service by 2D (a model of a datacenter network). It reads each run's
//! `--summary-json`, writes `docs/experiment/processes.csv` and `processes_5.svg`,
//! `processes_10.svg` (records processed by the replicas over time), and prints a table with
//! each strategy's completion time against `none` on the same workload.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

/// One strategy's run: how long the nodes ran (from the start of their run to their last
/// tick), the replicas' records over time, and what the summary measured.
pub struct Measured {
    pub strategy: String,
    pub adservers: u32,
    pub completion_s: f64,
    pub records: Vec<(f64, u64)>,
    pub disagreements: u64,
    pub seal_wait_ms: Option<f64>,
}

/// The options of the processes experiment.
pub struct Setup {
    pub clicks: u64,
    pub rate: u64,
    pub link_delay_ms: u64,
}

/// How a strategy runs: its `--coordination`, whether ad servers master their campaigns, and
/// its ordering service (`--order-service`), if any.
struct Strategy {
    name: &'static str,
    mastered: bool,
    coordination: &'static str,
    service: Option<String>,
}

fn run_one(setup: &Setup, adservers: u32, s: &Strategy, json: &Path) -> Result<(), String> {
    let (mastered, coordination) = (s.mastered, s.coordination);
    let sets = [
        "query=CAMPAIGN".to_string(),
        format!("adservers={adservers}"),
        format!("clicks={}", setup.clicks),
        format!("mastered={mastered}"),
        format!("rate={}", setup.rate),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bloomc"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(["run", "examples/adtrack.bl", "--processes"]);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    cmd.args(["--coordination", coordination, "--max-ticks", "1000000", "--summary-json"]).arg(json);
    cmd.args(["--link-delay-ms", &setup.link_delay_ms.to_string()]);
    if let Some(service) = &s.service {
        cmd.args(["--order-service", service]);
    }
    let out = cmd.output().map_err(|e| format!("cannot start bloomc: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!("bloomc run ({coordination}, {adservers} ad servers) failed: {}", tail.join(" | ")));
    }
    Ok(())
}

fn measure(setup: &Setup, adservers: u32, s: &Strategy) -> Result<Measured, String> {
    let strategy = s.name;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment-processes");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = dir.join(format!("{adservers}-{}.json", strategy.replace([' ', ',', '(', ')'], "_")));
    run_one(setup, adservers, s, &json)?;
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let pairs = |x: &serde_json::Value| -> Vec<(f64, u64)> {
        x.as_array().into_iter().flatten().filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_u64()?))).collect()
    };
    let all = pairs(&v["records_over_time"]);
    Ok(Measured {
        strategy: strategy.to_string(),
        adservers,
        completion_s: all.last().map_or(0.0, |(t, _)| *t),
        records: pairs(&v["records_over_time_by_group"]["report"]),
        disagreements: v["replica_disagreements"].as_u64().unwrap_or(0),
        seal_wait_ms: v["seal_wait_ms"]["mean"].as_f64(),
    })
}

/// Runs every strategy at 5 and 10 ad servers; writes the CSV and plots; prints the table.
pub fn main(
    setup: &Setup,
    plot: impl Fn(&[(String, Vec<(f64, u64)>)], &str, &Path) -> Result<(), String>,
) -> Result<(), String> {
    let zk = if Path::new("/usr/share/java/zookeeper.jar").is_file() {
        super::zk_server::server()
    } else {
        eprintln!("ZooKeeper is not installed (apt-get install zookeeper): the order (zookeeper) runs are left out");
        None
    };
    let strategy =
        |name, mastered, coordination, service: Option<String>| Strategy { name, mastered, coordination, service };
    let mut strategies = vec![
        strategy("none", false, "none", None),
        strategy("order (embedded)", false, "order", Some("embedded".to_string())),
    ];
    if let Some(zk) = &zk {
        strategies.push(strategy("order (zookeeper)", false, "order", Some(format!("zookeeper://{}", zk.addr()))));
    }
    strategies.push(strategy("seal", false, "seal", None));
    strategies.push(strategy("none, mastered", true, "none", None));
    strategies.push(strategy("independent seal", true, "seal", None));
    let mut runs = Vec::new();
    for adservers in [5u32, 10] {
        for s in &strategies {
            eprintln!("running {} at {adservers} ad servers, one process per node ...", s.name);
            runs.push(measure(setup, adservers, s)?);
        }
    }
    drop(zk);
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiment");
    std::fs::create_dir_all(&docs).map_err(|e| format!("{}: {e}", docs.display()))?;
    let mut csv = String::from("strategy,adservers,seconds,records\n");
    for r in &runs {
        for (t, n) in &r.records {
            let _ = writeln!(csv, "{},{},{t:.4},{n}", r.strategy, r.adservers);
        }
    }
    let csv_path = docs.join("processes.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    for adservers in [5u32, 10] {
        let series: Vec<(String, Vec<(f64, u64)>)> =
            runs.iter().filter(|r| r.adservers == adservers).map(|r| (r.strategy.clone(), r.records.clone())).collect();
        let title = format!(
            "CAMPAIGN, {adservers} ad servers, 3 replicas, one process per node, link delay {} ms",
            setup.link_delay_ms
        );
        plot(&series, &title, &docs.join(format!("processes_{adservers}.svg")))?;
    }
    println!(
        "CAMPAIGN, 3 replicas, {} clicks per ad server (at most {}/s each), one process per node, link delay {} ms",
        setup.clicks, setup.rate, setup.link_delay_ms
    );
    println!(
        "{:>9} {:>17} {:>10} {:>12} {:>13} {:>12} {:>14}",
        "adservers", "strategy", "records", "completion s", "disagreements", "seal wait ms", "vs none"
    );
    for r in &runs {
        let base =
            if r.strategy.contains("mastered") || r.strategy == "independent seal" { "none, mastered" } else { "none" };
        let none =
            runs.iter().find(|x| x.adservers == r.adservers && x.strategy == base).map_or(f64::NAN, |x| x.completion_s);
        let wait = r.seal_wait_ms.map_or("-".to_string(), |w| format!("{w:.1}"));
        println!(
            "{:>9} {:>17} {:>10} {:>12.3} {:>13} {:>12} {:>13.2}x",
            r.adservers,
            r.strategy,
            r.records.last().map_or(0, |(_, n)| *n),
            r.completion_s,
            r.disagreements,
            wait,
            r.completion_s / none.max(1e-9)
        );
    }
    println!("wrote {} and processes_5.svg, processes_10.svg beside it", csv_path.display());
    Ok(())
}
