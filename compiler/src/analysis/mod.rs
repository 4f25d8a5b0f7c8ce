//! Blazes coordination analysis: per-statement monotonicity, attribute lineage, module path
//! annotations, and (in `system`) stream labels over the whole system graph.

pub mod build;
pub mod coordination;
pub mod gates;
pub mod greybox;
pub mod labels;
pub mod lineage;
pub mod model;
pub mod paths;
pub mod report;
pub mod timing;
