//! Strict-mode verdicts on every XDP and socket-filter program of the
//! linux-6.12 corpus, compared with the kernel's verdicts recorded in the
//! manifest (`perprog`: "OK" or a failure).

use std::path::{Path, PathBuf};
use uxdp_object::Object;
use uxdp_verifier::{verify, MapInfo, ProgType, VerifyInput};

/// Programs compared (every XDP and socket-filter program of the manifest).
const PROGRAMS: usize = 333;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

#[test]
fn corpus_agreement_with_kernel() {
    let root = corpus();
    let text = std::fs::read_to_string(root.join("manifest-linux-6.12.json")).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    let verbose = std::env::var("UXDP_VERIFIER_VERBOSE").is_ok();
    let (mut total, mut agree) = (0usize, 0usize);
    let (mut ok_ok, mut fail_fail, mut we_reject, mut we_accept) = (0, 0, 0, 0);
    for obj in manifest.as_array().expect("array") {
        let file = obj["object"].as_str().expect("object path");
        let parsed = Object::from_file(root.join(file));
        for p in obj["programs"].as_array().expect("programs") {
            let name = p["name"].as_str().expect("name");
            let prog_type = match p["type_loaded_as"].as_str() {
                Some("xdp") => ProgType::Xdp,
                Some("socket_filter") => ProgType::SocketFilter,
                _ => continue,
            };
            let kernel_ok = obj["perprog"][name].as_str() == Some("OK");
            total += 1;
            let ours: Result<(), String> = match &parsed {
                Err(e) => Err(format!("object parse error: {e}")),
                Ok(o) => match o.program(name) {
                    None => Err("program not found by uxdp-object".into()),
                    Some(prog) => {
                        let maps = MapInfo::of_object(o);
                        let input = VerifyInput::for_program(prog, prog_type, &maps);
                        verify(&input).map(|_| ()).map_err(|r| r.to_string())
                    }
                },
            };
            let short = file.rsplit('/').next().unwrap_or(file);
            match (&ours, kernel_ok) {
                (Ok(()), true) => {
                    agree += 1;
                    ok_ok += 1
                }
                (Err(e), false) => {
                    agree += 1;
                    fail_fail += 1;
                    if verbose {
                        println!("agree-reject {short} {name}: {}", e.lines().next().unwrap_or(""));
                    }
                }
                (Err(e), true) => {
                    we_reject += 1;
                    println!("DISAGREE (kernel OK, uxdp rejects) {short} {name}: {e}");
                }
                (Ok(()), false) => {
                    we_accept += 1;
                    println!("DISAGREE (kernel rejects, uxdp accepts) {short} {name}");
                }
            }
        }
    }
    println!(
        "corpus agreement: {agree}/{total} (both accept {ok_ok}, both reject {fail_fail}, only uxdp rejects {we_reject}, only kernel rejects {we_accept})"
    );
    assert_eq!(total, PROGRAMS, "the manifest's XDP and socket-filter programs changed");
    assert_eq!(agree, total, "uxdp's strict verdict differs from the kernel's on {} programs", total - agree);
}
