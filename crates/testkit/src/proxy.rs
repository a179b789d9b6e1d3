//! A TCP proxy a test can cut and restore, to take a service away without stopping it.
