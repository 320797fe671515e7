//! The tabledb REST server.
