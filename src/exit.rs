//! Exit codes of SPEC §2: what every command and the built-ins exit with.

/// Everything worked.
pub(crate) const OK: u8 = 0;
/// A service failed (crashed, exited non-zero, could not start).
pub(crate) const SERVICE_FAILED: u8 = 1;
/// Invalid input: CLI usage or the stack file.
pub(crate) const INVALID_INPUT: u8 = 2;
/// Environment problem: port in use, Docker engine unreachable, image missing.
pub(crate) const ENVIRONMENT: u8 = 3;
/// A health check did not pass in time.
pub(crate) const HEALTH_TIMEOUT: u8 = 4;
/// Interrupted by Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;
