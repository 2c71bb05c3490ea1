//! A CNI runtime in miniature: runs one plugin, or a conflist the way libcni
//! does (name and cniVersion copied into each plugin, prevResult threaded
//! through ADD, the ADD result given to CHECK and DEL, DEL in reverse order,
//! runtimeConfig passed to plugins that declare the capability).

use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One invocation's environment.
#[derive(Debug, Clone)]
pub struct CniCall {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// Directories searched for plugins (CNI_PATH).
    pub path: Vec<PathBuf>,
    /// Run the plugin inside this named namespace (the node's "host" side).
    pub host_netns: Option<String>,
    /// Extra environment (e.g. test hooks).
    pub extra_env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct CniOutput {
    pub exit_ok: bool,
    /// The process was killed by a signal (e.g. SIGKILL from a crash test).
    pub killed: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CniOutput {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

impl CniCall {
    pub fn new(command: &str, container_id: &str, netns: &Path, ifname: &str) -> Self {
        CniCall {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.display().to_string(),
            ifname: ifname.into(),
            path: Vec::new(),
            host_netns: None,
            extra_env: Vec::new(),
        }
    }

    pub fn with_command(&self, command: &str) -> Self {
        let mut c = self.clone();
        c.command = command.into();
        c
    }

    fn find(&self, plugin: &str) -> PathBuf {
        self.path
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(plugin))
    }

    /// The process that would run `plugin` (not started yet).
    pub fn process(&self, plugin: &str) -> Command {
        let exe = self.find(plugin);
        let mut cmd = match &self.host_netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let path = self
            .path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        cmd.env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_PATH", path)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs one plugin with `config` on stdin.
    pub fn exec(&self, plugin: &str, config: &Value) -> std::io::Result<CniOutput> {
        let mut child = self
            .process(plugin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(config.to_string().as_bytes());
        }
        let out = child.wait_with_output()?;
        use std::os::unix::process::ExitStatusExt;
        Ok(CniOutput {
            exit_ok: out.status.success(),
            killed: out.status.signal().is_some(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A network configuration list.
#[derive(Debug, Clone)]
pub struct Conflist {
    pub value: Value,
}

impl Conflist {
    pub fn new(value: Value) -> Self {
        Conflist { value }
    }

    fn plugins(&self) -> Vec<Value> {
        self.value["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The config one plugin of the list receives.
    pub fn plugin_config(
        &self,
        plugin: &Value,
        prev_result: Option<&Value>,
        runtime_config: &Map<String, Value>,
    ) -> Value {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), self.value["name"].clone());
        conf.insert("cniVersion".into(), self.value["cniVersion"].clone());
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        // Only capabilities the plugin asked for are passed (libcni's rule).
        let mut rc = Map::new();
        if let Some(caps) = plugin["capabilities"].as_object() {
            for (k, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = runtime_config.get(k) {
                        rc.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        Value::Object(conf)
    }

    /// ADD through every plugin; the final result, or the first failure.
    pub fn add(
        &self,
        call: &CniCall,
        runtime_config: &Map<String, Value>,
    ) -> std::io::Result<Result<Value, CniOutput>> {
        let call = call.with_command("ADD");
        let mut prev: Option<Value> = None;
        for plugin in self.plugins() {
            let conf = self.plugin_config(&plugin, prev.as_ref(), runtime_config);
            let kind = plugin["type"].as_str().unwrap_or_default().to_owned();
            let out = call.exec(&kind, &conf)?;
            if !out.exit_ok {
                return Ok(Err(out));
            }
            prev = Some(out.json());
        }
        Ok(Ok(prev.unwrap_or(Value::Null)))
    }

    /// CHECK (or DEL, in reverse) through every plugin with the ADD result.
    pub fn check_or_del(
        &self,
        call: &CniCall,
        command: &str,
        result: Option<&Value>,
        runtime_config: &Map<String, Value>,
    ) -> std::io::Result<Result<(), CniOutput>> {
        let call = call.with_command(command);
        let mut plugins = self.plugins();
        if command == "DEL" {
            plugins.reverse();
        }
        for plugin in plugins {
            let conf = self.plugin_config(&plugin, result, runtime_config);
            let kind = plugin["type"].as_str().unwrap_or_default().to_owned();
            let out = call.exec(&kind, &conf)?;
            if !out.exit_ok {
                return Ok(Err(out));
            }
        }
        Ok(Ok(()))
    }
}

/// `{"portMappings": [...]}` as kubelet passes a pod's hostPorts.
pub fn port_mappings(mappings: &[(u16, u16, &str)]) -> Map<String, Value> {
    let list: Vec<Value> = mappings
        .iter()
        .map(|(host, container, proto)| {
            json!({"hostPort": host, "containerPort": container, "protocol": proto})
        })
        .collect();
    let mut m = Map::new();
    m.insert("portMappings".into(), Value::Array(list));
    m
}
