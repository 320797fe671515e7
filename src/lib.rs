//! The tabledb suite: end-to-end tests (`tests/`) and runnable examples (`examples/`) that use
//! the `tabledb` crates together. This library holds what they share.
