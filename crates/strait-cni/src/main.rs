//! The `strait-cni` executable: environment and stdin in, result or error
//! object out, exit code 0 or 1.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = strait_cni::protocol::CniError::io(format!("cannot read stdin: {e}"));
        println!("{}", err.to_json("1.1.0"));
        std::process::exit(1);
    }
    let outcome = strait_cni::run(|k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    if !outcome.stdout.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    std::process::exit(outcome.exit_code);
}
