//! Writes `include/cms.h` from `src/lib.rs` with cbindgen (the version pinned in the workspace), on every
//! build that changes the sources. The header is checked in; `scripts/test.sh` fails when a build changes it.

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cms-ffi/cbindgen.toml reads");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(format!("{crate_dir}/src/lib.rs"))
        .generate()
        .expect("cbindgen generates cms.h from src/lib.rs");
    bindings.write_to_file(format!("{crate_dir}/include/cms.h"));
}
