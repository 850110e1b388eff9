//! `stack export compose|kubernetes` (SPEC §7): translate, write the files, and have the
//! built-in image in the engine the compose file (or cluster) will use.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{ExportArgs, ExportTarget, GlobalArgs};
use crate::config::RuntimeKind;
use crate::error::{Error, Result};
use crate::export::{self, ExportImage, Exported, compose, kubernetes};
use crate::runtime::docker::{BUILTIN_REPO, Docker, builtin_tag};
use crate::ui::{Console, errln, out};

pub(crate) fn run(global: &GlobalArgs, args: ExportArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    if args.target == ExportTarget::Compose
        && (args.namespace.is_some() || !args.image_prefix.is_empty() || args.with_secret_values)
    {
        return Err(Error::input(
            "`--namespace`, `--image-prefix` and `--with-secret-values` are for `stack export kubernetes`",
            Some("a compose file reads its keys from the environment when it runs"),
        ));
    }
    let loaded = super::load::stack(global, Some(RuntimeKind::Container))?;
    let stack = &loaded.stack;
    let selected = crate::plan::select(stack, &[], &args.profiles)
        .map_err(|e| Error::input(e.to_string(), Some(&e.hint())))?;
    let exported = export::export(&loaded, &selected)
        .map_err(|e| Error::input(e.to_string(), Some(&e.hint())))?;
    let (_, tag) = builtin_tag()?;
    let builtin_image = format!("{BUILTIN_REPO}:{tag}");
    let cwd = std::env::current_dir().unwrap_or_else(|_| stack.dir.clone());
    match args.target {
        ExportTarget::Compose => {
            let file = match &args.output {
                Some(p) if p == Path::new("-") => None,
                Some(p) => Some(cwd.join(p)),
                None => Some(stack.dir.join("docker-compose.yml")),
            };
            let out_dir = file
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(&stack.dir)
                .to_path_buf();
            let files = compose::render(&exported, &out_dir, &builtin_image);
            match &file {
                None => out!(console, "{}", files.compose),
                Some(f) => {
                    write(f, &files.compose, false)?;
                    for (rel, text) in &files.configs {
                        write(&out_dir.join(rel), text, false)?;
                    }
                    if !global.quiet {
                        errln!(
                            console,
                            "wrote {} ({} services{})",
                            shown(f, &cwd),
                            exported.services.len(),
                            if files.configs.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    ", configuration in {}/",
                                    shown(&out_dir.join(compose::CONFIG_FOLDER), &cwd)
                                )
                            }
                        );
                    }
                }
            }
        }
        ExportTarget::Kubernetes => {
            let dir = args
                .output
                .as_ref()
                .map_or_else(|| stack.dir.join("k8s"), |p| cwd.join(p));
            let opts = kubernetes::Options {
                namespace: args.namespace.clone(),
                image_prefix: args.image_prefix.clone(),
                with_secret_values: args.with_secret_values,
            };
            let files = kubernetes::render(&exported, &opts, &builtin_image)
                .map_err(|e| Error::input(e.to_string(), Some(&e.hint())))?;
            for (name, text) in &files {
                write(&dir.join(name), text, name == "secret.yaml")?;
            }
            if !global.quiet {
                errln!(
                    console,
                    "wrote {}/ ({} files: kubectl apply -k {})",
                    shown(&dir, &cwd),
                    files.len(),
                    shown(&dir, &cwd)
                );
            }
        }
    }
    if !global.quiet {
        for note in &exported.notes {
            errln!(console, "note: {note}");
        }
    }
    if needs_builtin_image(&exported) && !args.no_build {
        ensure_builtin_image(&console, global, &builtin_image, &args)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a built-in (or an init container waiting for a dependency) runs the image.
fn needs_builtin_image(x: &Exported) -> bool {
    x.services.iter().any(|s| {
        s.image == ExportImage::Builtin
            || s.depends_on
                .iter()
                .any(|(_, c)| *c == crate::config::Condition::Healthy)
    })
}

/// Builds the built-in image in the local engine when it lacks it, and says so; without an
/// engine, says how to get it there.
fn ensure_builtin_image(
    console: &Console,
    global: &GlobalArgs,
    image: &str,
    args: &ExportArgs,
) -> Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async {
        let docker = match Docker::connect().await {
            Ok(d) => d,
            Err(e) => {
                errln!(
                    console,
                    "warning: the built-in image `{image}` was not built ({e}); run `stack export` again where the engine runs, or `--no-build` to skip this"
                );
                return Ok(());
            }
        };
        let note = |line: String| {
            if !global.quiet {
                errln!(console, "{line}");
            }
        };
        docker.builtin_image(&note).await?;
        if !args.image_prefix.is_empty() && !global.quiet {
            errln!(
                console,
                "push it for the cluster: docker tag {image} {p}{image} && docker push {p}{image}",
                p = args.image_prefix
            );
        }
        Ok(())
    })
}

/// Writes `text` to `path` (creating its folder); `private`: mode 0600 (it holds keys).
fn write(path: &Path, text: &str, private: bool) -> Result<()> {
    let io = |action: &'static str, path: PathBuf| {
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir.to_path_buf()))?;
    }
    if private {
        crate::state::write_private(path, text.as_bytes())
            .map_err(io("cannot write", path.to_path_buf()))
    } else {
        std::fs::write(path, text).map_err(io("cannot write", path.to_path_buf()))
    }
}

/// `path` relative to `cwd` when below it.
fn shown(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}
