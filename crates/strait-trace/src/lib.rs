//! strait-trace: says why a packet does or does not get through, from the
//! nodes' compiled Plans (docs/trace.md).
//!
//! Pure: no kernel, no files. The caller builds a [`World`] (every node's
//! Plan, pods, Services, and the routers and hosts around the cluster) and
//! calls [`trace`]; the result lists every hop, every nft rule that
//! decided something, NAT, and the verdict, with the answer's way back.
//!
//! - [`nft_eval`]: the interpreter of the nftables IR (one hook at a time).
//! - [`routes`]: route lookups on nodes, routers and hosts.
//! - [`walk`]: the hop-by-hop walk, forward and back.
//! - [`world`]: the inputs, and names for addresses.
//! - [`policy_why`]: the policy and rule that allowed or dropped a packet.
//! - [`report`]: the result, for people and as JSON.

pub mod nft_eval;
pub mod packet;
pub mod policy_why;
pub mod report;
pub mod routes;
pub mod walk;
pub mod world;

pub use packet::{parse_proto, Packet};
pub use report::{Pick, Step, Trace, Verdict};
pub use walk::{trace, Options};
pub use world::{BoxView, NodeView, PodView, ServiceView, Start, World};
