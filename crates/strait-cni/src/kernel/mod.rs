//! The only code in the plugin that talks to the kernel: netlink requests for
//! links, addresses and routes, namespace entry, sysctls.

pub mod address;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod route;
pub mod sysctl;

pub use netlink::{Netlink, NetlinkError};
pub use netns::NetnsHandle;
