//! Dataset sources: each format on small fixtures (written here, or committed for parquet), order, labels,
//! class names, resume positions, unreadable images and fingerprints.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::fixtures::npy_bytes;
use image::{DynamicImage, RgbImage};
use torchlight_engine::source::{self, Format, OpenOptions, Payload, Record, Source, embeddings, hub};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources").join(name)
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([seed, (x * 7) as u8, (y * 13) as u8]));
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

fn all(src: &dyn Source, start: usize) -> Vec<Record> {
    src.records(start).unwrap().map(Result::unwrap).collect()
}

fn opts() -> OpenOptions {
    OpenOptions::default()
}

/// DIR/<class>/<image> with a corrupt, a truncated and an empty file, a text file, and a nested folder.
fn image_folder(dir: &Path) {
    for (class, n) in [("dog", 3u8), ("cat", 2)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(class).join(format!("{i}.png")), png(10 + u32::from(i), 8, i)).unwrap();
        }
    }
    std::fs::write(dir.join("cat/broken.png"), b"this is not a png").unwrap();
    let full = png(40, 40, 9);
    std::fs::write(dir.join("cat/truncated.png"), &full[..full.len() / 2]).unwrap();
    std::fs::write(dir.join("dog/empty.jpg"), b"").unwrap();
    std::fs::write(dir.join("dog/notes.txt"), b"not an image, not listed").unwrap();
    std::fs::create_dir_all(dir.join("dog/more")).unwrap();
    std::fs::write(dir.join("dog/more/z.png"), png(5, 5, 1)).unwrap();
}

#[test]
fn image_folder_sorted_classes_files_and_unreadable_images() {
    let tmp = tempfile::tempdir().unwrap();
    image_folder(tmp.path());
    assert_eq!(source::detect(tmp.path()).unwrap(), Format::ImageFolder);
    let src = source::open(tmp.path().to_str().unwrap(), &opts()).unwrap();
    let info = src.info();
    assert_eq!(info.format, Format::ImageFolder);
    assert_eq!(info.label_names, vec!["cat", "dog"]);
    let recs = all(src.as_ref(), 0);
    let names: Vec<String> =
        recs.iter().map(|r| source::relative_name(&tmp.path().canonicalize().unwrap(), Path::new(&r.source))).collect();
    assert_eq!(
        names,
        vec![
            "cat/0.png",
            "cat/1.png",
            "cat/broken.png",
            "cat/truncated.png",
            "dog/0.png",
            "dog/1.png",
            "dog/2.png",
            "dog/empty.jpg",
            "dog/more/z.png"
        ]
    );
    assert_eq!(info.len, 9);
    let labels: Vec<Option<u32>> = recs.iter().map(|r| r.label).collect();
    assert_eq!(labels, [0, 0, 0, 0, 1, 1, 1, 1, 1].map(Some).to_vec());
    let d = recs[1].decode().unwrap();
    assert_eq!((d.image.width(), d.image.height()), (11, 8));
    let broken = recs[2].decode().err().unwrap().to_string();
    assert!(broken.contains("not an image format"), "{broken}");
    let truncated = recs[3].decode().err().unwrap().to_string();
    assert!(truncated.contains("decode failed"), "{truncated}");
    let empty = recs[7].decode().err().unwrap().to_string();
    assert!(empty.contains("empty file"), "{empty}");
    // Resume from any position gives the same records.
    let tail = all(src.as_ref(), 5);
    assert_eq!(
        tail.iter().map(|r| &r.source).collect::<Vec<_>>(),
        recs[5..].iter().map(|r| &r.source).collect::<Vec<_>>()
    );
}

#[test]
fn flat_folder_has_no_labels_and_fingerprints_differ() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..3u8 {
        std::fs::write(tmp.path().join(format!("b{i}.png")), png(6, 6, i)).unwrap();
    }
    std::fs::write(tmp.path().join("readme.md"), "x").unwrap();
    assert_eq!(source::detect(tmp.path()).unwrap(), Format::Flat);
    let src = source::open(tmp.path().to_str().unwrap(), &opts()).unwrap();
    assert_eq!(src.info().len, 3);
    assert!(src.info().label_names.is_empty());
    assert!(all(src.as_ref(), 0).iter().all(|r| r.label.is_none()));
    let fp1 = src.info().fingerprint.clone();
    let again = source::open(tmp.path().to_str().unwrap(), &opts()).unwrap();
    assert_eq!(again.info().fingerprint, fp1, "same folder, same fingerprint");
    std::fs::write(tmp.path().join("b3.png"), png(6, 6, 3)).unwrap();
    let changed = source::open(tmp.path().to_str().unwrap(), &opts()).unwrap();
    assert_ne!(changed.info().fingerprint, fp1, "another file, another dataset");
}

fn idx_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    for i in 0..n * rows * cols {
        out.push((i % 251) as u8);
    }
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn idx_gz_and_plain_paired_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&idx_images(5, 4, 3))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz(&idx_labels(&[9, 0, 3, 3, 1]))).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images(2, 4, 3)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(&[7, 2])).unwrap();
    assert_eq!(source::detect(&dir).unwrap(), Format::Idx);

    let train = source::open(dir.to_str().unwrap(), &opts()).unwrap();
    assert_eq!(train.info().len, 5);
    assert_eq!(train.info().label_names[9], "Ankle boot", "Fashion-MNIST names from the path");
    let recs = all(train.as_ref(), 0);
    assert_eq!(recs.iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![9, 0, 3, 3, 1]);
    let Payload::Raw { width, height, channels, pixels } = &recs[1].payload else { panic!("raw pixels") };
    assert_eq!((*width, *height, *channels), (3, 4, 1));
    assert_eq!(pixels, &(12..24).map(|i: u8| i).collect::<Vec<u8>>());
    let d = recs[1].decode().unwrap();
    assert_eq!(d.image.as_luma8().unwrap().get_pixel(1, 0)[0], 13);
    assert_eq!(all(train.as_ref(), 3)[0].source, recs[3].source);

    let test = source::open(dir.to_str().unwrap(), &OpenOptions { split: Some("test".into()), ..opts() }).unwrap();
    assert_eq!(all(test.as_ref(), 0).iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![7, 2]);
    // Pointing at the images file finds its labels file.
    let file = source::open(dir.join("t10k-images-idx3-ubyte").to_str().unwrap(), &opts()).unwrap();
    assert_eq!(file.info().format, Format::Idx);
    assert_eq!(all(file.as_ref(), 0)[1].label, Some(2));
    assert_ne!(file.info().fingerprint, train.info().fingerprint);
}

#[test]
fn idx_with_wrong_label_count_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train-images-idx3-ubyte"), idx_images(3, 2, 2)).unwrap();
    std::fs::write(tmp.path().join("train-labels-idx1-ubyte"), idx_labels(&[1, 2])).unwrap();
    let err = source::open(tmp.path().to_str().unwrap(), &opts()).err().unwrap().to_string();
    assert!(err.contains("labels file") && err.contains("3 images"), "{err}");
}

fn cifar_record(label_bytes: &[u8], seed: u8) -> Vec<u8> {
    let mut out = label_bytes.to_vec();
    for plane in 0..3u8 {
        for p in 0..1024u32 {
            out.push(seed.wrapping_mul(3).wrapping_add(plane * 80).wrapping_add((p % 7) as u8));
        }
    }
    out
}

#[test]
fn cifar10_batches_in_order_with_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Batch 10 sorts after batch 2 by number, not by name.
    for (b, labels) in [(1, vec![3u8, 5]), (2, vec![0]), (10, vec![9, 9, 1])] {
        let bytes: Vec<u8> =
            labels.iter().enumerate().flat_map(|(i, &l)| cifar_record(&[l], b * 10 + i as u8)).collect();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[4], 200)).unwrap();
    let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
    std::fs::write(dir.join("batches.meta.txt"), names.join("\n") + "\n\n").unwrap();
    assert_eq!(source::detect(dir).unwrap(), Format::Cifar);
    let src = source::open(dir.to_str().unwrap(), &opts()).unwrap();
    assert_eq!(src.info().len, 6);
    assert_eq!(src.info().label_names, names);
    let recs = all(src.as_ref(), 0);
    assert_eq!(recs.iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![3, 5, 0, 9, 9, 1]);
    assert!(recs[3].source.ends_with("data_batch_10.bin#0"), "{}", recs[3].source);
    // Planes become interleaved RGB: pixel 0 is (R[0], G[0], B[0]).
    let img = recs[1].decode().unwrap().image;
    let px = img.as_rgb8().unwrap().get_pixel(0, 0).0;
    let seed = 11u8.wrapping_mul(3);
    assert_eq!(px, [seed, seed.wrapping_add(80), seed.wrapping_add(160)]);
    // Starting inside a later file.
    let tail = all(src.as_ref(), 4);
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].source, recs[4].source);
    assert_eq!(tail[0].decode().unwrap().hash, recs[4].decode().unwrap().hash);
    let test = source::open(dir.to_str().unwrap(), &OpenOptions { split: Some("test".into()), ..opts() }).unwrap();
    assert_eq!(all(test.as_ref(), 0)[0].label, Some(4));
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bytes: Vec<u8> = [(1u8, 42u8), (19, 7)].iter().flat_map(|&(c, f)| cifar_record(&[c, f], c)).collect();
    std::fs::write(dir.join("train.bin"), bytes).unwrap();
    std::fs::write(dir.join("fine_label_names.txt"), (0..100).map(|i| format!("fine{i}\n")).collect::<String>())
        .unwrap();
    std::fs::write(dir.join("coarse_label_names.txt"), (0..20).map(|i| format!("coarse{i}\n")).collect::<String>())
        .unwrap();
    let fine = source::open(dir.to_str().unwrap(), &opts()).unwrap();
    assert_eq!(all(fine.as_ref(), 0).iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![42, 7]);
    assert_eq!(fine.info().label_names.len(), 100);
    let coarse =
        source::open(dir.to_str().unwrap(), &OpenOptions { label_column: Some("coarse".into()), ..opts() }).unwrap();
    assert_eq!(all(coarse.as_ref(), 0).iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![1, 19]);
    assert_eq!(coarse.info().label_names[19], "coarse19");
    assert_ne!(coarse.info().fingerprint, fine.info().fingerprint);
}

#[test]
fn csv_manifest_relative_paths_and_text_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    std::fs::write(dir.join("imgs/a.png"), png(4, 4, 1)).unwrap();
    std::fs::write(dir.join("imgs/b.png"), png(5, 4, 2)).unwrap();
    std::fs::write(
        dir.join("list.csv"),
        "id,path,label\n1,imgs/b.png,zebra\n2,imgs/a.png,ant\n3,imgs/missing.png,zebra\n4,imgs/a.png,\n",
    )
    .unwrap();
    assert_eq!(source::detect(&dir.join("list.csv")).unwrap(), Format::Csv);
    let src = source::open(dir.join("list.csv").to_str().unwrap(), &opts()).unwrap();
    assert_eq!(src.info().label_names, vec!["ant", "zebra"]);
    let recs = all(src.as_ref(), 0);
    assert_eq!(recs.iter().map(|r| r.label).collect::<Vec<_>>(), vec![Some(1), Some(0), Some(1), None]);
    assert_eq!(recs[0].decode().unwrap().image.width(), 5);
    let missing = recs[2].decode().err().unwrap().to_string();
    assert!(missing.contains("cannot read file"), "{missing}");
    // Integer labels stay as they are; columns can be named.
    std::fs::write(dir.join("ints.csv"), "file,y\nimgs/a.png,7\nimgs/b.png,3\n").unwrap();
    let ints =
        source::open(dir.join("ints.csv").to_str().unwrap(), &OpenOptions { label_column: Some("y".into()), ..opts() })
            .unwrap();
    assert_eq!(all(ints.as_ref(), 0).iter().map(|r| r.label).collect::<Vec<_>>(), vec![Some(7), Some(3)]);
    assert!(ints.info().label_names.is_empty());
    let err = source::open(
        dir.join("ints.csv").to_str().unwrap(),
        &OpenOptions { label_column: Some("nope".into()), ..opts() },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no label column nope"), "{err}");
}

/// Paths a manifest names outside its folder (`..`, absolute, a symlinked file or folder leading out) are
/// refused unopened with one warning, unless allowed; paths that stay inside (`imgs/../imgs`, a symlink to a
/// file in the folder) are read as before.
#[test]
fn csv_paths_outside_the_manifest_folder_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let away = tmp.path().join("away");
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    std::fs::create_dir_all(&away).unwrap();
    std::fs::write(dir.join("imgs/a.png"), png(4, 4, 1)).unwrap();
    std::fs::write(away.join("x.png"), png(6, 4, 2)).unwrap();
    // A FIFO outside: had it been looked at, the reason would call it a FIFO.
    let fifo = std::ffi::CString::new(away.join("fifo.png").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink(away.join("x.png"), dir.join("imgs/out-link.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("imgs/a.png"), dir.join("imgs/in-link.png")).unwrap();
    std::os::unix::fs::symlink(&away, dir.join("elsewhere")).unwrap();
    let rows = [
        ("imgs/a.png", false),
        ("../away/x.png", true),
        ("imgs/../imgs/a.png", false),
        (away.join("fifo.png").to_str().unwrap(), true),
        ("imgs/out-link.png", true),
        ("imgs/in-link.png", false),
        ("elsewhere/x.png", true),
        (dir.join("imgs/a.png").to_str().unwrap(), false),
    ]
    .map(|(p, out)| (p.to_string(), out));
    let body: String = rows.iter().map(|(p, _)| format!("{p},a\n")).collect();
    std::fs::write(dir.join("list.csv"), format!("path,label\n{body}")).unwrap();
    let manifest = dir.join("list.csv");

    let src = source::open(manifest.to_str().unwrap(), &opts()).unwrap();
    let warnings = src.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("4 of the 8 records")
            && warnings[0].contains("(the first, row 3: ../away/x.png)")
            && warnings[0].contains("--allow-outside-paths"),
        "{warnings:?}"
    );
    for (rec, (p, out)) in all(src.as_ref(), 0).iter().zip(&rows) {
        match rec.decode() {
            Ok(d) => assert!(!out && d.image.width() == 4, "{p} was read"),
            Err(e) => {
                assert!(*out, "{p}: {e}");
                assert!(e.to_string().contains("outside the manifest's folder"), "{p}: {e}");
                assert!(matches!(rec.payload, Payload::Unreadable(_)), "{p}");
            }
        }
    }
    // Resuming part way refuses the same records.
    let from_3 = all(src.as_ref(), 3);
    assert!(matches!(from_3[0].payload, Payload::Unreadable(_)) && matches!(from_3[2].payload, Payload::File(_)));

    let allowed = OpenOptions { allow_outside_paths: true, ..opts() };
    let src_allowed = source::open(manifest.to_str().unwrap(), &allowed).unwrap();
    assert!(src_allowed.warnings().is_empty());
    let recs = all(src_allowed.as_ref(), 0);
    assert_eq!(recs[1].decode().unwrap().image.width(), 6);
    assert!(recs[3].decode().err().unwrap().to_string().contains("FIFO"));
    assert_ne!(src.info().fingerprint, src_allowed.info().fingerprint, "a store is one or the other");

    // A manifest with every path inside warns of nothing and keeps its fingerprint either way.
    std::fs::write(dir.join("list.csv"), "path\nimgs/a.png\nimgs/in-link.png\n").unwrap();
    let inside = source::open(manifest.to_str().unwrap(), &opts()).unwrap();
    assert!(inside.warnings().is_empty());
    let inside_allowed = source::open(manifest.to_str().unwrap(), &allowed).unwrap();
    assert_eq!(inside.info().fingerprint, inside_allowed.info().fingerprint);
}

#[test]
fn parquet_hf_layout_with_class_names_and_row_groups() {
    let path = fixture("tiny.parquet");
    assert_eq!(source::detect(&path).unwrap(), Format::Parquet);
    let src = source::open(path.to_str().unwrap(), &opts()).unwrap();
    assert_eq!(src.info().len, 8);
    assert_eq!(src.info().label_names, vec!["cat", "dog", "bird"]);
    let recs = all(src.as_ref(), 0);
    assert_eq!(recs.len(), 8);
    assert_eq!(recs.iter().map(|r| r.label.unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2, 0, 1]);
    assert!(recs[4].source.ends_with("tiny.parquet#row=4"));
    // Row i is an (8+i) x (6+i) PNG.
    for i in [0usize, 4, 7] {
        let d = recs[i].decode().unwrap();
        assert_eq!((d.image.width(), d.image.height()), (8 + i as u32, 6 + i as u32));
    }
    let corrupt = recs[5].decode().err().unwrap().to_string();
    assert!(corrupt.contains("decode failed"), "{corrupt}");
    let null = recs[6].decode().err().unwrap().to_string();
    assert!(null.contains("null"), "{null}");
    // Row groups hold 3 rows: start inside the second and at the last.
    for start in [4usize, 7] {
        let tail = all(src.as_ref(), start);
        assert_eq!(tail.len(), 8 - start);
        assert_eq!(tail[0].source, recs[start].source);
        assert_eq!(tail[0].decode().unwrap().hash, recs[start].decode().unwrap().hash);
    }
}

#[test]
fn parquet_directory_narrowed_to_split() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::copy(fixture("tiny.parquet"), tmp.path().join("data/train-00000-of-00002.parquet")).unwrap();
    std::fs::copy(fixture("tiny.parquet"), tmp.path().join("data/train-00001-of-00002.parquet")).unwrap();
    std::fs::copy(fixture("tiny.parquet"), tmp.path().join("data/test-00000-of-00001.parquet")).unwrap();
    assert_eq!(source::detect(tmp.path()).unwrap(), Format::Parquet);
    let train = source::open(tmp.path().to_str().unwrap(), &opts()).unwrap();
    assert_eq!(train.info().len, 16);
    let recs = all(train.as_ref(), 7);
    assert!(recs[0].source.ends_with("train-00000-of-00002.parquet#row=7"), "{}", recs[0].source);
    assert!(recs[1].source.ends_with("train-00001-of-00002.parquet#row=0"), "{}", recs[1].source);
    let test =
        source::open(tmp.path().to_str().unwrap(), &OpenOptions { split: Some("test".into()), ..opts() }).unwrap();
    assert_eq!(test.info().len, 8);
    assert_ne!(test.info().fingerprint, train.info().fingerprint);
    let err = source::open(tmp.path().to_str().unwrap(), &OpenOptions { split: Some("validation".into()), ..opts() })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no parquet files of split validation"), "{err}");
}

#[test]
fn hub_split_discovery_in_the_layouts_the_hub_uses() {
    let files = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // datasets' push_to_hub layout.
    let push = files(&[
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/test-00000-of-00001.parquet",
    ]);
    assert_eq!(hub::split_files("u/d", &push, None, "train").unwrap().len(), 2);
    assert_eq!(hub::split_files("u/d", &push, None, "test").unwrap(), vec!["data/test-00000-of-00001.parquet"]);
    let err = hub::split_files("u/d", &push, None, "validation").unwrap_err().to_string();
    assert!(err.contains("no split validation") && err.contains("train, test"), "{err}");
    // The parquet conversion branch: CONFIG/SPLIT/NNNN.parquet, several configs.
    let conv = files(&[
        "cifar10/train/0000.parquet",
        "cifar10/train/0001.parquet",
        "cifar10/test/0000.parquet",
        "other/train/0000.parquet",
    ]);
    assert_eq!(
        hub::split_files("c", &conv, Some("cifar10"), "train").unwrap(),
        vec!["cifar10/train/0000.parquet", "cifar10/train/0001.parquet"]
    );
    let err = hub::split_files("c", &conv, None, "train").unwrap_err().to_string();
    assert!(err.contains("several configs (cifar10, other)"), "{err}");
    let err = hub::split_files("c", &conv, Some("nope"), "train").unwrap_err().to_string();
    assert!(err.contains("no config nope"), "{err}");
    // Older conversion names: CONFIG/NAME-SPLIT.parquet; `default` is picked without a config.
    let old =
        files(&["plain_text/cifar10-train.parquet", "plain_text/cifar10-test.parquet", "default/x-train.parquet"]);
    assert_eq!(
        hub::split_files("c", &old, Some("plain_text"), "test").unwrap(),
        vec!["plain_text/cifar10-test.parquet"]
    );
    assert_eq!(hub::split_files("c", &old, None, "train").unwrap(), vec!["default/x-train.parquet"]);
    assert!(hub::split_files("c", &files(&["README.md"]), None, "train").is_err());
    assert_eq!(hub::parse_spec("user/ds:cfg"), ("user/ds", Some("cfg")));
    assert_eq!(hub::parse_spec("mnist"), ("mnist", None));
}

#[test]
fn npy_float32_float64_and_fortran_order() {
    let vals = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let f4: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let m = embeddings::parse_npy(npy_bytes("<f4", "(2, 3)", false, &f4)).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.data, vals);
    let f8: Vec<u8> = vals.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect();
    assert_eq!(embeddings::parse_npy(npy_bytes("<f8", "(2, 3)", false, &f8)).unwrap().data, vals);
    // Column-major: [[1, 3, 5], [2, 4, 6]] stored as 1 2 3 4 5 6.
    let m = embeddings::parse_npy(npy_bytes("<f4", "(2, 3)", true, &f4)).unwrap();
    assert_eq!(m.data, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    let err = embeddings::parse_npy(npy_bytes("<i8", "(2, 3)", false, &f8)).unwrap_err().to_string();
    assert!(err.contains("float32 or float64"), "{err}");
    let err = embeddings::parse_npy(npy_bytes("<f4", "(6,)", false, &f4)).unwrap_err().to_string();
    assert!(err.contains("2-D"), "{err}");
    let err = embeddings::parse_npy(npy_bytes("<f4", "(3, 3)", false, &f4)).unwrap_err().to_string();
    assert!(err.contains("needs 36"), "{err}");
    // Big-endian, as numpy writes with dtype '>f4'.
    let be: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(embeddings::parse_npy(npy_bytes(">f4", "(2, 3)", false, &be)).unwrap().data, vals);
    // A forged shape is refused from the header, before any allocation.
    let err = embeddings::parse_npy(npy_bytes("<f4", "(4611686018427387904, 4)", false, &f4)).unwrap_err().to_string();
    assert!(err.contains("overflows"), "{err}");
    // 3-D column-major through the general reader: element (i, j, k) of shape (2, 2, 2) stored at i + 2j + 4k.
    let a = torchlight_store::npy::parse(npy_bytes(
        "<f4",
        "(2, 2, 2)",
        true,
        &(0..8).flat_map(|v| (v as f32).to_le_bytes()).collect::<Vec<_>>(),
    ))
    .unwrap();
    assert_eq!(a.to_f32(), [0.0, 4.0, 2.0, 6.0, 1.0, 5.0, 3.0, 7.0]);
}

#[test]
fn parquet_list_column_embeddings() {
    let m = embeddings::read(&fixture("embeddings.parquet"), None).unwrap();
    assert_eq!((m.rows, m.cols), (4, 3));
    assert_eq!(&m.data[3..6], &[1.0, 1.5, -1.0]);
    let err = embeddings::read(&fixture("embeddings.parquet"), Some("id")).unwrap_err().to_string();
    assert!(err.contains("no list column id"), "{err}");
}

/// gen_shards.py's two shards written by `datasets`: `embedding_ft` (float32) and `embedding.foundation`
/// (float64, a dot in its name) read across both files in record order equal the .npy of the same vectors.
#[test]
fn embedding_columns_across_shards_equal_the_npy() {
    use source::column::ColumnRows;
    let dir = fixture("shards");
    let src = source::open(dir.to_str().unwrap(), &opts()).unwrap();
    assert_eq!((src.info().format, src.info().len), (Format::Parquet, 40));
    let files = src.parquet_files().unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]);
    for (column, npy) in [("embedding_ft", "ft.npy"), ("embedding.foundation", "foundation.npy")] {
        let want = embeddings::read_npy(&dir.join(npy)).unwrap();
        let mut rows = ColumnRows::open(&files, column).unwrap();
        assert_eq!(rows.rows(), 40);
        for r in 0..40 {
            assert_eq!(rows.next_row().unwrap(), &want.data[r * want.cols..(r + 1) * want.cols], "{column} row {r}");
        }
        assert!(rows.next_row().is_err(), "past the last row");
        // Rows passed over are not read: straight to the second shard.
        let mut rows = ColumnRows::open(&files, column).unwrap();
        assert_eq!(rows.row(33).unwrap(), &want.data[33 * want.cols..34 * want.cols]);
    }
}

/// Every way a column can fail to be a vector per row is refused naming the file and the row; the column is
/// found by its top-level name, so `emb.dotted` is not the member `dotted` of the struct `emb`.
#[test]
fn embedding_column_errors_name_the_file_and_row() {
    use source::column::ColumnRows;
    let files = vec![fixture("column_errors.parquet")];
    let read_all = |column: &str| -> Result<Vec<Vec<f32>>, String> {
        let mut rows = ColumnRows::open(&files, column).map_err(|e| e.to_string())?;
        (0..rows.rows()).map(|_| rows.next_row().map(<[f32]>::to_vec).map_err(|e| e.to_string())).collect()
    };
    let ok: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, i as f32 + 0.5, -(i as f32)]).collect();
    for column in ["ok", "half", "doubles", "required"] {
        assert_eq!(read_all(column).unwrap(), ok, "{column}");
    }
    assert_eq!(
        read_all("emb.dotted").unwrap(),
        (0..5).map(|i| vec![10.0 + i as f32, 20.0 + i as f32]).collect::<Vec<_>>()
    );
    for (column, row, what) in [
        ("ragged", 3, "holds 2 values, but"),
        ("nulls", 2, "is null"),
        ("null_element", 1, "element 1 is null"),
        ("nan", 4, "element 1 is NaN"),
        ("inf", 0, "element 0 is inf"),
        ("big", 1, "beyond float32's range"),
        ("empty", 2, "empty list"),
    ] {
        let err = read_all(column).unwrap_err();
        let at = format!("column_errors.parquet row {row}: column {column}");
        assert!(err.contains(&at) && err.contains(what), "{column}: {err}");
    }
    for (column, what) in [
        ("strings", "is a list of strings, not of float32, float64 or float16"),
        ("ints", "is a list of INT64"),
        ("nested", "is a list of lists"),
        ("scalar", "is FLOAT, not a list of numbers"),
        ("emb", "is a struct of dotted, not a list of numbers"),
        ("missing", "no column missing (its columns: image, label, ok,"),
    ] {
        let err = ColumnRows::open(&files, column).err().unwrap().to_string();
        assert!(err.contains("column_errors.parquet: ") && err.contains(what), "{column}: {err}");
    }
    // A bad row passed over (a record that did not become an item) is not checked.
    let mut rows = ColumnRows::open(&files, "nulls").unwrap();
    assert_eq!(rows.row(1).unwrap(), &ok[1][..]);
    assert_eq!(rows.row(3).unwrap(), &ok[3][..]);
    // A column missing from one shard is refused naming that shard.
    let src = source::open(fixture("missing_in_shard").to_str().unwrap(), &opts()).unwrap();
    let err = ColumnRows::open(&src.parquet_files().unwrap(), "emb").err().unwrap().to_string();
    assert!(err.contains("train-00001-of-00002.parquet: no column emb (its columns: image, label)"), "{err}");
}

/// Parquet is found below a dataset folder's top, even beside a picture at the top (a hub repository's
/// banner), but not searched for inside folders of images: an ImageFolder whose class folders hold a stray
/// .parquet two levels down is still an ImageFolder.
#[test]
fn detection_finds_parquet_below_the_top_but_not_inside_image_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("data")).unwrap();
    std::fs::write(repo.join("banner.png"), b"").unwrap();
    std::fs::write(repo.join("data/train-00000-of-00001.parquet"), b"").unwrap();
    assert_eq!(source::detect(&repo).unwrap(), Format::Parquet);
    let folder = tmp.path().join("folder");
    std::fs::create_dir_all(folder.join("cat/extra")).unwrap();
    std::fs::write(folder.join("cat/0.png"), b"").unwrap();
    std::fs::write(folder.join("cat/extra/old.parquet"), b"").unwrap();
    assert_eq!(source::detect(&folder).unwrap(), Format::ImageFolder);
}
