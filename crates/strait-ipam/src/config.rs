//! host-local's IPAM config schema (`ranges`, `routes`, `dataDir` and the legacy
//! single-range fields) and its validation into [`RangeSet`]s, with errors that name
//! the JSON path of the field at fault.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::range::{Field, Range, RangeProblem, RangeSet, SetProblem};
use crate::IpamError;

/// The `ipam` object of a network config, as host-local accepts it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IpamConfig {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A list of range sets; one address is allocated from each set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Vec<RangeConfig>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    #[serde(rename = "dataDir", default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(
        rename = "resolvConf",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resolv_conf: Option<PathBuf>,
    /// Legacy single range: becomes range set 0, ahead of `ranges`, as in host-local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(
        rename = "rangeStart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd", default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// One entry of a range set. Values stay text until [`IpamConfig::range_sets`] so its
/// errors can name the field; an empty optional value counts as absent, as in host-local.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RangeConfig {
    /// CIDR without host bits (`10.0.0.5/24` is rejected, as host-local does).
    #[serde(default)]
    pub subnet: String,
    #[serde(
        rename = "rangeStart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd", default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A route to return with the addresses, e.g. `{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteConfig {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

impl IpamConfig {
    /// Whether any range is configured (`ranges` or the legacy `subnet`). When not,
    /// [`range_sets`](Self::range_sets) fails with [`IpamError::NoRanges`].
    pub fn has_ranges(&self) -> bool {
        self.subnet.is_some() || !self.ranges.is_empty()
    }

    /// The validated range sets: the legacy single range first (if any), then `ranges`
    /// in order. The position of a set is its index in the store.
    pub fn range_sets(&self) -> Result<Vec<RangeSet>, IpamError> {
        // Each set with the JSON paths of the set and of each of its ranges.
        let mut sets: Vec<(RangeSet, String, Vec<String>)> = Vec::new();
        if let Some(subnet) = &self.subnet {
            let legacy = RangeConfig {
                subnet: subnet.clone(),
                range_start: self.range_start.clone(),
                range_end: self.range_end.clone(),
                gateway: self.gateway.clone(),
            };
            let range = build_range(&legacy, "ipam")?;
            sets.push((RangeSet(vec![range]), "ipam".into(), vec!["ipam".into()]));
        } else {
            let stray = [
                ("rangeStart", &self.range_start),
                ("rangeEnd", &self.range_end),
                ("gateway", &self.gateway),
            ];
            if let Some((name, Some(value))) = stray.iter().find(|(_, v)| is_given(v)) {
                return Err(config_err(
                    format!("ipam.{name}"),
                    format!("{value:?} is set but ipam.subnet is not"),
                ));
            }
        }
        for (i, set) in self.ranges.iter().enumerate() {
            let set_path = format!("ipam.ranges[{i}]");
            let paths: Vec<String> = (0..set.len()).map(|j| format!("{set_path}[{j}]")).collect();
            let ranges = set
                .iter()
                .zip(&paths)
                .map(|(rc, path)| build_range(rc, path))
                .collect::<Result<Vec<_>, _>>()?;
            sets.push((RangeSet(ranges), set_path, paths));
        }
        if sets.is_empty() {
            return Err(IpamError::NoRanges);
        }
        for (set, set_path, paths) in &sets {
            set.check()
                .map_err(|p| set_problem_err(set, set_path, paths, p))?;
        }
        // host-local also rejects overlaps between sets.
        for (b, (later, _, later_paths)) in sets.iter().enumerate() {
            for (earlier, _, earlier_paths) in &sets[..b] {
                if let Some((i, j)) = later.overlap_with(earlier) {
                    return Err(overlap_err(
                        &later.0[i],
                        &later_paths[i],
                        &earlier.0[j],
                        &earlier_paths[j],
                    ));
                }
            }
        }
        Ok(sets.into_iter().map(|(set, _, _)| set).collect())
    }
}

fn is_given(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

fn config_err(field: String, message: String) -> IpamError {
    IpamError::Config { field, message }
}

/// `path.field`, or `path` alone for the range as a whole.
fn field_path(path: &str, field: Field) -> String {
    match field.json_name() {
        "" => path.to_string(),
        name => format!("{path}.{name}"),
    }
}

fn problem_err(path: &str, p: RangeProblem) -> IpamError {
    config_err(field_path(path, p.field), p.message)
}

fn overlap_err(r: &Range, path: &str, other: &Range, other_path: &str) -> IpamError {
    config_err(
        path.to_string(),
        format!(
            "{} in {} overlaps {other_path} ({} in {})",
            r.span(),
            r.subnet,
            other.span(),
            other.subnet
        ),
    )
}

fn set_problem_err(set: &RangeSet, set_path: &str, paths: &[String], p: SetProblem) -> IpamError {
    let path_of = |i: usize| paths.get(i).map_or(set_path, String::as_str);
    match p {
        SetProblem::Empty => config_err(set_path.to_string(), "is an empty range set".into()),
        SetProblem::Range(i, p) => problem_err(path_of(i), p),
        SetProblem::MixedFamilies(_) => {
            let subnets = set.0.iter().map(|r| r.subnet.to_string());
            config_err(
                set_path.to_string(),
                format!(
                    "mixes IPv4 and IPv6 ({}); use one range set per family",
                    subnets.collect::<Vec<_>>().join(", ")
                ),
            )
        }
        SetProblem::Overlap { index, other } => match (set.0.get(index), set.0.get(other)) {
            (Some(r), Some(o)) => overlap_err(r, path_of(index), o, path_of(other)),
            _ => config_err(set_path.to_string(), "has overlapping ranges".into()),
        },
    }
}

/// Parses one range entry and applies host-local's defaults.
fn build_range(rc: &RangeConfig, path: &str) -> Result<Range, IpamError> {
    let subnet_path = field_path(path, Field::Subnet);
    if rc.subnet.is_empty() {
        return Err(config_err(
            subnet_path,
            "is missing (every range needs a subnet, e.g. 10.42.0.0/24)".into(),
        ));
    }
    let subnet: IpNet = rc.subnet.parse().map_err(|_| {
        config_err(
            subnet_path.clone(),
            format!(
                "{:?} is not a subnet in CIDR notation (e.g. 10.42.0.0/24)",
                rc.subnet
            ),
        )
    })?;
    // host-local rejects host bits too: "10.0.0.5/24" is more often a typo
    // than a way of writing 10.0.0.0/24.
    if subnet != subnet.trunc() {
        return Err(config_err(
            subnet_path,
            format!(
                "{subnet} has host bits set (did you mean {}?)",
                subnet.trunc()
            ),
        ));
    }
    let start = parse_ip(&rc.range_start, path, Field::RangeStart)?;
    let end = parse_ip(&rc.range_end, path, Field::RangeEnd)?;
    let gateway = parse_ip(&rc.gateway, path, Field::Gateway)?;
    Range::with_defaults(subnet, start, end, gateway).map_err(|p| problem_err(path, p))
}

fn parse_ip(value: &Option<String>, path: &str, field: Field) -> Result<Option<IpAddr>, IpamError> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            config_err(
                field_path(path, field),
                format!("{text:?} is not an IP address"),
            )
        }),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
