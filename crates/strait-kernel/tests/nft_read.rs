//! nft_read against a real table in a fresh namespace: table presence,
//! rule comments, named counters (after real packets).

use strait_kernel::nft_batch::FAMILY_INET;
use strait_kernel::nft_read;
use strait_lab::Netns;

#[test]
fn reads_tables_comments_and_counters_of_a_real_table() {
    let ns = Netns::unique("stnfrd").unwrap();
    ns.exec_ok(&["ip", "link", "set", "lo", "up"]).unwrap();
    let before = ns
        .run(|| {
            (
                nft_read::table_exists(FAMILY_INET, "t"),
                nft_read::rule_comments(FAMILY_INET, "t", "stamp"),
            )
        })
        .unwrap();
    assert!(!before.0.unwrap());
    assert_eq!(before.1.unwrap(), None);
    let script = "table inet t {\n\
        counter seen { }\n\
        counter other { }\n\
        chain stamp {\n return comment \"strait:abc\"\n accept\n return comment \"second\"\n }\n\
        chain out {\n type filter hook output priority 0; policy accept;\n icmp type echo-request counter name \"seen\"\n }\n\
        }\n\
        table inet u {\n chain stamp {\n return comment \"not this table\"\n }\n counter seen { }\n }\n";
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&path, script).unwrap();
    ns.exec_ok(&["nft", "-f", path.to_str().unwrap()]).unwrap();
    std::fs::remove_file(&path).unwrap();
    ns.exec_ok(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1"])
        .unwrap();
    let (exists, comments, counters) = ns
        .run(|| {
            (
                nft_read::table_exists(FAMILY_INET, "t"),
                nft_read::rule_comments(FAMILY_INET, "t", "stamp"),
                nft_read::counters(FAMILY_INET, "t"),
            )
        })
        .unwrap();
    assert!(exists.unwrap());
    assert_eq!(
        comments.unwrap(),
        Some(vec!["strait:abc".to_string(), "second".to_string()])
    );
    let mut counters = counters.unwrap();
    counters.sort();
    assert_eq!(counters.len(), 2, "{counters:?}");
    assert_eq!(counters[0].0, "other");
    assert_eq!((counters[0].1, counters[0].2), (0, 0));
    assert_eq!(counters[1].0, "seen");
    assert_eq!(counters[1].1, 3, "{counters:?}");
    assert!(counters[1].2 >= 3 * 84, "{counters:?}");
}
