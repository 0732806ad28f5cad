//! A synthetic fine-tuning series store, to try the browser's drift view without a model or a training run:
//! the foundation and `STEPS - 1` checkpoints with drifting layouts, drift columns and a loss log.
//!
//!     cargo run --release -p torchlight-synth --example series -- DIR [ITEMS=2000] [STEPS=8]
//!     torchlight browse --store DIR        # then F, [ ], P

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: series DIR [ITEMS=2000] [STEPS=8]");
        std::process::exit(2);
    };
    let number = |arg: Option<String>, default: u32| match arg {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("'{a}' is not a whole number");
            std::process::exit(2);
        }),
    };
    let (items, steps) = (number(args.next(), 2000), number(args.next(), 8));
    match torchlight_synth::series_store(std::path::Path::new(&dir), items, steps) {
        Ok((_, truth)) => println!("{items} items over {} checkpoints at {dir}", truth.steps.len()),
        Err(e) => {
            eprintln!("generating {dir}: {e}");
            std::process::exit(1);
        }
    }
}
