//! Link flags for a Node addon (N-API symbols resolve against the running `node` at load time).

fn main() {
    napi_build::setup();
}
