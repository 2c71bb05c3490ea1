//! hostPort in the lab: the lab passes a pod's hostPorts to the CNI chain
//! as `runtimeConfig.portMappings`, as kubelet does, and the `portmap`
//! plugin chained after strait-cni (as in deploy/strait.yaml's conflist)
//! makes the pod reachable on its node's address, and only there.

mod common;

use std::time::Duration;
use strait_lab::{ProbeResult, Proto};

const WORKLOAD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: hp}
spec:
  nodeName: node-1
  containers:
  - name: c
    image: x
    ports:
    - {containerPort: 8080, hostPort: 31888}
    - {containerPort: 5353, hostPort: 31853, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: hp}
spec: {nodeName: node-2, containers: [{name: c, image: x, ports: [{containerPort: 9000}]}]}
";

#[test]
fn a_pod_is_reached_through_its_nodes_host_port() {
    let lab = common::up(|_| {});
    lab.apply(WORKLOAD);
    std::thread::sleep(Duration::from_millis(500));
    let node_1 = "192.168.1.11";

    // From outside the cluster, TCP and UDP, to node-1's address.
    let line = lab.reach("host/legacy-db", node_1, 31888, Proto::Tcp);
    assert_eq!(line.split_whitespace().next(), Some("hp/web"), "{line}");
    let line = lab.reach("host/legacy-db", node_1, 31853, Proto::Udp);
    assert_eq!(line.split_whitespace().next(), Some("hp/web"), "{line}");

    // From a pod on the other node.
    let line = lab.reach("pod/hp/client", node_1, 31888, Proto::Tcp);
    assert_eq!(line.split_whitespace().next(), Some("hp/web"), "{line}");

    // Only on the pod's own node: node-2 has no such port.
    let r = lab.probe("host/legacy-db", "192.168.1.12", 31888, Proto::Tcp);
    assert!(r.answer().is_none(), "node-2 answered a hostPort: {r}");

    // Deleting the pod removes the mapping (portmap's DEL).
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: hp}\n";
    lab.cluster
        .delete(&lab.topo.name, pod, "test.yaml")
        .unwrap_or_else(|e| panic!("delete: {e}"));
    lab.eventually(10, "the hostPort gone with its pod", || {
        !matches!(
            lab.probe("host/legacy-db", node_1, 31888, Proto::Tcp),
            ProbeResult::Answered(_)
        )
    });
}
