//! The agent's kernel operations in a throwaway namespace.

use std::net::{IpAddr, Ipv4Addr};
use strait_kernel::neighbour::{self, Entry};
use strait_kernel::route::{self, RouteSpec};
use strait_kernel::{address, link, nft, Netlink};
use strait_lab::Netns;

#[test]
fn vxlan_fdb_neighbours_and_owned_routes() {
    let ns = Netns::unique("stk").unwrap();
    ns.exec_ok(&["ip", "link", "add", "under0", "type", "bridge"])
        .unwrap();
    ns.exec_ok(&["ip", "addr", "add", "192.0.2.11/24", "dev", "under0"])
        .unwrap();
    ns.exec_ok(&["ip", "link", "set", "under0", "up"]).unwrap();
    let out = ns
        .run(|| -> Result<(), String> {
            let e = |e: strait_kernel::NetlinkError| e.to_string();
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            let under = link::by_name(&mut nl, "under0")
                .map_err(e)?
                .ok_or("no under0")?;
            let mac = [0x0a, 0x58, 192, 0, 2, 11];
            let vx = link::create_vxlan(
                &mut nl,
                &link::VxlanSpec {
                    name: "strait.vxlan",
                    vni: 1,
                    port: 8472,
                    local: Ipv4Addr::new(192, 0, 2, 11),
                    underlay_index: under.index,
                    mtu: 1450,
                    mac,
                },
            )
            .map_err(e)?;
            let info = vx.vxlan.clone().ok_or("no vxlan info read back")?;
            assert_eq!((info.vni, info.port, info.learning), (1, 8472, false));
            assert_eq!(info.local, Some(Ipv4Addr::new(192, 0, 2, 11)));
            assert_eq!(vx.mac.as_deref(), Some("0a:58:c0:00:02:0b"));
            assert_eq!(vx.mtu, Some(1450));
            address::add(
                &mut nl,
                vx.index,
                "strait.vxlan",
                "10.42.1.0/32".parse().unwrap(),
            )
            .map_err(e)?;

            let peer_mac = [0x0a, 0x58, 192, 0, 2, 12];
            let fdb = Entry {
                ifindex: vx.index,
                ip: "192.0.2.12".parse().unwrap(),
                mac: peer_mac,
            };
            let neigh = Entry {
                ifindex: vx.index,
                ip: "10.42.2.0".parse().unwrap(),
                mac: peer_mac,
            };
            neighbour::set_fdb(&mut nl, &fdb).map_err(e)?;
            neighbour::set_fdb(&mut nl, &fdb).map_err(e)?; // replace is idempotent
            neighbour::set_neighbour(&mut nl, &neigh).map_err(e)?;
            assert_eq!(
                neighbour::fdb(&mut nl, vx.index).map_err(e)?,
                vec![fdb.clone()]
            );
            assert_eq!(
                neighbour::neighbours(&mut nl, vx.index).map_err(e)?,
                vec![neigh.clone()]
            );

            let owned = RouteSpec {
                dst: "10.42.2.0/24".parse().unwrap(),
                gateway: Some(IpAddr::from([10, 42, 2, 0])),
                oif: vx.index,
                protocol: 0x5a,
                onlink: true,
            };
            route::replace(&mut nl, &owned).map_err(e)?;
            let mine: Vec<_> = route::list(&mut nl)
                .map_err(e)?
                .into_iter()
                .filter(|r| r.protocol == 0x5a)
                .collect();
            assert_eq!(mine, vec![owned.clone()]);
            route::delete(&mut nl, &owned).map_err(e)?;
            route::delete(&mut nl, &owned).map_err(e)?; // already gone is fine
            neighbour::delete_fdb(&mut nl, &fdb).map_err(e)?;
            neighbour::delete_neighbour(&mut nl, &neigh).map_err(e)?;
            assert!(neighbour::fdb(&mut nl, vx.index).map_err(e)?.is_empty());
            Ok(())
        })
        .unwrap();
    out.unwrap();
    let routes = ns.exec_ok(&["ip", "route"]).unwrap();
    assert!(!routes.contains("10.42.2.0/24"), "{routes}");
}

#[test]
fn nft_scripts_are_all_or_nothing() {
    let ns = Netns::unique("stk").unwrap();
    let out = ns
        .run(|| {
            let good = "add table inet strait\nflush table inet strait\ntable inet strait { chain c { type filter hook forward priority 0; policy accept; }\n}\n";
            nft::apply(good).unwrap();
            // The second line is invalid: the whole script must be refused.
            let bad = "add table inet strait\nflush table inet strait\ntable inet strait { chain c { bogus; }\n}\n";
            let err = nft::apply(bad).unwrap_err().to_string();
            let after = nft::list_table("inet", "strait").unwrap().unwrap();
            nft::delete_table("inet", "strait").unwrap();
            nft::delete_table("inet", "strait").unwrap();
            (err, after, nft::list_table("inet", "strait").unwrap())
        })
        .unwrap();
    assert!(out.0.contains("nothing was changed"), "{}", out.0);
    assert!(
        out.1.contains("hook forward"),
        "the failed script changed the table: {}",
        out.1
    );
    assert_eq!(out.2, None);
}
