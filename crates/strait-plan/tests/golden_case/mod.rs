//! Reading a golden case (`tests/golden/NAME.yaml`: agent config, local
//! node facts, manifests) and compiling it. Shared by strait-plan's golden
//! test and strait-agent's load test (included there by path).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use strait_model::{parse_manifests, AgentConfig, Snapshot};
use strait_plan::{compile, LocalNode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    config: serde_yaml::Value,
    local: LocalNode,
    #[serde(default)]
    manifests: String,
}

/// strait-plan's `tests/golden` directory.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../strait-plan/tests/golden")
        .canonicalize()
        .expect("strait-plan/tests/golden")
}

/// Every case file (`*.yaml` in [`golden_dir`]), sorted.
pub fn case_paths() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

/// The case's Plan (a malformed case file panics naming it).
pub fn compile_case(path: &Path) -> Result<strait_plan::Plan, strait_plan::PlanError> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let cfg_text = serde_yaml::to_string(&case.config).unwrap();
    let cfg = AgentConfig::from_yaml(&cfg_text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let objects = parse_manifests(&case.manifests, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let snap = Snapshot::from_objects(objects);
    compile(&cfg, &case.local, &snap)
}
