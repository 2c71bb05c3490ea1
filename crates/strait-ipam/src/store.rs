//! The allocation store: which attachment holds which address, and the policy for
//! handing addresses out (idempotent, all-or-nothing, round-robin). Every operation
//! runs under the directory's exclusive lock; the file layout lives in `disk`.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::disk::{self, ToRead};
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
        let listing = disk::list(&self.dir)?;
        // Opportunistic: a failure here only leaves litter that gc reports.
        for temp in &listing.temps {
            let _ = disk::remove_if_present(&self.dir.join(temp));
        }
        let mut claims = Claims {
            listing: &listing,
            held: self.holdings(&listing, id, true)?,
            taken: Vec::new(),
        };
        let mut result = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            match self.allocate_in_set(i, set, id, &mut claims, &result) {
                Ok(a) => result.push(a),
                Err(e) => {
                    // Best effort: the error at hand matters more than a failed undo,
                    // and a leftover allocation is still released by DEL or gc.
                    let key = disk::key(id);
                    for ip in claims.taken {
                        if disk::remove_allocation(&self.dir, ip).is_ok() {
                            let _ = disk::remove_index(&self.dir, key, ip);
                        }
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
        claims: &mut Claims<'_>,
        chosen: &[Allocation],
    ) -> Result<Allocation, IpamError> {
        let Claims {
            listing,
            held,
            taken,
        } = claims;
        let in_result = |ip: IpAddr| chosen.iter().any(|a| a.address.addr() == ip);
        let mine = held
            .keys()
            .filter(|ip| !in_result(**ip))
            .find_map(|ip| set.find(*ip).map(|r| (*ip, r)));
        if let Some((ip, range)) = mine {
            return Ok(allocation(ip, range.subnet, range.gateway));
        }
        let size = set.size();
        // From names alone: every allocation file counts, whoever's it is.
        let listed = listing.allocations().iter().map(|f| f.ip);
        let used = listed
            .chain(taken.iter().copied())
            .filter(|ip| set.find(*ip).is_some());
        let used = used.count() as u128;
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
            let is_taken = listing.is_taken(ip) || taken.contains(&ip);
            if !range.is_allocatable(ip) || is_taken {
                continue;
            }
            if !disk::create_allocation(&self.dir, ip, id)? {
                // Not in our listing yet present: a file we cannot see as ours; skip it.
                continue;
            }
            taken.push(ip);
            held.insert(ip, true);
            disk::write_last_reserved(&self.dir, index, ip)?;
            return Ok(allocation(ip, range.subnet, range.gateway));
        }
        Err(exhausted(used))
    }

    /// The addresses `id` holds, each with whether it has its index link. Reads only
    /// the files that `id`'s index links name and any allocation files without an index
    /// link, so the files it opens do not grow with the number of allocations (the one
    /// directory listing does). Un-indexed files are read by every lookup, which keeps
    /// `allocate` idempotent and `release` complete for them. With `repair`,
    /// stale index links of `id`'s key are removed and allocation files without one get
    /// theirs (best effort), so a store written by host-local is read in full once.
    fn holdings(
        &self,
        listing: &disk::Listing,
        id: &AttachmentId,
        repair: bool,
    ) -> Result<BTreeMap<IpAddr, bool>, IpamError> {
        let key = disk::key(id);
        let mut held = BTreeMap::new();
        for file in listing.to_read(key) {
            match file {
                ToRead::Indexed(ip) => match disk::read_indexed(&self.dir, key, ip)? {
                    Some(owner) if owner == *id => {
                        held.insert(ip, true);
                    }
                    // Another attachment whose key is the same as `id`'s.
                    Some(_) => {}
                    None if repair => disk::remove_index(&self.dir, key, ip)?,
                    None => {}
                },
                ToRead::Unindexed(ip) => {
                    let Some((owner, _)) = disk::read_allocation(&self.dir, ip)? else {
                        continue;
                    };
                    let linked =
                        repair && disk::link_index(&self.dir, disk::key(&owner), ip).is_ok();
                    if owner == *id {
                        held.insert(ip, linked);
                    }
                }
            }
        }
        Ok(held)
    }

    /// Releases every address held by `id`; returns them (empty if none: idempotent).
    pub fn release(&self, id: &AttachmentId) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let listing = disk::list(&self.dir)?;
        let key = disk::key(id);
        let mut released = Vec::new();
        for (ip, linked) in self.holdings(&listing, id, true)? {
            // The allocation file first: a crash in between leaves a stale index link.
            if disk::remove_allocation(&self.dir, ip)? {
                released.push(ip);
            }
            if linked {
                disk::remove_index(&self.dir, key, ip)?;
            }
        }
        Ok(released)
    }

    /// Addresses held by `id`, sorted. Changes nothing on disk.
    pub fn get(&self, id: &AttachmentId) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let listing = disk::list(&self.dir)?;
        Ok(self.holdings(&listing, id, false)?.into_keys().collect())
    }

    /// Releases every allocation whose attachment is not in `valid`, removes stale
    /// temporary files and index links, and gives allocation files written without an
    /// index link (by host-local) theirs; returns the released addresses. Reads every
    /// allocation file.
    pub fn gc(&self, valid: &[AttachmentId]) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let listing = disk::list(&self.dir)?;
        for temp in &listing.temps {
            disk::remove_if_present(&self.dir.join(temp))?;
        }
        let files = self.read_all(&listing)?;
        // Live index links: the allocation file's own inode, named by its owner's key.
        let mut linked = HashSet::new();
        for link in &listing.index {
            let live = match files.get(&link.ip) {
                Some((owner, file)) => {
                    disk::key(owner) == link.key
                        && disk::index_file(&self.dir, link.key, link.ip)? == Some(*file)
                }
                None => false,
            };
            if live {
                linked.insert(link.ip);
            } else {
                disk::remove_index(&self.dir, link.key, link.ip)?;
            }
        }
        let valid: HashSet<&AttachmentId> = valid.iter().collect();
        let mut released = Vec::new();
        for (ip, (owner, _)) in files {
            let key = disk::key(&owner);
            if !valid.contains(&owner) {
                if disk::remove_allocation(&self.dir, ip)? {
                    released.push(ip);
                }
                if linked.contains(&ip) {
                    disk::remove_index(&self.dir, key, ip)?;
                }
            } else if !linked.contains(&ip) {
                disk::link_index(&self.dir, key, ip)?;
            }
        }
        Ok(released)
    }

    /// Every allocation in the store, sorted by address. Reads every allocation file.
    pub fn allocations(&self) -> Result<Vec<(IpAddr, AttachmentId)>, IpamError> {
        let _lock = disk::lock(&self.dir)?;
        let listing = disk::list(&self.dir)?;
        let files = self.read_all(&listing)?;
        Ok(files
            .into_iter()
            .map(|(ip, (owner, _))| (ip, owner))
            .collect())
    }

    /// Err if the directory cannot be created, written or locked (for CNI STATUS).
    pub fn check_writable(&self) -> Result<(), IpamError> {
        let _lock = disk::lock(&self.dir)?;
        disk::probe_write(&self.dir)
    }

    /// Owner and identity of every listed allocation file.
    fn read_all(
        &self,
        listing: &disk::Listing,
    ) -> Result<BTreeMap<IpAddr, (AttachmentId, disk::FileId)>, IpamError> {
        let mut files = BTreeMap::new();
        for file in listing.allocations() {
            if let Some(found) = disk::read_allocation(&self.dir, file.ip)? {
                files.insert(file.ip, found);
            }
        }
        Ok(files)
    }
}

/// What one `allocate` call knows and has done, across its range sets.
struct Claims<'a> {
    listing: &'a disk::Listing,
    /// Addresses the attachment holds (each with whether it has its index link).
    held: BTreeMap<IpAddr, bool>,
    /// Addresses this call took, to give back if a later set is exhausted.
    taken: Vec<IpAddr>,
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
