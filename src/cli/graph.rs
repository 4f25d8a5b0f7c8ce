//! `bloomc graph FILE -o out.svg`: the labelled component graph as SVG, drawn in Rust by
//! layout-rs from the same DOT that `analyze --format dot` prints.

use super::analyze::run_analysis;
use super::args::ProgramArgs;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Graph {
    #[command(flatten)]
    program: ProgramArgs,
    /// Where to write the SVG.
    #[arg(short, long)]
    output: std::path::PathBuf,
    /// Grey-box files with variants: which one to draw.
    #[arg(long)]
    variant: Option<String>,
}

/// Lays out DOT text and renders SVG. layout-rs panics on some inputs; that becomes an error.
pub fn svg(dot: &str) -> Result<String, String> {
    let dot = dot.to_string();
    std::panic::catch_unwind(move || {
        let mut parser = layout::gv::DotParser::new(&dot);
        let ast = parser.process().map_err(|e| format!("internal DOT could not be parsed: {e}"))?;
        let mut builder = layout::gv::GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut graph = builder.get();
        let mut writer = layout::backends::svg::SVGWriter::new();
        graph.do_it(false, false, false, &mut writer);
        Ok(writer.finalize())
    })
    .unwrap_or_else(|_| {
        Err("the layout engine failed on this graph; use `bloomc analyze --format dot` with Graphviz".to_string())
    })
}

impl Graph {
    pub fn run(self) -> Result<ExitCode, String> {
        let outcome = run_analysis(&self.program, self.variant.as_deref(), false)?;
        if outcome.errors > 0 {
            return Ok(ExitCode::from(1));
        }
        let [(_, a)] = outcome.analyses.as_slice() else {
            return Err("this file has several variants: pick one with `--variant`".to_string());
        };
        let svg = svg(&a.dot())?;
        std::fs::write(&self.output, svg).map_err(|e| format!("cannot write `{}`: {e}", self.output.display()))?;
        eprintln!("wrote {}", self.output.display());
        Ok(ExitCode::SUCCESS)
    }
}
