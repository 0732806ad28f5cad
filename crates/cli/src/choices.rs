//! The closed sets of values the command line takes. Each is a clap `ValueEnum`, so `--help` lists the values
//! and a wrong one is a usage error; the engine uses these same types rather than keeping its own lists.

use clap::ValueEnum;

/// A dataset format, when detection should not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Format {
    /// Hugging Face parquet files (a file or a directory of them).
    Parquet,
    /// A dataset on the Hugging Face hub (`hf:NAME[:CONFIG]`).
    #[value(name = "hf")]
    Hub,
    /// DIR/<class>/<image>.
    #[value(name = "imagefolder")]
    ImageFolder,
    /// A directory of images, no labels.
    Flat,
    /// IDX files (MNIST, Fashion-MNIST).
    Idx,
    /// CIFAR-10/100 binary batches.
    Cifar,
    /// A CSV manifest with path and label columns.
    Csv,
}

/// Which vector of a transformer becomes the item's embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Pooling {
    /// ViT: the CLS token of the last hidden state. Swin has no CLS token: its pooled output (the mean of the
    /// final tokens), a better Swin embedding than any single token.
    Cls,
    /// ViT: the mean of the patch tokens (CLS excluded). Swin: its pooled output.
    Mean,
    /// ViT: the pooler, tanh(dense(CLS)), for checkpoints that have one. Swin: its pooled output.
    Pooler,
    /// `last_hidden_state[:, 0]` whatever the architecture, as the article computes it: ViT's CLS token;
    /// for Swin the first (top-left) token of the final-layernormed last stage.
    First,
}

/// The floating-point type models run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Precision {
    Fp32,
    /// CUDA only.
    Fp16,
    /// CUDA only.
    Bf16,
}

/// The terminal image protocol of the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Graphics {
    /// Ask the terminal once at start-up; halfblocks when it does not answer.
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    /// Coloured half-block characters: every terminal.
    Halfblocks,
    /// Text only.
    None,
}

// Each prints as it is written on the command line (and, for formats and poolings, as the store records it).
macro_rules! display_as_typed {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.to_possible_value().expect("no variant is skipped").get_name())
            }
        }
    )*};
}

display_as_typed!(Format, Pooling, Precision, Graphics);

/// Where models and the kNN run: `auto` (CUDA when libtorch sees a device), `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        let cuda = |n: &str| n.parse::<usize>().map(Device::Cuda).ok();
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(cuda).ok_or_else(|| "use auto, cpu, cuda or cuda:N".to_string()),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}
