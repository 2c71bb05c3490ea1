//! The API access the source uses: list and watch of six resources, nothing
//! else (it never writes). `deploy/strait.yaml`'s ClusterRole must grant
//! exactly this; a test compares the two.

/// (API group, resource, verbs), one row per resource the watchers read.
pub const ACCESS: [(&str, &str, &[&str]); 6] = [
    ("", "namespaces", &["list", "watch"]),
    ("", "nodes", &["list", "watch"]),
    ("", "pods", &["list", "watch"]),
    ("", "services", &["list", "watch"]),
    ("discovery.k8s.io", "endpointslices", &["list", "watch"]),
    ("networking.k8s.io", "networkpolicies", &["list", "watch"]),
];
