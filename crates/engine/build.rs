// Bake libtorch's directory into the RUNPATH of every binary and test binary, so nothing needs
// LD_LIBRARY_PATH, and remember it so `torchlight info` can report the libtorch it runs against.
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=TORCHLIGHT_LIBTORCH_LIB={dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
