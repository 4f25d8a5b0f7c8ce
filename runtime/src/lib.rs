//! The bloomc runtime: renders one node's IR into a timely/differential dataflow at run time,
//! over generic rows, and drives it tick by tick with Bloom's semantics.
//!
//! All differential-generic code stays in this crate (`dataflow`), behind the non-generic
//! [`run::run`], so the compiler and the CLI build fast.

pub mod admission;
pub(crate) mod colfold;
pub mod columns;
pub mod control;
pub mod coordination;
pub mod coordinator;
pub mod dataflow;
pub mod describe;
mod ends;
pub mod eval;
mod fed;
pub mod feed;
pub mod fold;
pub(crate) mod foldop;
pub(crate) mod groups;
pub mod input;
pub(crate) mod keys;
pub mod mesh;
pub mod network;
pub mod order;
pub mod paths;
pub mod plan;
pub(crate) mod prefold;
mod records;
pub mod report;
pub(crate) mod rules;
pub mod run;
mod seal;
pub mod sim;
pub mod transport;
pub mod value;
pub mod wire;
