//! Fast reliability cases: kill -9 of the browser right after a tag, and the bad-input corpus (see
//! `bad_inputs`). The slow ones (kill -9 at 20+ random points of an ingest, scale) live in tests/slow/ and benches/.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;

use common::tmux::{Tmux, tmux_available};
use torchlight_store::{Store, TagKind};
use torchlight_synth::{self as synth, SynthParams};

fn process_alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie still counts until tmux reaps it, so also look at its state.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

/// Tags three items in a running browser, then kills it with SIGKILL the moment the last tag shows on screen:
/// no quit, no drop, no flush. Every tag must be in the store when it is reopened.
#[test]
fn kill_9_right_after_tagging_keeps_the_tags() {
    if !tmux_available("kill_9_right_after_tagging_keeps_the_tags") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    drop(synth::generate(&store_dir, &SynthParams { items: 300, ..SynthParams::default() }).unwrap());

    let bin_path = common::bin::torchlight();
    let bin = bin_path.to_str().expect("a UTF-8 path");
    let tmux = Tmux { socket: format!("torchlight-reliability-{}", std::process::id()) };
    let cmd = format!(
        "env -u TERM_PROGRAM TERM=xterm-256color {bin} browse --store {} --graphics halfblocks",
        store_dir.display()
    );
    let started = tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "browse", "-x", "120", "-y", "40", &cmd]);
    assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
    tmux.wait_for("items 300/300");
    let pid = tmux.pane_pid();

    // Three different tags on the first three rows; the ids are read back from the status message.
    let mut want = Vec::new();
    for (keys, kind) in
        [(["g", "x"], TagKind::Outlier), (["j", "m"], TagKind::Mislabeled), (["j", "d"], TagKind::Duplicate)]
    {
        tmux.keys(&keys);
        let said = format!(" tagged {}", kind.as_str());
        let screen = tmux.wait_for(&said);
        let line = screen.lines().find(|l| l.contains(&said)).unwrap();
        let before = &line[..line.find(&said).unwrap()];
        let id: u32 = before[before.rfind('#').unwrap() + 1..].parse().unwrap();
        want.push((id, Some(kind)));
    }
    want.sort_by_key(|w| w.0);

    // SAFETY: plain syscall on the pid of the browser this test started.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!process_alive(pid), "torchlight browse ({pid}) survived kill -9");

    let store = Store::open(Path::new(&store_dir)).unwrap();
    let r = store.read_txn().unwrap();
    let tags: Vec<(u32, Option<TagKind>)> = store.tags(&r).unwrap().into_iter().map(|(id, t)| (id, t.kind)).collect();
    assert_eq!(want.len(), 3);
    assert_eq!(tags, want, "tags in the store after kill -9");
}

/// The bad-input corpus: files a user's dataset folder may really contain. Generated here (not committed) so
/// the cases stay readable; only the CMYK JPEG and the parquet files, which nothing in Rust here can write, are
/// committed under crates/engine/tests/fixtures/bad_inputs/ with the script that made them.
mod bad_inputs {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// What ingesting the case must do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Expect {
        /// Becomes an item.
        Item,
        /// Skipped, with a reason naming the file, the rest of the dataset ingested.
        Skip,
        /// Either is fine (e.g. a decoder may or may not support it) but never a crash or a silent loss.
        ItemOrSkip,
        /// Not a file (a directory named like an image): not part of the dataset.
        NotAFile,
    }

    pub struct Case {
        pub path: PathBuf,
        pub expect: Expect,
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// A PNG written by hand, so headers can lie: `ihdr` is (width, height, bit depth, colour type), `rows` the
    /// unfiltered scanlines actually stored.
    pub fn png_raw(w: u32, h: u32, depth: u8, color: u8, palette: Option<&[u8]>, rows: &[u8]) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        if let Some(p) = palette {
            chunk(&mut out, b"PLTE", p);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(rows).unwrap();
        chunk(&mut out, b"IDAT", &z.finish().unwrap());
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn rgb(w: u32, h: u32) -> image::DynamicImage {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 30) as u8, ((x + y) * 15) as u8])
        }))
    }

    fn animated_gif() -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
            let frames = (0..3).map(|i| {
                image::Frame::new(image::RgbaImage::from_pixel(8, 8, image::Rgba([i * 80, 0, 255 - i * 80, 255])))
            });
            enc.encode_frames(frames).unwrap();
        }
        out
    }

    /// Writes the image cases into `dir` (a flat folder) and returns them. The committed fixtures (CMYK JPEG)
    /// are copied in from `fixtures`.
    pub fn image_folder(dir: &Path, fixtures: &Path) -> Vec<Case> {
        use Expect::*;
        use image::ImageFormat as F;
        std::fs::create_dir_all(dir).unwrap();
        let png = encode(rgb(8, 8), F::Png);
        let jpg = encode(rgb(8, 8), F::Jpeg);
        let gray_row: Vec<u8> = (0..4).flat_map(|_| [0u8, 10, 20, 30, 40]).collect(); // filter byte + 4 px
        let palette_rows: Vec<u8> = (0..4).flat_map(|_| [0u8, 0, 1, 2, 1]).collect();
        let rgb16_rows: Vec<u8> = (0..2).flat_map(|_| std::iter::once(0u8).chain((0..12).map(|i| i * 20))).collect();
        let mut huge_jpg = jpg.clone();
        // Patch the SOF0 frame size to 65000 x 65000: past the decoder limits, refused before allocation.
        let sof = huge_jpg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline JPEG");
        huge_jpg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
        let mut bad_crc = png.clone();
        bad_crc[29] ^= 0xFF; // inside the IHDR CRC
        let mut random = Vec::with_capacity(4096);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            random.push(x as u8);
        }

        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            ("ok_rgb.png", png.clone(), Item),
            ("ok_rgb.jpg", jpg.clone(), Item),
            ("ok_gray.png", encode(image::DynamicImage::ImageLuma8(rgb(8, 8).to_luma8()), F::Png), Item),
            ("ok_gray.jpg", encode(image::DynamicImage::ImageLuma8(rgb(8, 8).to_luma8()), F::Jpeg), Item),
            ("ok_rgba.png", encode(image::DynamicImage::ImageRgba8(rgb(8, 8).to_rgba8()), F::Png), Item),
            ("ok_gray_alpha.png", encode(image::DynamicImage::ImageLumaA8(rgb(8, 8).to_luma_alpha8()), F::Png), Item),
            ("ok_16bit.png", png_raw(2, 2, 16, 2, None, &rgb16_rows), Item),
            ("ok_16bit_gray.png", encode(image::DynamicImage::ImageLuma16(rgb(8, 8).to_luma16()), F::Png), Item),
            ("ok_palette.png", png_raw(4, 4, 8, 3, Some(&[255, 0, 0, 0, 255, 0, 0, 0, 255]), &palette_rows), Item),
            ("ok_gray_handmade.png", png_raw(4, 4, 8, 0, None, &gray_row), Item),
            ("ok_1x1.png", encode(rgb(1, 1), F::Png), Item),
            ("ok_1x1.jpg", encode(rgb(1, 1), F::Jpeg), Item),
            ("ok_animated.gif", animated_gif(), Item),
            ("ok_bmp.bmp", encode(rgb(8, 8), F::Bmp), Item),
            ("ok_png_named.jpg", png.clone(), Item),
            ("ok_jpeg_named.png", jpg.clone(), Item),
            ("zero.png", Vec::new(), Skip),
            ("zero.jpg", Vec::new(), Skip),
            ("truncated.png", png[..png.len() / 2].to_vec(), Skip),
            ("truncated.jpg", jpg[..jpg.len() / 2].to_vec(), Skip),
            ("signature_only.png", png[..8].to_vec(), Skip),
            ("garbage.png", random[..1000].to_vec(), Skip),
            ("garbage.jpg", random[1000..3000].to_vec(), Skip),
            ("garbage_after_magic.jpg", [&[0xFF, 0xD8, 0xFF][..], &random[..500]].concat(), Skip),
            ("text.png", b"this is not an image\n".to_vec(), Skip),
            ("html.jpg", b"<html><body>404 Not Found</body></html>".to_vec(), Skip),
            ("huge_header.png", png_raw(100_000, 100_000, 8, 2, None, &[0, 0, 0, 0]), Skip),
            ("huge_header.jpg", huge_jpg, Skip),
            ("zero_width.png", png_raw(0, 4, 8, 0, None, &[0; 4]), Skip),
            ("bad_crc.png", bad_crc, ItemOrSkip),
            ("truncated.gif", animated_gif()[..40].to_vec(), Skip),
        ];
        let mut out = Vec::new();
        for (name, bytes, expect) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            out.push(Case { path, expect });
        }

        let cmyk = dir.join("ok_cmyk.jpg");
        std::fs::copy(fixtures.join("cmyk.jpg"), &cmyk).unwrap();
        out.push(Case { path: cmyk, expect: ItemOrSkip });

        // Unreadable: root reads it anyway (permissions do not bind root), so then it is a normal image.
        let locked = dir.join("unreadable.png");
        std::fs::write(&locked, &png).unwrap();
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        out.push(Case { path: locked, expect: if root { Item } else { Skip } });

        let link = dir.join("broken_link.png");
        std::os::unix::fs::symlink(dir.join("does-not-exist.png"), &link).unwrap();
        out.push(Case { path: link, expect: Skip });

        // A name that is not UTF-8 (latin-1 "café.png"): the image is fine, the name must survive.
        let latin1 = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9.png"));
        std::fs::write(&latin1, &png).unwrap();
        out.push(Case { path: latin1, expect: ItemOrSkip });

        // A directory with an image extension.
        let fake_dir = dir.join("folder.png");
        std::fs::create_dir(&fake_dir).unwrap();
        out.push(Case { path: fake_dir, expect: NotAFile });
        out
    }

    /// IDX files that lie: wrong magic, data shorter than the header says, a header whose dimensions overflow.
    pub fn idx_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        let header = |n: u32, rows: u32, cols: u32, magic: [u8; 4]| {
            let mut v = magic.to_vec();
            for d in [n, rows, cols] {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v
        };
        let files = [
            ("wrong-magic-images-idx3-ubyte", [header(2, 2, 2, [0x12, 0x34, 0x08, 0x03]), vec![0; 8]].concat()),
            ("short-images-idx3-ubyte", [header(10, 28, 28, [0, 0, 8, 3]), vec![7; 100]].concat()),
            ("overflow-images-idx3-ubyte", [header(u32::MAX, u32::MAX, u32::MAX, [0, 0, 8, 3]), vec![1; 64]].concat()),
            ("float-images-idx3-ubyte", [header(1, 2, 2, [0, 0, 0x0D, 3]), vec![0; 16]].concat()),
            ("truncated-header-images-idx3-ubyte", vec![0, 0, 8, 3, 0, 0]),
        ];
        files
            .into_iter()
            .map(|(name, bytes)| {
                let p = dir.join(name);
                std::fs::write(&p, bytes).unwrap();
                p
            })
            .collect()
    }
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/engine/tests/fixtures/bad_inputs")
}

/// The corpus says what each case is; check it against the image crate itself (with decoder limits), so a
/// case meant to be broken really is and a good one really decodes, whatever torchlight does with them.
#[test]
fn the_bad_input_corpus_is_what_it_claims() {
    use bad_inputs::Expect;
    let dir = tempfile::tempdir().unwrap();
    let cases = bad_inputs::image_folder(&dir.path().join("images"), &fixtures());
    let idx = bad_inputs::idx_files(&dir.path().join("idx"));
    let parquet = std::fs::read_dir(fixtures())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "parquet"))
        .count();
    let total = cases.len() + idx.len() + parquet;
    assert!(total >= 30, "{} image cases, {} IDX files, {parquet} parquet files", cases.len(), idx.len());
    for case in &cases {
        let decoded = std::fs::read(&case.path).map_err(|e| e.to_string()).and_then(|bytes| {
            let mut r = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().unwrap();
            let mut limits = image::Limits::default();
            limits.max_image_width = Some(1 << 15);
            limits.max_image_height = Some(1 << 15);
            r.limits(limits);
            r.decode().map_err(|e| e.to_string())
        });
        match case.expect {
            Expect::Item => assert!(decoded.is_ok(), "{}: {:?}", case.path.display(), decoded.err()),
            Expect::Skip => assert!(decoded.is_err(), "{} decodes", case.path.display()),
            Expect::ItemOrSkip | Expect::NotAFile => {}
        }
    }
}

fn torchlight(args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin::torchlight()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// (item sources, skipped (source, reason)) of a store.
fn store_contents(dir: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let store = Store::open(dir).unwrap();
    let r = store.read_txn().unwrap();
    let items = store.items(&r).unwrap().into_iter().map(|i| i.source).collect();
    let skipped = store.skipped(&r).unwrap().into_iter().map(|s| (s.source, s.reason)).collect();
    (items, skipped)
}

/// The image corpus ingested as a flat folder: exit 0, every good image an item, every bad one a skipped
/// record with a reason (and a warning naming the file), nothing missing and nothing counted twice.
#[test]
fn ingesting_the_bad_image_corpus_skips_each_bad_file_by_name() {
    use bad_inputs::Expect;
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let cases = bad_inputs::image_folder(&images, &fixtures());
    let store = dir.path().join("store");
    let (code, out) =
        torchlight(&["ingest", images.to_str().unwrap(), "--store", store.to_str().unwrap(), "--no-analyze"]);
    assert_eq!(code, 0, "{out}");
    let (items, skipped) = store_contents(&store);
    let name = |src: &str| Path::new(src).file_name().unwrap().to_string_lossy().into_owned();
    for case in &cases {
        let file = case.path.file_name().unwrap().to_string_lossy().into_owned();
        let as_item = items.iter().any(|s| name(s) == file);
        let as_skip = skipped.iter().find(|(s, _)| name(s) == file);
        let ok = match case.expect {
            Expect::Item => as_item && as_skip.is_none(),
            Expect::Skip => !as_item && as_skip.is_some_and(|(_, why)| !why.is_empty()),
            Expect::ItemOrSkip => as_item != as_skip.is_some(),
            Expect::NotAFile => !as_item && as_skip.is_none(),
        };
        assert!(ok, "{file}: expected {:?}, item {as_item}, skipped {as_skip:?}\n{out}", case.expect);
        if as_skip.is_some() {
            assert!(
                out.contains(&format!("skipping {}", case.path.to_string_lossy())) || out.contains(&file),
                "{file} not named:\n{out}"
            );
        }
    }
    let files = cases.iter().filter(|c| c.expect != Expect::NotAFile).count();
    assert_eq!(items.len() + skipped.len(), files, "items {items:?}\nskipped {skipped:?}");
}

/// Whole datasets that are broken: refused with exit 1 and a message naming the file, or (null cells, missing
/// files named by a manifest) ingested with those records skipped by name.
#[test]
fn broken_datasets_are_refused_or_skipped_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = |n: &str| dir.path().join(format!("store-{n}")).to_string_lossy().into_owned();
    let ingest = |src: &Path, n: &str, format: &str| {
        torchlight(&["ingest", src.to_str().unwrap(), "--store", &store(n), "--format", format, "--no-analyze"])
    };

    for (i, idx) in bad_inputs::idx_files(&dir.path().join("idx")).iter().enumerate() {
        let (code, out) = ingest(idx, &format!("idx{i}"), "idx");
        assert_eq!(code, 1, "{}: {out}", idx.display());
        assert!(out.contains(&idx.file_name().unwrap().to_string_lossy().into_owned()), "{}: {out}", idx.display());
    }

    // CIFAR-10 batch that is not a whole number of 3073-byte records.
    let cifar = dir.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    std::fs::write(cifar.join("data_batch_1.bin"), vec![1u8; 3073 + 100]).unwrap();
    let (code, out) = ingest(&cifar, "cifar", "cifar");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("data_batch_1.bin"), "{out}");

    let (code, out) = ingest(&fixtures().join("no_image_column.parquet"), "noimg", "parquet");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no_image_column.parquet"), "{out}");

    // Five rows: two images, a null cell, a null struct field, garbage bytes.
    let (code, out) = ingest(&fixtures().join("null_images.parquet"), "nulls", "parquet");
    assert_eq!(code, 0, "{out}");
    let (items, skipped) = store_contents(Path::new(&store("nulls")));
    assert_eq!(items.len(), 2, "{items:?} {skipped:?}");
    let rows: Vec<&str> = skipped.iter().map(|(s, _)| &s[s.rfind('#').unwrap()..]).collect();
    assert_eq!(rows, ["#row=1", "#row=2", "#row=3"], "{skipped:?}");

    // A manifest naming one real file and three that are not there.
    let csv_dir = dir.path().join("csv");
    std::fs::create_dir_all(&csv_dir).unwrap();
    std::fs::copy(fixtures().join("cmyk.jpg"), csv_dir.join("real.jpg")).unwrap();
    std::fs::write(
        csv_dir.join("manifest.csv"),
        "image,label\nreal.jpg,a\nmissing.png,b\nsub/also-missing.jpg,a\n/nonexistent/abs.png,b\n",
    )
    .unwrap();
    let (code, out) = ingest(&csv_dir.join("manifest.csv"), "csv", "csv");
    assert_eq!(code, 0, "{out}");
    let (items, skipped) = store_contents(Path::new(&store("csv")));
    assert_eq!(items.len() + skipped.len(), 4, "{items:?} {skipped:?}");
    for missing in ["missing.png", "also-missing.jpg", "abs.png"] {
        assert!(skipped.iter().any(|(s, _)| s.ends_with(missing)), "{missing} not skipped: {skipped:?}");
        assert!(out.contains(missing), "{missing} not named:\n{out}");
    }
}

/// Inputs the fuzzers found (fuzz/): each once made torchlight panic; now each is an error.
#[test]
fn fuzz_findings_are_errors_not_panics() {
    use torchlight_store::{Column, decode_column, decode_column_row, encode_column};
    // store_column: junk in the padding bytes, and a partial last row.
    let mut blob = encode_column(&Column::F32 { width: 2, values: vec![1.0, 2.0, 3.0, 4.0] });
    assert!(decode_column("c", &blob).is_ok());
    blob[2] = 0x5b;
    assert!(decode_column("c", &blob).is_err());
    let partial = encode_column(&Column::U32 { width: 3, values: vec![1, 2, 3, 4] });
    assert!(decode_column("c", &partial).is_err());
    // A row far past the end with a huge width must not overflow into a wrong slice.
    let huge = [[0u8, 0, 0, 0].as_slice(), &u32::MAX.to_le_bytes(), &[0; 8]].concat();
    assert!(matches!(decode_column_row("c", &huge, u32::MAX), Ok(None)));

    // source_parquet: a column chunk with a negative offset (the parquet crate asserts on it).
    let bad = fixtures().join("negative_offset.parquet");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (code, out) =
        torchlight(&["ingest", bad.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "parquet"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("negative_offset.parquet"), "{out}");
    // source_parquet: a dictionary page whose header claims billions of values (the parquet crate allocated 25 GB
    // for it and aborted).
    let bad = fixtures().join("huge_dictionary.parquet");
    let (code, out) =
        torchlight(&["ingest", bad.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "parquet"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("huge_dictionary.parquet") && out.contains("dictionary claims"), "{out}");
    // source_parquet: dictionary-encoded data without a dictionary page (the parquet crate panics on it): an error
    // naming the file, and no crash report.
    let bad = fixtures().join("dict_page_missing.parquet");
    let (code, out) =
        torchlight(&["ingest", bad.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "parquet"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("dict_page_missing.parquet") && out.contains("the file is corrupt"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    // source_parquet: a 3.5 KB file whose corrupt page headers made the crate read millions of them, a read syscall
    // each (27 s); now read from memory, and still an error naming the file.
    let bad = fixtures().join("corrupt_page_headers.parquet");
    let (code, out) =
        torchlight(&["ingest", bad.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "parquet"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("corrupt_page_headers.parquet"), "{out}");

    // source_idx: zero images of 65536 x 65536 (the row stride overflowed u32; a panic only where overflow
    // checks are on, as in the fuzz build).
    let idx = dir.path().join("empty-images-idx3-ubyte");
    std::fs::write(
        &idx,
        [[0u8, 0, 8, 3].as_slice(), &0u32.to_be_bytes(), &65536u32.to_be_bytes(), &65536u32.to_be_bytes()].concat(),
    )
    .unwrap();
    let (code, out) = torchlight(&[
        "ingest",
        idx.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--format",
        "idx",
        "--no-analyze",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("empty-images-idx3-ubyte holds no records"), "{out}");
}

/// Runs torchlight with a deadline (a read that blocks on a FIFO must fail the test, not hang it); returns the
/// exit code (-1 for a signal), stdout + stderr, and the child's peak resident memory in MiB (from wait4).
// The child is reaped by libc::wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn torchlight_bounded(args: &[&str], deadline: Duration) -> (i32, String, i64) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(common::bin::torchlight())
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: plain C structs, zero is a valid value; wait4 fills them for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hung = false;
    loop {
        let flags = if hung { 0 } else { libc::WNOHANG };
        // SAFETY: pid is our child, not yet reaped (std's Child is never waited on here).
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if started.elapsed() > deadline {
            child.kill().unwrap();
            hung = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out_path).unwrap() + &std::fs::read_to_string(&err_path).unwrap();
    assert!(!hung, "torchlight {args:?} still running after {deadline:?} (a read blocked or never ended):\n{text}");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, text, usage.ru_maxrss / 1024)
}

/// A real image, a FIFO, /dev/zero, a directory and a sparse 300 MiB file, each named like an image, listed by a
/// manifest and lying in a flat folder: the ingest ends (nothing blocks on the FIFO or reads /dev/zero for ever),
/// the real image is an item, and each of the others is skipped with a reason that says what it is.
#[test]
fn non_regular_and_huge_files_are_skipped_by_name_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(images.join("dir.png")).unwrap();
    std::fs::copy(fixtures().join("cmyk.jpg"), images.join("real.jpg")).unwrap();
    mkfifo(&images.join("fifo.png"));
    let huge = std::fs::File::create(images.join("huge.png")).unwrap();
    huge.set_len(300 << 20).unwrap();
    drop(huge);
    std::os::unix::fs::symlink("/dev/zero", images.join("zero.png")).unwrap();
    let expect = [
        ("fifo.png", "FIFO"),
        ("zero.png", "character device"),
        ("huge.png", "300 MiB, over the 256 MiB limit"),
        ("dir.png", "directory"),
    ];
    std::fs::write(
        dir.path().join("manifest.csv"),
        "path,label\nimages/real.jpg,a\nimages/fifo.png,b\n/dev/zero,a\nimages/zero.png,a\nimages/huge.png,b\nimages/dir.png,a\n",
    )
    .unwrap();
    let deadline = Duration::from_secs(120);
    for (source, n_skipped) in [(dir.path().join("manifest.csv"), 5), (images.clone(), 3)] {
        let store = dir.path().join(format!("store-{n_skipped}"));
        let (code, out, _) = torchlight_bounded(
            // Allowed: the manifest names /dev/zero and a symlink to it, outside its folder.
            &[
                "ingest",
                source.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
                "--no-analyze",
                "--allow-outside-paths",
            ],
            deadline,
        );
        assert_eq!(code, 0, "{out}");
        let (items, skipped) = store_contents(&store);
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(items[0].ends_with("real.jpg"));
        assert_eq!(skipped.len(), n_skipped, "{skipped:?}");
        for (name, why) in expect.iter().filter(|(n, _)| n_skipped == 5 || *n != "dir.png") {
            let s = skipped.iter().find(|(s, _)| s.ends_with(name)).unwrap_or_else(|| panic!("{name}: {skipped:?}"));
            assert!(s.1.contains(why), "{name}: {}", s.1);
            assert!(out.contains(&format!("skipping {}", s.0)), "{name} not named:\n{out}");
        }
        if n_skipped == 5 {
            assert!(skipped.iter().any(|(s, why)| s == "/dev/zero" && why.contains("character device")), "{skipped:?}");
        }
    }
}

/// A CSV manifest naming files outside its folder (`../`, absolute, a symlink leading out): without
/// `--allow-outside-paths` they are skipped unopened, by name and with the reason, after one warning that says
/// how many; with it they are ingested.
#[test]
fn csv_paths_outside_the_manifest_folder_need_allow_outside_paths() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(fixtures().join("cmyk.jpg"), data.join("real.jpg")).unwrap();
    std::fs::copy(fixtures().join("cmyk.jpg"), dir.path().join("outside.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.jpg"), data.join("link.jpg")).unwrap();
    let outside = dir.path().join("outside.jpg");
    std::fs::write(
        data.join("manifest.csv"),
        format!("path,label\nreal.jpg,a\n../outside.jpg,b\n{},a\nlink.jpg,b\n", outside.display()),
    )
    .unwrap();
    let manifest = data.join("manifest.csv");
    let store = dir.path().join("store");
    let (code, out) =
        torchlight(&["ingest", manifest.to_str().unwrap(), "--store", store.to_str().unwrap(), "--no-analyze"]);
    assert_eq!(code, 0, "{out}");
    let warning: Vec<&str> = out.lines().filter(|l| l.contains("outside its folder")).collect();
    assert_eq!(warning.len(), 1, "{out}");
    assert!(warning[0].contains("3 of the 4 records") && warning[0].contains("row 3: ../outside.jpg"), "{out}");
    let (items, skipped) = store_contents(&store);
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].ends_with("real.jpg"));
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (source, why) in &skipped {
        assert!(why.contains("outside the manifest's folder"), "{source}: {why}");
        assert!(out.contains(&format!("skipping {source}")), "{source} not named:\n{out}");
    }

    let allowed = dir.path().join("allowed");
    let (code, out) = torchlight(&[
        "ingest",
        manifest.to_str().unwrap(),
        "--store",
        allowed.to_str().unwrap(),
        "--no-analyze",
        "--allow-outside-paths",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("outside its folder"), "{out}");
    let (items, skipped) = store_contents(&allowed);
    assert_eq!((items.len(), skipped.len()), (4, 0), "{items:?} {skipped:?}");
    // The store of refused paths is not the store of allowed ones.
    let (code, out) = torchlight(&[
        "ingest",
        manifest.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--no-analyze",
        "--allow-outside-paths",
    ]);
    assert_eq!(code, 1, "{out}");
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// Dataset files that are FIFOs (IDX images, a CIFAR batch, a parquet file, a CSV manifest): each refused at once
/// with exit 1, naming the file and what it is, instead of waiting for a writer for ever.
#[test]
fn dataset_files_that_are_fifos_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cifar = dir.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    let cases = [
        (dir.path().join("fifo-images-idx3-ubyte"), dir.path().join("fifo-images-idx3-ubyte"), "idx"),
        (cifar.join("data_batch_1.bin"), cifar.clone(), "cifar"),
        (dir.path().join("fifo.parquet"), dir.path().join("fifo.parquet"), "parquet"),
        (dir.path().join("fifo.csv"), dir.path().join("fifo.csv"), "csv"),
    ];
    for (i, (fifo, source, format)) in cases.iter().enumerate() {
        mkfifo(fifo);
        let store = dir.path().join(format!("store-{i}"));
        let (code, out, _) = torchlight_bounded(
            &["ingest", source.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", format],
            Duration::from_secs(60),
        );
        assert_eq!(code, 1, "{format}: {out}");
        assert!(out.contains(fifo.to_str().unwrap()) && out.contains("FIFO"), "{format}: {out}");
    }
}

/// gzip IDX files whose header lies: more data than the stream holds, more than any gzip file that size can
/// hold, more than torchlight reads at all; and a real bomb (a 10-image header in front of 1 GiB of zeros in a
/// 1 MiB file) of which only the 10 images are decompressed.
#[test]
fn gzip_idx_headers_are_checked_against_the_data_with_a_bounded_reader() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let header = |dims: &[u32]| {
        let mut v = vec![0u8, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    };
    let gz = |parts: &[&[u8]]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for p in parts {
            e.write_all(p).unwrap();
        }
        e.finish().unwrap()
    };
    let ingest = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let store = dir.path().join(format!("store-{name}"));
        let args = ["ingest", path.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "idx"];
        let (code, out, rss) = torchlight_bounded(&[&args[..], &["--no-analyze"]].concat(), Duration::from_secs(120));
        (code, out, rss, store)
    };
    // Noise, so that the gzip file is about as big as the images (zeros would shrink to nothing).
    let mut state = 1u32;
    let ten: Vec<u8> = (0..10 * 28 * 28)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 24) as u8
        })
        .collect();

    let (code, out, _, _) = ingest("short-images-idx3-ubyte.gz", &gz(&[&header(&[1000, 28, 28]), &ten]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("short-images-idx3-ubyte.gz") && out.contains("holds 7840 data bytes"), "{out}");

    let (code, out, _, _) = ingest("claim-images-idx3-ubyte.gz", &gz(&[&header(&[4_000_000, 28, 28]), &ten]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("claim-images-idx3-ubyte.gz") && out.contains("gzip file can hold"), "{out}");

    let (code, out, _, _) = ingest("huge-images-idx3-ubyte.gz", &gz(&[&header(&[100_000_000, 280, 280])]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("huge-images-idx3-ubyte.gz") && out.contains("more than the 8 GiB"), "{out}");

    // The bomb: one member with the header, the 10 images and 64 MiB of zeros, then 15 members of 64 MiB of
    // zeros (gzip readers go on through concatenated members).
    let zeros = vec![0u8; 64 << 20];
    let first = gz(&[&header(&[10, 28, 28]), &ten, &zeros]);
    let rest = gz(&[&zeros]);
    let mut bomb = first;
    for _ in 0..15 {
        bomb.extend_from_slice(&rest);
    }
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let (code, out, rss_mib, store) = ingest("bomb-images-idx3-ubyte.gz", &bomb);
    assert_eq!(code, 0, "{out}");
    assert_eq!(store_contents(&store).0.len(), 10);
    // Decompressing it all would need at least 1 GiB resident.
    assert!(rss_mib < 700, "peak RSS {rss_mib} MiB: the whole stream was decompressed\n{out}");
}
