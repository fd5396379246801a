//! The uniffi generator: `cargo run -p cms-uniffi --features cli --bin uniffi-bindgen -- generate ...`.

fn main() {
    uniffi::uniffi_bindgen_main();
}
