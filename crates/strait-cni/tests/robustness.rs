//! Arbitrary bytes and arbitrary JSON configs get an error object, never a
//! panic. Runs the plugin in-process (through `strait_cni::run`) so proptest
//! can shrink failures; ADD and CHECK point at a namespace that does not
//! exist, so no input reaches the kernel or the disk.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn run(command: &str, stdin: &[u8]) -> strait_cni::Outcome {
    let env = |k: &str| -> Option<String> {
        match k {
            "CNI_COMMAND" => Some(command.to_owned()),
            "CNI_CONTAINERID" => Some("fuzz".into()),
            "CNI_NETNS" => Some("/nonexistent/strait-fuzz-netns".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some("/nonexistent".into()),
            _ => None,
        }
    };
    strait_cni::run(env, stdin)
}

fn assert_error_object(out: &strait_cni::Outcome) {
    let v: Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    if out.exit_code != 0 {
        assert!(v["code"].as_u64().is_some(), "{v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["cniVersion"].as_str().is_some(), "{v}");
    }
}

/// JSON values shaped like configs: known keys with values of any type.
fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("1.0.0"),
            Just("0.4.0"),
            Just("1.1.0"),
            Just("10.0.0.0/24"),
            Just("fd00::/64"),
            Just("10.0.0.1"),
            Just("ptp"),
            Just("bridge"),
            Just("host-local"),
            Just("0.0.0.0/0"),
            Just("10.0.0.300/24"),
            Just("::/0")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("cniVersion"),
            Just("name"),
            Just("type"),
            Just("mode"),
            Just("bridge"),
            Just("mtu"),
            Just("ipam"),
            Just("ranges"),
            Just("subnet"),
            Just("rangeStart"),
            Just("rangeEnd"),
            Just("gateway"),
            Just("routes"),
            Just("dst"),
            Just("gw"),
            Just("dataDir"),
            Just("dns"),
            Just("prevResult"),
            Just("ips"),
            Just("interfaces"),
            Just("address"),
            Just("interface"),
            Just("hairpinMode"),
            Just("nodeConfig"),
            Just("cni.dev/valid-attachments"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Mostly-valid configs with one field at a time replaced by anything.
fn near_valid_config() -> impl Strategy<Value = Value> {
    (json_value(), prop::sample::select(vec![
        "cniVersion", "name", "type", "mode", "bridge", "mtu", "ipam", "dns", "prevResult",
    ]))
    .prop_map(|(v, field)| {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "fuzz", "type": "strait-cni",
            "ipam": {"ranges": [[{"subnet": "10.9.0.0/24"}]], "dataDir": "/nonexistent/strait-fuzz"}
        });
        c[field] = v;
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512),
                       command in prop::sample::select(vec!["ADD", "CHECK", "VERSION", "BOGUS"])) {
        let out = run(command, &bytes);
        assert_error_object(&out);
    }

    #[test]
    fn arbitrary_json(v in json_value(), command in prop::sample::select(vec!["ADD", "CHECK", "VERSION"])) {
        let out = run(command, v.to_string().as_bytes());
        assert_error_object(&out);
    }

    #[test]
    fn near_valid_configs(c in near_valid_config(), command in prop::sample::select(vec!["ADD", "CHECK"])) {
        let out = run(command, c.to_string().as_bytes());
        // Nothing can succeed against a missing namespace.
        prop_assert_ne!(out.exit_code, 0);
        assert_error_object(&out);
    }
}

#[test]
fn the_binary_answers_garbage_with_an_error_object() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let inputs: [&[u8]; 5] = [b"", b"\xff\xfe", b"{}", b"null", b"{\"cniVersion\":1}"];
    for input in inputs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strait-cni"))
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "x")
            .env("CNI_NETNS", "/nonexistent")
            .env("CNI_IFNAME", "eth0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["code"].is_u64(), "{v}");
    }
}
