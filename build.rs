//! With the `tch` feature, bake libtorch's directory into the binary's rpath so it runs
//! without LD_LIBRARY_PATH (torch-sys reports the directory as DEP_TCH_LIBTORCH_LIB).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
