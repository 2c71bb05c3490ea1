//! A netlink batch against a real kernel: a transaction of thousands of
//! messages commits (the kernel queues one ACK per message before the
//! agent reads any: the receive buffer must hold them all).

use strait_kernel::nft_batch::{Batch, ElementData, FAMILY_INET};
use strait_lab::Netns;

#[test]
fn a_batch_of_thousands_of_messages_commits() {
    let ns = Netns::unique("stnfbt").unwrap();
    let script = "table inet t {\n set a { type ipv4_addr; }\n set b { type ipv4_addr; }\n}\n";
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&path, script).unwrap();
    ns.exec_ok(&["nft", "-f", path.to_str().unwrap()]).unwrap();
    std::fs::remove_file(&path).unwrap();
    let committed = ns
        .run(|| {
            let mut batch = Batch::new(FAMILY_INET, "t");
            // Alternating sets: every element opens a message of its own.
            for i in 0u32..3000 {
                let set = if i % 2 == 0 { "a" } else { "b" };
                batch.add(set, &(0x0a00_0000 + i).to_be_bytes(), ElementData::None);
            }
            batch.commit().map_err(|e| e.to_string())
        })
        .unwrap();
    committed.unwrap();
    for set in ["a", "b"] {
        let listed = ns
            .exec_ok(&["nft", "list", "set", "inet", "t", set])
            .unwrap();
        assert_eq!(listed.matches("10.0.").count(), 1500, "set {set}: {listed}");
    }
}
