//! The only strait code that talks to the kernel through netlink: links,
//! addresses, routes; plus namespace entry and sysctls. Synchronous on
//! purpose: the CNI plugin is a short-lived single-threaded process, and the
//! agent drives it from one dedicated thread.

pub mod address;
pub mod conntrack;
pub mod link;
pub mod neighbour;
pub mod netlink;
pub mod netns;
mod nfnl;
pub mod nft;
pub mod nft_batch;
pub mod nft_copy;
pub mod nft_read;
pub mod route;
pub mod sysctl;

pub use netlink::{Netlink, NetlinkError};
pub use netns::NetnsHandle;
