//! nftables: the typed ruleset IR ([`ir`]) and its renderer to an nft
//! script ([`mod@render`]). A packet evaluator (`strait trace`) will live here
//! too and walk the same IR.

pub mod diff;
pub mod incremental;
pub mod ir;
pub mod render;

pub use diff::element_changes;
pub use ir::*;
pub use render::render;
