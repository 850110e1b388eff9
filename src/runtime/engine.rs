//! Whether a Docker engine answers, and its version (for `stack doctor`).

/// The engine's version (`DOCKER_HOST`, else the local socket).
pub async fn engine_version() -> Result<String, String> {
    let docker = bollard::Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
    let v = docker.version().await.map_err(|e| e.to_string())?;
    Ok(v.version.unwrap_or_else(|| "unknown".into()))
}
