//! The allocation store: which attachment holds which address, and the policy for
//! handing addresses out (idempotent, all-or-nothing, round-robin). Every operation
//! runs under the directory's exclusive lock; the file layout lives in `disk`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::disk;
use crate::range::{RangeSet, SetProblem};
use crate::IpamError;

/// The CNI attachment an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachmentId {
    pub container_id: String,
    pub ifname: String,
}

/// An address handed to an attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The address with its subnet's prefix length.
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// Allocations of one network, kept in one directory. Cheap to clone; safe to share
/// between threads and processes (each operation takes the directory's flock anew).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `dir` is dataDir joined with the network name; created if missing.
    pub fn open(dir: &Path) -> Result<Store, IpamError> {
        disk::ensure_dir(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One address from each range set, in order. Idempotent: if `id` already holds an
    /// address inside a set, that one is returned. All-or-nothing: if a later set is
    /// exhausted, addresses taken by this call are released before returning the error.
    pub fn allocate(
        &self,
        id: &AttachmentId,
        sets: &[RangeSet],
    ) -> Result<Vec<Allocation>, IpamError> {
        check_id(id)?;
        for (i, set) in sets.iter().enumerate() {
            set.check().map_err(|p| invalid_set(i, set, p))?;
        }
        let _lock = disk::lock(&self.dir)?;
        let mut scan = disk::scan(&self.dir)?;
        // Opportunistic: a failure here only leaves litter that gc reports.
        for temp in &scan.temps {
            let _ = disk::remove_if_present(temp);
        }
        let mut taken = Vec::new();
        let mut result = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            match self.allocate_in_set(i, set, id, &mut scan.allocations, &result, &mut taken) {
                Ok(a) => result.push(a),
                Err(e) => {
                    // Best effort: the error at hand matters more than a failed undo,
                    // and a leftover allocation is still released by DEL or gc.
                    for ip in taken {
                        let _ = disk::remove_allocation(&self.dir, ip);
                    }
                    return Err(e);
                }
            }
        }
        Ok(result)
    }

    fn allocate_in_set(
        &self,
        index: usize,
        set: &RangeSet,
        id: &AttachmentId,
        allocations: &mut BTreeMap<IpAddr, AttachmentId>,
        chosen: &[Allocation],
        taken: &mut Vec<IpAddr>,
    ) -> Result<Allocation, IpamError> {
        let in_result = |ip: IpAddr| chosen.iter().any(|a| a.address.addr() == ip);
        let held = allocations
            .iter()
            .filter(|(ip, owner)| *owner == id && !in_result(**ip))
            .find_map(|(ip, _)| set.find(*ip).map(|r| (*ip, r)));
        if let Some((ip, range)) = held {
            return Ok(allocation(ip, range.subnet, range.gateway));
        }
        let size = set.size();
        let used = allocations
            .keys()
            .filter(|ip| set.find(**ip).is_some())
            .count() as u128;
        let exhausted = |used| IpamError::Exhausted {
            set: index,
            ranges: set.to_string(),
            used,
            size,
        };
        if used >= size {
            return Err(exhausted(used));
        }
        let last = disk::read_last_reserved(&self.dir, index);
        for (range, ip) in set.candidates_after(last) {
            if !range.is_allocatable(ip) || allocations.contains_key(&ip) {
                continue;
            }
            if !disk::create_allocation(&self.dir, ip, id)? {
                // Not in our listing yet present: a file we cannot see as ours; skip it.
                continue;
            }
            taken.push(ip);
            allocations.insert(ip, id.clone());
            disk::write_last_reserved(&self.dir, index, ip)?;
            return Ok(allocation(ip, range.subnet, range.gateway));
        }
        Err(exhausted(used))
    }

    /// Releases every address held by `id`; returns them (empty if none: idempotent).
    pub fn release(&self, id: &AttachmentId) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let scan = disk::scan(&self.dir)?;
        self.remove_where(&scan.allocations, |owner| owner == id)
    }

    /// Addresses held by `id`, sorted.
    pub fn get(&self, id: &AttachmentId) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let scan = disk::scan(&self.dir)?;
        Ok(scan
            .allocations
            .into_iter()
            .filter(|(_, owner)| owner == id)
            .map(|(ip, _)| ip)
            .collect())
    }

    /// Releases every allocation whose attachment is not in `valid` and removes stale
    /// temporary files; returns the released addresses.
    pub fn gc(&self, valid: &[AttachmentId]) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let scan = disk::scan(&self.dir)?;
        for temp in &scan.temps {
            disk::remove_if_present(temp)?;
        }
        let valid: HashSet<&AttachmentId> = valid.iter().collect();
        self.remove_where(&scan.allocations, |owner| !valid.contains(owner))
    }

    /// Every allocation in the store, sorted by address.
    pub fn allocations(&self) -> Result<Vec<(IpAddr, AttachmentId)>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        Ok(disk::scan(&self.dir)?.allocations.into_iter().collect())
    }

    /// Err if the directory cannot be created, written or locked (for CNI STATUS).
    pub fn check_writable(&self) -> Result<(), IpamError> {
        let _lock = disk::lock(&self.dir)?;
        disk::probe_write(&self.dir)
    }

    fn remove_where(
        &self,
        allocations: &BTreeMap<IpAddr, AttachmentId>,
        doomed: impl Fn(&AttachmentId) -> bool,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let mut released = Vec::new();
        for (ip, owner) in allocations {
            if doomed(owner) && disk::remove_allocation(&self.dir, *ip)? {
                released.push(*ip);
            }
        }
        Ok(released)
    }
}

fn allocation(ip: IpAddr, subnet: IpNet, gateway: Option<IpAddr>) -> Allocation {
    Allocation {
        // The prefix comes from a validated subnet of the same family, so this holds.
        address: IpNet::new(ip, subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip)),
        gateway,
    }
}

/// Rejects ids that host-local's `"{container_id}\r\n{ifname}"` format cannot hold.
fn check_id(id: &AttachmentId) -> Result<(), IpamError> {
    let fields = [("container_id", &id.container_id), ("ifname", &id.ifname)];
    for (field, value) in fields {
        let message = if value.trim().is_empty() {
            "must not be empty"
        } else if value.contains(['\r', '\n']) || value.trim() != value {
            "must not contain line breaks or surrounding whitespace"
        } else {
            continue;
        };
        return Err(IpamError::InvalidAttachment {
            field,
            value: value.clone(),
            message,
        });
    }
    Ok(())
}

fn invalid_set(index: usize, set: &RangeSet, problem: SetProblem) -> IpamError {
    let message = match problem {
        SetProblem::Empty => "is empty".to_string(),
        SetProblem::Range(j, p) => {
            let field = match p.field.json_name() {
                "" => String::new(),
                name => format!(" {name}"),
            };
            format!("range {j}{field}: {}", p.message)
        }
        SetProblem::MixedFamilies(j) => format!("range {j} is of another IP family than range 0"),
        SetProblem::Overlap { index: j, other } => {
            let span = |k: usize| set.0.get(k).map(|r| r.span()).unwrap_or_default();
            format!(
                "range {j} ({}) overlaps range {other} ({})",
                span(j),
                span(other)
            )
        }
    };
    IpamError::InvalidRangeSet {
        set: index,
        message,
    }
}
