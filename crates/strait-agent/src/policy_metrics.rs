//! `strait_policy_dropped_packets_total{policy="ns/name",direction=...}`
//! from the table's named counters (one per policy and direction, see
//! `strait_plan::policy`). The kernel counters restart from zero when the
//! table is rewritten (a policy added or removed, the periodic full
//! resync), so the agent adds up what each read grew by: a value below the
//! last one read is a restart, and counts in full.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::sync::Mutex;
use strait_plan::policy::parse_counter_name;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
    pub direction: String,
}

#[derive(Default)]
pub struct PolicyDrops {
    pub family: Family<PolicyLabels, Counter>,
    /// Counter name -> the packets last read.
    last: Mutex<HashMap<String, u64>>,
}

impl PolicyDrops {
    /// Adds what every counter grew by since the last read.
    pub fn update(&self, read: &[(String, u64)]) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        for (name, packets) in read {
            let Some((policy, d)) = parse_counter_name(name) else {
                continue;
            };
            let before = last.insert(name.clone(), *packets).unwrap_or(0);
            let grew = if *packets >= before {
                packets - before
            } else {
                *packets
            };
            let labels = PolicyLabels {
                policy,
                direction: d.as_str().to_string(),
            };
            // Created at 0 even without drops, so every policy is listed.
            self.family.get_or_create(&labels).inc_by(grew);
        }
    }
}

/// The packets of every named counter of table `inet <table>`, from
/// `nft -j list counters table inet <table>`.
pub fn read_counters(table: &str) -> Result<Vec<(String, u64)>, String> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "counters", "table", "inet", table])
        .output()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft list counters: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_counters(&String::from_utf8_lossy(&out.stdout))
}

/// `{"nftables": [..., {"counter": {"name": ..., "packets": N}}]}`.
pub fn parse_counters(json: &str) -> Result<Vec<(String, u64)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nft counters JSON: {e}"))?;
    let list = v["nftables"]
        .as_array()
        .ok_or("nft counters JSON: no nftables list")?;
    Ok(list
        .iter()
        .filter_map(|o| {
            let c = o.get("counter")?;
            Some((c["name"].as_str()?.to_string(), c["packets"].as_u64()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(d: &PolicyDrops, policy: &str, direction: &str) -> u64 {
        d.family
            .get_or_create(&PolicyLabels {
                policy: policy.into(),
                direction: direction.into(),
            })
            .get()
    }

    #[test]
    fn parses_nft_json() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "pol-in.ns.a", "table": "t", "handle": 3, "packets": 7, "bytes": 420}}]}"#;
        assert_eq!(
            parse_counters(json).unwrap(),
            vec![("pol-in.ns.a".to_string(), 7)]
        );
        assert!(parse_counters("{}").is_err());
    }

    #[test]
    fn adds_growth_and_survives_restarts() {
        let d = PolicyDrops::default();
        d.update(&[
            ("pol-in.ns.a".into(), 5),
            ("pol-eg.ns.b".into(), 0),
            ("other".into(), 9),
        ]);
        d.update(&[("pol-in.ns.a".into(), 8)]);
        assert_eq!(value(&d, "ns/a", "ingress"), 8);
        // The table was rewritten: the kernel counter restarted at 0.
        d.update(&[("pol-in.ns.a".into(), 2)]);
        assert_eq!(value(&d, "ns/a", "ingress"), 10);
        assert_eq!(value(&d, "ns/b", "egress"), 0);
    }
}
