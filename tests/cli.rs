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
fn a_store_path_that_is_a_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-store");
    std::fs::write(&file, b"x").unwrap();
    for path in [file.as_path(), std::path::Path::new("/dev/null")] {
        for args in [&["info"][..], &["export", "-o", "/tmp/never-written.csv"]] {
            let out = torchlight().args(args).arg("--store").arg(path).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?} {}: {stderr}", path.display());
            assert!(
                stderr.contains(&path.display().to_string()) && stderr.contains("not a store directory"),
                "{args:?}: {stderr}"
            );
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is left as it was");
}
