//! nftables: the typed ruleset IR ([`ir`]), its renderer to an nft script
//! ([`mod@render`]) and the incremental update between two versions of a
//! table ([`incremental`]). `strait trace` (crate strait-trace) evaluates
//! the same IR.

pub mod incremental;
pub mod ir;
pub mod render;
pub mod wire;

pub use ir::*;
pub use render::{render, render_skeleton};
