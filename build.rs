//! Rebuilds when the embedded configs change; with the `tch` feature, bakes libtorch's
//! directory into the binary's rpath so it runs without LD_LIBRARY_PATH (torch-sys reports
//! the directory as DEP_TCH_LIBTORCH_LIB).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // The embedded configs (include_dir! does not tell cargo about the files it reads): an
    // edited or added YAML rebuilds the binary.
    for dir in ["conf", "experiments", "src/config/builtin"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
