//! Exit codes of SPEC §2: what every command and the built-ins exit with.

/// Everything worked.
pub const OK: u8 = 0;
/// A service failed (crashed, exited non-zero, could not start).
pub const SERVICE_FAILED: u8 = 1;
/// Invalid input: CLI usage or the stack file.
pub const INVALID_INPUT: u8 = 2;
/// Environment problem: port in use, Docker engine unreachable, image missing.
pub const ENVIRONMENT: u8 = 3;
/// A health check did not pass in time.
pub const HEALTH_TIMEOUT: u8 = 4;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: u8 = 130;
