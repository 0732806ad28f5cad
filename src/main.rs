fn main() -> color_eyre::Result<()> {
    torchlight::cli::main()
}
