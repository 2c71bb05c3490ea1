//! Golden tests: each `tests/golden/NAME.yaml` (agent config, local node
//! facts, manifests) compiles to the plan rendered in `NAME.expected`.
//!
//! An expected file starts with `#` lines saying what it demonstrates and
//! how its contents follow from the rules in docs/lab-agent-plan.md; they
//! are checked by hand, not just blessed. `STRAIT_BLESS=1 cargo test -p
//! strait-plan --test golden` rewrites the part after that header (keeping
//! the header), for reviewing a deliberate change with `git diff`.
//!
//! A case whose compile fails renders as `error: <message>`.

mod golden_case;
use golden_case::{case_paths, compile_case, golden_dir};
use std::path::Path;

fn render_case(path: &Path) -> String {
    match compile_case(path) {
        Ok(plan) => plan.to_string(),
        Err(e) => format!("error: {e}\n"),
    }
}

/// Splits an expected file into its `#` header (with the blank line after
/// it) and the rendering.
fn split_header(text: &str) -> (String, String) {
    let mut header = String::new();
    let mut rest = text;
    while rest.starts_with('#') {
        let end = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
        header.push_str(&rest[..end]);
        rest = &rest[end..];
    }
    if let Some(stripped) = rest.strip_prefix('\n') {
        header.push('\n');
        rest = stripped;
    }
    (header, rest.to_string())
}

#[test]
fn golden() {
    let bless = std::env::var("STRAIT_BLESS").is_ok_and(|v| v == "1");
    let cases = case_paths();
    assert!(cases.len() >= 4, "golden cases are missing");
    let mut failures = Vec::new();
    for input in cases {
        let expected_path = input.with_extension("expected");
        let actual = render_case(&input);
        let existing = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let (header, expected) = split_header(&existing);
        if bless {
            let header = if header.is_empty() {
                "# TODO: say what this case demonstrates and check it by hand.\n\n".to_string()
            } else {
                header
            };
            std::fs::write(&expected_path, format!("{header}{actual}")).unwrap();
        } else if header.is_empty() {
            failures.push(format!("{}: no header comment", expected_path.display()));
        } else if actual != expected {
            failures.push(format!(
                "{} differs (STRAIT_BLESS=1 rewrites it); actual:\n{actual}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_has_an_input() {
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("yaml").exists(),
                "{} has no input",
                path.display()
            );
        }
    }
}

#[test]
fn header_split() {
    let (h, r) = split_header("# a\n# b\n\nnode file: x\n");
    assert_eq!(h, "# a\n# b\n\n");
    assert_eq!(r, "node file: x\n");
}

/// Every golden case's nft script passes the real nft in check mode
/// (`nft -c -f -`: parsed and validated, then aborted; the ruleset is never
/// changed), under a table name of its own. Needs nft and CAP_NET_ADMIN;
/// skipped with a message otherwise.
#[test]
fn golden_rulesets_pass_nft_check_mode() {
    use strait_kernel::nft::{check, NftError};
    for input in case_paths() {
        let Ok(mut plan) = compile_case(&input) else {
            continue;
        };
        std::sync::Arc::make_mut(&mut plan.nft).name = "strait_golden_check".to_string();
        let script = strait_plan::nft::render(&plan.nft);
        match check(&script) {
            Ok(()) => {}
            Err(NftError::Spawn(e)) => {
                eprintln!("skipping the nft check: cannot run nft: {e}");
                return;
            }
            Err(NftError::Rejected(m)) if m.contains("Operation not permitted") => {
                eprintln!("skipping the nft check: {m}");
                return;
            }
            Err(NftError::Rejected(m)) => {
                panic!("nft -c rejected {}:\n{m}\n{script}", input.display())
            }
        }
    }
}
