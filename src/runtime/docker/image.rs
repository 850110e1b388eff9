//! Images: the built-in image made from the running executable (imported as a tar, no
//! registry), pulls of `image:` with their progress, and builds of `build:` contexts.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bytes::Bytes;
use futures::StreamExt;

use super::{BUILTIN_REPO, Docker, DockerError};

impl Docker {
    async fn has_image(&self, reference: &str) -> bool {
        self.api.inspect_image(reference).await.is_ok()
    }

    /// The id of the image `reference` names now.
    pub(crate) async fn image_id(&self, reference: &str) -> Option<String> {
        self.api
            .inspect_image(reference)
            .await
            .ok()
            .and_then(|i| i.id)
    }

    /// The built-in image for the running executable, built (imported) when missing;
    /// older built-in images are removed. `note` receives progress messages.
    pub(crate) async fn builtin_image(
        &self,
        note: &(dyn Fn(String) + Sync),
    ) -> Result<String, DockerError> {
        let (exe, tag) = builtin_tag()?;
        let reference = format!("{BUILTIN_REPO}:{tag}");
        let _one_at_a_time = self.builtin.lock().await;
        if self.has_image(&reference).await {
            return Ok(reference);
        }
        note(format!("building image {reference} from {}", exe.display()));
        let exe2 = exe.clone();
        let tar = tokio::task::spawn_blocking(move || rootfs_tar(&exe2))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?
            .map_err(|e| DockerError::Build {
                image: reference.clone(),
                reason: e.to_string(),
            })?;
        note(format!("importing {} MB", tar.len() / (1024 * 1024)));
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(BUILTIN_REPO)
            .tag(&tag)
            .changes(vec![
                "ENTRYPOINT [\"/stack\"]".to_string(),
                "ENV PATH=/".to_string(),
                "WORKDIR /".to_string(),
            ])
            .build();
        let mut progress = self.api.create_image(
            Some(options),
            Some(bollard::body_full(Bytes::from(tar))),
            None,
        );
        while let Some(item) = progress.next().await {
            item.map_err(|e| DockerError::Build {
                image: reference.clone(),
                reason: e.to_string(),
            })?;
        }
        if !self.has_image(&reference).await {
            return Err(DockerError::Build {
                image: reference,
                reason: "the engine did not keep the imported image".into(),
            });
        }
        self.remove_old_builtins(&reference).await;
        note(format!("built {reference}"));
        Ok(reference)
    }

    async fn remove_old_builtins(&self, keep: &str) {
        let mut filters = HashMap::new();
        filters.insert("reference".to_string(), vec![format!("{BUILTIN_REPO}:*")]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let Ok(images) = self.api.list_images(Some(options)).await else {
            return;
        };
        for img in images {
            let tags = img.repo_tags.clone();
            if tags.iter().any(|t| t == keep) {
                continue;
            }
            for t in tags {
                let _ = self
                    .api
                    .remove_image(&t, Some(RemoveImageOptionsBuilder::default().build()), None)
                    .await;
            }
        }
    }

    /// Makes sure `reference` is present: pulls it when missing, reporting progress.
    pub(crate) async fn ensure_image(
        &self,
        reference: &str,
        note: &(dyn Fn(String) + Sync),
    ) -> Result<(), DockerError> {
        if self.has_image(reference).await {
            return Ok(());
        }
        note(format!("pulling {reference}"));
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.api.create_image(Some(options), None, None);
        let mut layers: HashMap<String, String> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::ImageMissing {
                image: reference.to_string(),
                reason: e.to_string(),
            })?;
            if let (Some(id), Some(status)) = (info.id, info.status)
                && !status.starts_with("Pulling from")
            {
                // One line per layer and step ("Downloading", "Extracting", …), not one per
                // progress tick.
                if layers.insert(id.clone(), status.clone()).as_ref() == Some(&status) {
                    continue;
                }
                let done = layers
                    .values()
                    .filter(|s| s.starts_with("Pull complete") || s.starts_with("Already exists"))
                    .count();
                note(format!(
                    "pulling {reference}: {done}/{} layers ({id}: {status})",
                    layers.len()
                ));
            }
        }
        if self.has_image(reference).await {
            Ok(())
        } else {
            Err(DockerError::ImageMissing {
                image: reference.to_string(),
                reason: "the pull ended without the image".into(),
            })
        }
    }

    /// Builds `tag` from the folder `context`, each output line to `log`.
    pub(crate) async fn build(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        tag: &str,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<(), DockerError> {
        let dir = context.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || context_tar(&dir))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?
            .map_err(|e| DockerError::Build {
                image: tag.to_string(),
                reason: format!("cannot pack `{}`: {e}", context.display()),
            })?;
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile.unwrap_or("Dockerfile"))
            .t(tag)
            .rm(true)
            .build();
        let mut stream =
            self.api
                .build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::Build {
                image: tag.to_string(),
                reason: e.to_string(),
            })?;
            if let Some(s) = info.stream {
                for line in s.lines().filter(|l| !l.trim().is_empty()) {
                    log(line.to_string());
                }
            }
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Build {
                    image: tag.to_string(),
                    reason: detail,
                });
            }
        }
        Ok(())
    }
}

/// The running executable and the tag of its built-in image: the version and 12 hex of
/// the executable's sha256 (no engine needed).
pub(crate) fn builtin_tag() -> Result<(std::path::PathBuf, String), DockerError> {
    let exe = std::env::current_exe()
        .map_err(|e| DockerError::Api(format!("cannot find the stack executable: {e}")))?;
    let hash = exe_hash(&exe)
        .map_err(|e| DockerError::Api(format!("cannot read `{}`: {e}", exe.display())))?;
    let tag = format!("{}-{}", env!("CARGO_PKG_VERSION"), &hash[..12]);
    Ok((exe, tag))
}

/// sha256 of the executable, cached by (path, size, mtime) under the user's cache folder:
/// hashing a large binary on every `up` would cost a second.
fn exe_hash(exe: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(exe)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{}|{}|{mtime}", exe.display(), meta.len());
    let cache = cache_dir().map(|d| d.join("exe-hashes.json"));
    let mut known: HashMap<String, String> = cache
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(h) = known.get(&key) {
        return Ok(h.clone());
    }
    let mut file = std::fs::File::open(exe)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(p) = cache {
        known.retain(|k, _| !k.starts_with(&format!("{}|", exe.display())));
        known.insert(key, hash.clone());
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&p, serde_json::to_string(&known).unwrap_or_default());
    }
    Ok(hash)
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("stack"))
}

/// The built-in image's root file system: `/stack`, the shared libraries it links (and
/// the dynamic loader) at their own paths, a minimal `/etc`, and `/tmp`.
fn rootfs_tar(exe: &Path) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let binary = stripped(exe).unwrap_or_else(|| exe.to_path_buf());
    append_file(&mut tar, &binary, "stack", 0o755)?;
    if binary != exe {
        let _ = std::fs::remove_file(&binary);
    }
    for lib in linked_libraries(exe)? {
        let inside = lib.strip_prefix("/").unwrap_or(&lib).to_path_buf();
        // Libraries are often symlinks: store the target's bytes under the linked name.
        let real = std::fs::canonicalize(&lib)?;
        append_file(&mut tar, &real, &inside.to_string_lossy(), 0o755)?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/:/stack\nnobody:x:65534:65534:nobody:/:/stack\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/nsswitch.conf", "hosts: files dns\n"),
    ] {
        append_bytes(&mut tar, path, text.as_bytes(), 0o644)?;
    }
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o1777);
    dir.set_size(0);
    tar.append_data(&mut dir, "tmp", std::io::empty())?;
    tar.into_inner()
}

/// A copy of `exe` without debug sections, when `strip` is installed (smaller image).
fn stripped(exe: &Path) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("stack-image-{}-{n}", std::process::id()));
    let ok = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(exe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// The shared libraries `exe` needs (`ldd`), including the dynamic loader.
fn linked_libraries(exe: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd").arg(exe).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    src: &Path,
    inside: &str,
    mode: u32,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(src)?;
    let len = f.metadata()?.len();
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, inside, &mut f)
}

fn append_bytes(
    tar: &mut tar::Builder<Vec<u8>>,
    inside: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, inside, bytes)
}

/// A build context: the folder as a tar (no `.git`, no `.stack`).
fn context_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    fn walk(tar: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if name == ".git" || name == ".stack" || name == "target" {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if entry.file_type()?.is_dir() {
                tar.append_dir(&rel, &path)?;
                walk(tar, root, &path)?;
            } else {
                tar.append_path_with_name(&path, &rel)?;
            }
        }
        Ok(())
    }
    walk(&mut tar, dir, dir)?;
    let mut buf = tar.into_inner()?;
    buf.flush()?;
    Ok(buf)
}
