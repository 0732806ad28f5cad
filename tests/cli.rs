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
    assert!(text.contains("schema version 2"), "{text}");
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

/// A pipe whose reading end is already closed, as `| head -1` leaves it once head has its line: every write to
/// it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two fds; the read end is closed at once and the write end handed to the child.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::process::Stdio::from_raw_fd(fds[1])
    }
}

/// `torchlight info | head -1`, `analyze | head -1`, `ingest ... 2>&1 | head -3`: a closed stdout or stderr ends
/// nothing early and crashes nothing; the command's work is done and its exit status is its own.
#[test]
fn a_closed_output_pipe_is_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let digits = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let npy = dir.path().join("pixels.npy");
    let mut idx = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&digits).unwrap()), &mut idx)
        .unwrap();
    let pixels: Vec<f32> = idx[16..16 + 200 * 784].iter().map(|&p| f32::from(p) / 255.0).collect();
    torchlight_store::npy::write_f32(std::fs::File::create(&npy).unwrap(), &[200, 784], &pixels).unwrap();
    let ingest = torchlight()
        .args(["ingest", digits.to_str().unwrap(), "--limit", "200", "--no-analyze", "--store"])
        .arg(&store)
        .arg("--embeddings")
        .arg(format!("pixels={}", npy.display()))
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .status()
        .unwrap();
    assert_eq!(ingest.code(), Some(0), "ingest with both outputs closed");
    {
        let s = torchlight_store::Store::open_reading(&store).unwrap();
        let r = s.read_txn().unwrap();
        assert_eq!(s.item_count(&r).unwrap(), 200, "the ingest committed its work");
    }
    for args in [&["info"][..], &["analyze", "--no-umap", "--device", "cpu"], &["verify"]] {
        let out = torchlight().args(args).arg("--store").arg(&store).stdout(closed_pipe()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

/// Errors written to a file or pipe carry no colour codes, whatever the terminal type says.
#[test]
fn errors_off_a_terminal_have_no_colour() {
    for term in ["xterm-256color", "dumb"] {
        let out = torchlight().args(["info", "--store", "/dev/null"]).env("TERM", term).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not a store directory"), "{stderr}");
        assert!(!stderr.contains('\x1b'), "colour codes in {stderr:?}");
    }
}

/// Ctrl-C during `analyze`: it stops between commits, keeps every space it finished, says in one line how to
/// finish, and exits 130; the rerun finishes.
#[test]
fn an_interrupted_analysis_says_how_to_finish_and_a_rerun_does() {
    use std::io::{BufRead, BufReader};
    use torchlight_synth::{SynthParams, generate};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let params = SynthParams { items: 20_000, dim: 64, thumbnails: 0, embeddings: true, ..SynthParams::default() };
    drop(generate(&store, &params).unwrap());
    let mut child = torchlight()
        .args(["analyze", "--device", "cpu", "--store"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first progress line says the analysis is under way.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    // SAFETY: a plain syscall on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{first}{rest}");
    let last = rest.trim_end().lines().last().unwrap_or_default();
    let want = format!(
        "interrupted: the analysis keeps every space it finished; run `torchlight analyze --store {}` to finish it",
        store.display()
    );
    assert_eq!(last, want, "{first}{rest}");
    let out = torchlight().args(["analyze", "--no-umap", "--device", "cpu", "--store"]).arg(&store).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Values outside a flag's range are usage errors (exit 2) naming the range, before a store is created:
/// `--threads 0` once panicked inside libtorch and `--threads 100000` spawned threads until it crashed,
/// `--k 0` silently became 1 and `--k 100000` ran for minutes.
#[test]
fn out_of_range_arguments_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let digits = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let digits = digits.to_str().unwrap();
    for (args, range) in [
        (&["ingest", digits, "--threads", "0"][..], "1..=1024"),
        (&["ingest", digits, "--threads", "100000"], "1..=1024"),
        (&["ingest", digits, "--batch-size", "0"], "1..=65536"),
        (&["ingest", digits, "--limit", "0"], "at least 1"),
        (&["analyze", "--k", "0"], "1..=1000"),
        (&["analyze", "--k", "100000"], "1..=1000"),
    ] {
        let out = torchlight().args(args).arg("--store").arg(&store).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[args.len() - 2]) && stderr.contains(range), "{args:?}: {stderr}");
        assert!(!store.exists(), "{args:?} created the store");
    }
}

/// `info` lists the records an ingest skipped by name and reason, the first 20 and how many more; `info
/// --skipped` lists them all.
#[test]
fn info_lists_skipped_records_and_skipped_lists_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut png = Vec::new();
    let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(8, 8, image::Luma([7])));
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    std::fs::write(images.join("good.png"), png).unwrap();
    for i in 0..25 {
        std::fs::write(images.join(format!("bad-{i:02}.png")), b"not a png").unwrap();
    }
    let store = dir.path().join("store");
    let out = torchlight().args(["ingest", "--no-analyze", "--store"]).arg(&store).arg(&images).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let info = |extra: &[&str]| {
        let out = torchlight().args(["info", "--store"]).arg(&store).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = |text: &str| text.lines().filter(|l| l.trim_start().starts_with("skipped ")).count();
    let text = info(&[]);
    assert!(text.contains("items 1 (25 skipped)"), "{text}");
    assert!(text.contains("bad-00.png: not an image format"), "{text}");
    assert_eq!(listed(&text), 20, "{text}");
    assert!(text.contains("... and 5 more (`torchlight info --skipped` lists them all)"), "{text}");
    let text = info(&["--skipped"]);
    assert_eq!(listed(&text), 25, "{text}");
    assert!(text.contains("bad-24.png") && !text.contains("... and"), "{text}");
}
