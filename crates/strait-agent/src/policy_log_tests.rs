use super::*;

/// A netlink datagram with one NFULNL_MSG_PACKET carrying `prefix` and an
/// IPv4/TCP header from 10.42.1.12 to 10.42.1.10 port 81.
fn datagram(prefix: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    nlattr(&mut attrs, 1, &[0x08, 0x00, 2, 0]); // packet header, skipped
    let mut p = prefix.as_bytes().to_vec();
    p.push(0);
    nlattr(&mut attrs, NFULA_PREFIX, &p);
    let mut ip = vec![
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 42, 1, 12, 10, 42, 1, 10,
    ];
    ip.extend_from_slice(&[0x9c, 0x40, 0, 81]);
    nlattr(&mut attrs, NFULA_PAYLOAD | 0x4000, &ip);
    let mut msg = Vec::new();
    let len = 16 + 4 + attrs.len();
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET).to_ne_bytes());
    msg.extend_from_slice(&[0; 10]);
    msg.extend_from_slice(&[2, 0, 0, 90]);
    msg.extend_from_slice(&attrs);
    msg
}

#[test]
fn parses_logged_packets() {
    let mut two = datagram("strait-policy in-drop-1");
    two.extend(datagram("x"));
    let got = parse_datagram(&two);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Logged {
            prefix: "strait-policy in-drop-1".into(),
            src: Ipv4Addr::new(10, 42, 1, 12),
            dst: Ipv4Addr::new(10, 42, 1, 10),
            proto: 6,
            dport: Some(81),
        }
    );
    // Truncated input: no panic, nothing made up.
    for cut in 0..two.len() / 2 {
        assert!(parse_datagram(&two[..cut]).len() <= 1);
    }
}

#[test]
fn lines_name_policies_and_pods() {
    let manifests = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod, labels: {app: web}}\nspec: {nodeName: n1, containers: [{name: c}]}\nstatus: {podIP: 10.42.1.10}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: prod}\nspec: {podSelector: {}}\n";
    let snap = strait_model::Snapshot::from_objects(
        strait_model::parse_manifests(manifests, "t").unwrap(),
    );
    let mut table = strait_plan::nft::Table::new(strait_plan::nft::Family::Inet, "t");
    table.chains.push(strait_plan::nft::Chain {
        name: "forward".into(),
        base: None,
        rules: vec![],
    });
    strait_plan::policy::add_to_table("n1", &snap, &mut table, &mut Vec::new());
    let d = Describer::new(&table, &snap);
    let prefix = drop_reasons(&table)[0].0.clone();
    let l = &parse_datagram(&datagram(&prefix))[0];
    assert_eq!(
        d.line(l),
        "policy drop: ingress to pod prod/web (10.42.1.10) from 10.42.1.12 tcp/81; not allowed by prod/deny"
    );
    let unknown = &parse_datagram(&datagram("other"))[0];
    assert_eq!(
        d.line(unknown),
        "policy drop (other): 10.42.1.12 -> prod/web (10.42.1.10) tcp/81"
    );
}
