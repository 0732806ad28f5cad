//! The binary: every subcommand has real help, info reports libtorch and stores, unfinished work says so.

use crate::common;

use std::process::Command;

fn torchlight() -> Command {
    Command::new(common::bin::torchlight())
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["ingest", "analyze", "browse", "export", "info", "demo"] {
        let out = torchlight().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("--store"), "{sub} --help lacks --store:\n{text}");
        assert!(text.lines().count() > 5, "{sub} --help is too thin:\n{text}");
    }
}

#[test]
fn info_reports_libtorch_devices_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = torchlight().args(["info", "--store"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("libtorch 2.13.0"), "{text}");
    assert!(text.contains("devices: cpu"), "{text}");
    assert!(text.contains("none yet"), "{text}");

    let store = torchlight_store::Store::create_or_open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_label_names(&mut w, &["cat".into(), "dog".into()]).unwrap();
    store.commit(w).unwrap();
    drop(store);
    let out = torchlight().args(["info", "--store"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("schema version 1"), "{text}");
    assert!(text.contains("labels (2): cat, dog"), "{text}");
}

#[test]
fn bad_store_path_is_reported() {
    let out = torchlight().args(["info", "--store", "/proc/version"]).output().unwrap();
    assert!(!out.status.success() || String::from_utf8_lossy(&out.stdout).contains("none yet"));
}
