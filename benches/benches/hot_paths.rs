//! Criterion benches of the hot paths (filled in by the month-end speed work).
fn main() {}
