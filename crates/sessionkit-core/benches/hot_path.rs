//! Benchmarks of the hot path (placeholder).
fn main() {}
