//! `strait-ipam`: the in-process IP address manager of the `strait-cni` plugin.
//!
//! It accepts the reference `host-local` IPAM plugin's config schema ([`IpamConfig`],
//! validated into [`RangeSet`]s) and keeps allocations in an on-disk [`Store`] laid out
//! like host-local's. The store is crash-safe and concurrency-safe: many plugin processes
//! at once, or a `kill -9` at any instant, never give one address to two attachments.

mod config;
mod disk;
mod error;
mod range;
mod store;

pub use config::{IpamConfig, RangeConfig, RouteConfig};
pub use error::IpamError;
pub use range::{range_set_from_cidr, Range, RangeSet};
pub use store::{Allocation, AttachmentId, Store};
