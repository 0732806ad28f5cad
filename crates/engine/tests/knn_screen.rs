//! The int8 screen + exact re-rank (`KnnOptions::screen`) finds the same neighbours as the plain f32 path:
//! on the committed parity data, and on data built to break a screen (duplicates, 1-ulp near duplicates,
//! identical rows, a zero row, tiny n, 1 to 3 dimensions, signed values, block edges). The portable loops
//! (`Simd::Portable`) give the vector loops' results on all of it.

use std::fs::File;
use std::path::Path;

use tch::Device;
use torchlight_engine::analysis::Hooks;
use torchlight_engine::analysis::knn::{self, Knn, KnnOptions, Metric, Screen, ScreenStats, Simd};
use torchlight_store::npy;

fn fixture(name: &str) -> (Vec<f32>, usize, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analysis").join(name);
    let a = npy::read(flate2::read::GzDecoder::new(File::open(path).unwrap())).unwrap();
    (a.to_f32(), a.shape[0], a.shape[1])
}

/// Deterministic pseudo-random numbers in [-1, 1) (splitmix64), so the tests need no rng crate API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn rows(&mut self, n: usize, d: usize) -> Vec<f32> {
        (0..n * d).map(|_| self.next()).collect()
    }
}

fn opts(k: usize, block: usize, screen: bool) -> KnnOptions {
    let screen = if screen { Screen::Always } else { Screen::Never };
    KnnOptions { block, screen, ..KnnOptions::new(k, Metric::Cosine, Device::Cpu) }
}

/// Screened and plain f32 neighbours of the same data with the same block size.
fn both(x: &[f32], n: usize, d: usize, k: usize, block: usize) -> (Knn, ScreenStats, Knn) {
    let (screened, stats) = knn::exact_knn_with_stats(x, n, d, &opts(k, block, true), &Hooks::none()).unwrap();
    let stats = stats.expect("the screen ran on finite CPU cosine data");
    let (plain, none) = knn::exact_knn_with_stats(x, n, d, &opts(k, block, false), &Hooks::none()).unwrap();
    assert!(none.is_none(), "screen off runs the f32 path");
    (screened, stats, plain)
}

/// Same distances (to f32 rounding of the similarity) and the same ids wherever distances are not tied: the
/// neighbours nearer than the k-th distance (minus the tolerance) are the same set, and any id that differs
/// sits at a distance shared with another neighbour or with the k-th. Returns how many ids differ.
fn assert_same(screened: &Knn, plain: &Knn, what: &str) -> usize {
    const TOL: f32 = 2e-6;
    assert_eq!((screened.n, screened.k), (plain.n, plain.k), "{what}: shape");
    let mut differ = 0;
    for i in 0..plain.n {
        let (a, b) = (screened.row_dists(i), plain.row_dists(i));
        let (ia, ib) = (screened.row_ids(i), plain.row_ids(i));
        assert!(!ia.contains(&(i as u32)), "{what}: item {i} is its own neighbour");
        let edge = b[plain.k - 1];
        let sure = b.iter().take_while(|&&v| v < edge - TOL).count();
        let set = |ids: &[u32]| {
            let mut v = ids[..sure].to_vec();
            v.sort_unstable();
            v
        };
        assert_eq!(set(ia), set(ib), "{what}: item {i}: neighbours nearer than the k-th differ");
        for p in 0..plain.k {
            assert!(
                (a[p] - b[p]).abs() <= TOL,
                "{what}: item {i} neighbour {p}: distance {} vs f32 path {}",
                a[p],
                b[p]
            );
            if ia[p] != ib[p] {
                differ += 1;
                let tied = (0..plain.k).any(|q| q != p && (b[q] - b[p]).abs() <= TOL);
                assert!(
                    tied || p >= sure,
                    "{what}: item {i} neighbour {p}: id {} vs f32 path {} at {}",
                    ia[p],
                    ib[p],
                    b[p]
                );
            }
        }
    }
    differ
}

#[test]
fn parity_data_gives_the_f32_neighbours_and_most_items_are_proven() {
    for (name, k) in [("fashion_x.npy.gz", 10), ("digits_x.npy.gz", 10), ("fashion_x.npy.gz", 15)] {
        let (x, n, d) = fixture(name);
        // One block, and blocks small enough that row and column scans and uneven edges all run.
        for block in [0, 333] {
            let (s, stats, p) = both(&x, n, d, k, block);
            let differ = assert_same(&s, &p, &format!("{name} k={k} block={block}"));
            assert!(differ * 1000 <= n * k, "{name}: {differ} neighbour ids differ (ties)");
            assert!(stats.candidates >= k + 32, "{} candidates", stats.candidates);
            assert!(stats.rescanned * 10 < n, "{name}: {} of {n} items without a proof", stats.rescanned);
        }
    }
}

/// 40 distinct rows, each 15 times (more copies than k), then each once more with one component 1 ulp up,
/// then 100 other rows; `[n, 48]`.
fn duplicates() -> (Vec<f32>, usize, usize) {
    let mut rng = Rng(7);
    let d = 48;
    let base = rng.rows(40, d);
    let mut x = Vec::new();
    for copy in 0..16 {
        for r in 0..40 {
            let mut row = base[r * d..(r + 1) * d].to_vec();
            if copy == 15 {
                row[r % d] = row[r % d].next_up();
            }
            x.extend(row);
        }
    }
    x.extend(rng.rows(100, d));
    let n = x.len() / d;
    (x, n, d)
}

#[test]
fn duplicate_groups_and_one_ulp_near_duplicates() {
    let (x, n, d) = duplicates();
    let (s, stats, p) = both(&x, n, d, 10, 128);
    assert_same(&s, &p, "duplicates");
    for i in 0..600 {
        assert!(s.row_dists(i).iter().all(|&v| v == 0.0), "item {i} has 14 exact copies at distance 0");
        let group = i % 40;
        // Copies, or the 1-ulp copy where f32 rounds it to the same similarity.
        assert!(s.row_ids(i).iter().all(|&j| j as usize % 40 == group && j < 640), "item {i}: copies only");
    }
    assert!(stats.rescanned < n, "duplicates still have a proof where the group is well separated");
}

/// 90 copies of one row, `[90, 20]`.
fn identical_rows() -> (Vec<f32>, usize, usize) {
    let (n, d) = (90, 20);
    let row: Vec<f32> = (0..d).map(|i| i as f32 - 7.5).collect();
    (row.repeat(n), n, d)
}

#[test]
fn identical_rows_fall_back_to_the_exact_search() {
    let (x, n, d) = identical_rows();
    let (s, stats, p) = both(&x, n, d, 10, 32);
    assert_same(&s, &p, "identical rows");
    assert!(s.dists.iter().all(|&v| v == 0.0));
    // Everything ties: no item can be proven, all are searched exactly, and the result is still right.
    assert_eq!(stats.rescanned, n);
}

/// Signed values with row 5 zero, row 20 row 9 scaled by 1000 and row 21 row 9 negated, `[700, 33]`.
fn signed_with_zero_row() -> (Vec<f32>, usize, usize) {
    let mut rng = Rng(11);
    let (n, d) = (700, 33);
    let mut x = rng.rows(n, d);
    x[5 * d..6 * d].fill(0.0);
    // A scaled and a negated copy: distance 0 (up to rounding) and 2.
    let r9: Vec<f32> = x[9 * d..10 * d].to_vec();
    x[20 * d..21 * d].copy_from_slice(&r9.iter().map(|v| v * 1000.0).collect::<Vec<_>>());
    x[21 * d..22 * d].copy_from_slice(&r9.iter().map(|v| -v).collect::<Vec<_>>());
    (x, n, d)
}

#[test]
fn zero_row_signed_values_and_scaled_copies() {
    let (x, n, d) = signed_with_zero_row();
    let (s, _, p) = both(&x, n, d, 10, 100);
    assert_same(&s, &p, "signed");
    // sklearn: the zero row is at cosine distance 1 from everything.
    assert!(s.row_dists(5).iter().all(|&v| v == 1.0));
    assert_eq!(s.row_ids(9)[0], 20);
    assert!(s.row_dists(9)[0] < 1e-6);
}

/// Random rows: few items around k and the block edges (block 0), then 500 items in 1 to 3 dimensions
/// (block 120). Each as (x, n, d, block).
fn tiny_and_low_dimensional() -> Vec<(Vec<f32>, usize, usize, usize)> {
    let mut rng = Rng(3);
    let mut out = Vec::new();
    for (n, d) in [(2, 5), (3, 8), (11, 16), (12, 16), (42, 16), (43, 16), (84, 16), (85, 16)] {
        out.push((rng.rows(n, d), n, d, 0));
    }
    for d in 1..=3 {
        out.push((rng.rows(500, d), 500, d, 120));
    }
    out
}

#[test]
fn tiny_n_and_low_dimensions() {
    for (x, n, d, block) in tiny_and_low_dimensional() {
        let (s, stats, p) = both(&x, n, d, 10, block);
        assert_same(&s, &p, &format!("n={n} d={d}"));
        assert_eq!(s.k, 10.min(n - 1));
        if n - 1 <= stats.candidates {
            assert_eq!(stats.rescanned, 0, "n={n}: every item is a candidate, nothing to prove");
        }
    }
}

#[test]
fn non_finite_values_take_the_f32_path() {
    let mut rng = Rng(5);
    let (n, d) = (50, 8);
    let mut x = rng.rows(n, d);
    x[3] = f32::NAN;
    let (_, stats) = knn::exact_knn_with_stats(&x, n, d, &opts(5, 0, true), &Hooks::none()).unwrap();
    assert!(stats.is_none());
}

#[test]
fn progress_reports_the_items_without_a_proof_and_cancel_stops() {
    let d = 20;
    let n = 60;
    let x: Vec<f32> = (0..n * d).map(|i| (i % d) as f32).collect();
    let seen = std::sync::Mutex::new(None);
    let progress = |stage: &str, done: usize, total: usize| {
        if stage.contains("without proof") {
            *seen.lock().unwrap() = Some((done, total));
        }
    };
    let hooks = Hooks { progress: &progress, cancel: &|| false };
    knn::exact_knn(&x, n, d, &opts(10, 0, true), &hooks).unwrap();
    assert_eq!(*seen.lock().unwrap(), Some((n, n)));
    let cancel = Hooks { progress: &|_, _, _| {}, cancel: &|| true };
    assert!(knn::exact_knn(&x, n, d, &opts(10, 0, true), &cancel).is_err());
}

/// `n` points around 4 random centres with uniform noise of the given size.
fn clusters(seed: u64, n: usize, d: usize, noise: f32) -> Vec<f32> {
    let mut rng = Rng(seed);
    let centres = rng.rows(4, d);
    (0..n).flat_map(|i| (0..d).map(|j| centres[(i % 4) * d + j] + noise * rng.next()).collect::<Vec<_>>()).collect()
}

#[test]
fn items_without_a_proof_are_searched_exactly_few_or_many() {
    let n = 1500;
    // Noisy clusters crowd the similarities together, so for some items int8 cannot separate the k-th
    // neighbour from the rest: their rows are searched exactly ...
    let x: Vec<f32> = clusters(13, n, 128, 0.5);
    let (s, stats, p) = both(&x, n, 128, 10, 400);
    assert_same(&s, &p, "some without a proof");
    assert!(stats.rescanned > 0 && stats.rescanned * 5 <= n * 2, "{} of {n} without a proof", stats.rescanned);
    // ... and tighter ones in more dimensions leave most items without one: the f32 scan of all items
    // replaces the screen's result.
    let x: Vec<f32> = clusters(17, n, 256, 0.3);
    let (s, stats, p) = both(&x, n, 256, 10, 400);
    assert_same(&s, &p, "most without a proof");
    assert_eq!(stats.rescanned, n);
}

/// The default (`Screen::Auto`) asks a pilot of a few items first: where it predicts that most items would end
/// without a proof, the plain f32 path runs from the start; where the screen works, it runs.
#[test]
fn auto_screen_declines_only_where_most_items_would_lack_a_proof() {
    let auto = |x: &[f32], n: usize, d: usize| {
        let opts = KnnOptions { screen: Screen::Auto, ..KnnOptions::new(10, Metric::Cosine, Device::Cpu) };
        let (found, stats) = knn::exact_knn_with_stats(x, n, d, &opts, &Hooks::none()).unwrap();
        (found, stats.expect("finite CPU cosine data"))
    };
    let (n, d) = (2400, 256);
    let x = clusters(17, n, d, 0.3);
    let (found, stats) = auto(&x, n, d);
    assert!(stats.declined, "tight noisy clusters: {stats:?}");
    let plain = knn::exact_knn(&x, n, d, &opts(10, 0, false), &Hooks::none()).unwrap();
    assert_eq!((found.ids, found.dists), (plain.ids, plain.dists), "the declined screen is the f32 path");

    let (x, n, d) = fixture("fashion_x.npy.gz");
    let (found, stats) = auto(&x, n, d);
    assert!(!stats.declined && stats.rescanned * 10 < n, "Fashion-MNIST pixels: {stats:?}");
    let plain = knn::exact_knn(&x, n, d, &opts(10, 0, false), &Hooks::none()).unwrap();
    assert_same(&found, &plain, "auto on Fashion-MNIST");
}

/// The portable loops (`Simd::Portable`, what a CPU without AVX2 runs) against the vector loops of this CPU,
/// in this process, on every data set above, through the f32 path, the device path's code and the screen
/// (forced, and as the pilot decides).
///
/// The f32 and device paths compute the same values with either loops: their results must be equal bit for
/// bit. The screen computes its int8 keys alike too, but its re-rank's f32 dot products are fused
/// multiply-adds in the AVX2 loop and not in the portable one, so its similarities may differ in the last
/// bits: its distances agree to f32 rounding and its ids wherever distances are not tied (`assert_same`),
/// and on these data sets it proves the same items with either loops. That difference also shows that the
/// two runs took different code where the CPU has AVX2 and FMA.
#[test]
fn portable_loops_give_the_vector_loops_results() {
    let mut data: Vec<(String, Vec<f32>, usize, usize, usize)> = Vec::new();
    for name in ["fashion_x.npy.gz", "digits_x.npy.gz"] {
        let (x, n, d) = fixture(name);
        data.push((name.into(), x, n, d, 333));
    }
    let (x, n, d) = duplicates();
    data.push(("duplicates".into(), x, n, d, 128));
    let (x, n, d) = identical_rows();
    data.push(("identical rows".into(), x, n, d, 32));
    let (x, n, d) = signed_with_zero_row();
    data.push(("signed values, a zero row".into(), x, n, d, 100));
    for (x, n, d, block) in tiny_and_low_dimensional() {
        data.push((format!("n={n} d={d}"), x, n, d, block));
    }
    data.push(("some without a proof".into(), clusters(13, 1500, 128, 0.5), 1500, 128, 400));
    data.push(("most without a proof".into(), clusters(17, 1500, 256, 0.3), 1500, 256, 400));
    data.push(("the pilot declines".into(), clusters(17, 2400, 256, 0.3), 2400, 256, 0));

    let both_loops = |x: &[f32], n: usize, d: usize, opts: KnnOptions| {
        let portable = KnnOptions { simd: Simd::Portable, ..opts };
        let vector = knn::exact_knn_with_stats(x, n, d, &opts, &Hooks::none()).unwrap();
        (vector, knn::exact_knn_with_stats(x, n, d, &portable, &Hooks::none()).unwrap())
    };
    let bits = |knn: &Knn| knn.dists.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let mut fused_differs = false;
    for (name, x, n, d, block) in &data {
        let (x, n, d, block) = (x.as_slice(), *n, *d, *block);
        let plain = opts(10, block, false);
        let device = KnnOptions { force_topk: true, device_block_bytes: 1 << 20, ..plain };
        for (path, o) in [("f32 path", plain), ("device path", device)] {
            let ((v, _), (p, _)) = both_loops(x, n, d, o);
            assert_eq!(v.ids, p.ids, "{name}, {path}: ids");
            assert_eq!(bits(&v), bits(&p), "{name}, {path}: distances");
        }
        let auto = KnnOptions { screen: Screen::Auto, ..plain };
        for (path, o) in [("screen", opts(10, block, true)), ("auto screen", auto)] {
            let ((v, vs), (p, ps)) = both_loops(x, n, d, o);
            assert_eq!(vs, ps, "{name}, {path}: what the screen did");
            assert_same(&p, &v, &format!("{name}, {path}: portable against vector loops"));
            fused_differs |= bits(&v) != bits(&p);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(fused_differs, "Simd::Portable ran the same code as Simd::Auto on a CPU with AVX2 and FMA");
    }
}
