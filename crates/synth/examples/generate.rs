//! A synthetic store for the scale benchmarks (benches/scale.sh): a million 768-d items by default, with
//! embeddings (analyze needs them), thumbnails for the first 1000 items and no arroy index (analyze builds it).
//!
//!     cargo run --release -p torchlight-synth --example generate -- DIR [ITEMS] [DIM]

use std::time::Instant;

use torchlight_synth::{SynthParams, generate};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: generate DIR [ITEMS=1000000] [DIM=768]");
        std::process::exit(2);
    };
    let number = |arg: Option<String>, default: u32| match arg {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("'{a}' is not a whole number");
            std::process::exit(2);
        }),
    };
    let p = SynthParams {
        items: number(args.next(), 1_000_000),
        dim: number(args.next(), 768),
        thumbnails: 1000,
        embeddings: true,
        ann: false,
        ..SynthParams::default()
    };
    let t = Instant::now();
    if let Err(e) = generate(std::path::Path::new(&dir), &p) {
        eprintln!("generating {dir}: {e}");
        std::process::exit(1);
    }
    println!("generated {} items x {} dims in {:.1} s at {dir}", p.items, p.dim, t.elapsed().as_secs_f64());
}
