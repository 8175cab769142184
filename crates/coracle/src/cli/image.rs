//! `coracle image`: pull, import, list, inspect and remove images in the local store.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use coracle_image::{Image, ImageStore, PullProgress, RegistryConfig};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::GlobalArgs;

/// Subcommands of `coracle image`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry (mirrors and credentials from --registry-config).
    Pull {
        /// Image reference, e.g. `busybox`, `registry:5000/app:v1`, `app@sha256:…`.
        reference: String,
        /// Print only the image id, no progress.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Import images from a `docker save` or OCI-layout archive (`-` reads stdin).
    Import {
        /// The archive, plain or gzip- or zstd-compressed.
        archive: PathBuf,
    },
    /// List images.
    #[command(alias = "list", alias = "images")]
    Ls {
        /// Print image ids only.
        #[arg(short, long)]
        quiet: bool,
        /// Show the manifest digests.
        #[arg(long)]
        digests: bool,
    },
    /// Print an image's details as JSON.
    Inspect {
        /// Names, ids or unique id prefixes.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove images (a name, an id or a unique id prefix each).
    #[command(alias = "rmi", alias = "remove")]
    Rm {
        /// Names, ids or unique id prefixes.
        #[arg(required = true)]
        references: Vec<String>,
    },
}

/// Runs one `coracle image` subcommand.
pub async fn run(global: &GlobalArgs, cmd: ImageCommand) -> anyhow::Result<i32> {
    let store = ImageStore::open(&global.data_dir)?;
    match cmd {
        ImageCommand::Pull { reference, quiet } => {
            let registries = RegistryConfig::load(&global.registry_config)?;
            let display = PullDisplay::new(quiet);
            let image = store
                .pull(&reference, &registries, &|p| display.show(p))
                .await;
            display.finish();
            println!("{}", image?.id);
        }
        ImageCommand::Import { archive } => {
            let images = tokio::task::spawn_blocking(move || store.import(&archive))
                .await
                .context("import task")??;
            for image in images {
                if image.repo_tags.is_empty() {
                    println!("Loaded image ID: {}", image.id);
                }
                for tag in &image.repo_tags {
                    println!("Loaded image: {tag}");
                }
            }
        }
        ImageCommand::Ls { quiet, digests } => {
            let images = store.list()?;
            if quiet {
                for image in images {
                    println!("{}", image.id);
                }
            } else {
                emit(&table(&images, digests));
            }
        }
        ImageCommand::Inspect { references } => {
            let mut out = Vec::new();
            for reference in &references {
                let image =
                    store
                        .get(reference)?
                        .ok_or_else(|| coracle_image::ImageError::NotFound {
                            reference: reference.clone(),
                        })?;
                out.push(inspect_json(&image));
            }
            let value = if out.len() == 1 {
                out.remove(0)
            } else {
                serde_json::Value::Array(out)
            };
            emit(&format!("{}\n", serde_json::to_string_pretty(&value)?));
        }
        ImageCommand::Rm { references } => {
            for reference in &references {
                let image = store.remove(reference)?;
                let name = image
                    .repo_tags
                    .iter()
                    .find(|t| {
                        coracle_image::normalize_reference(reference).ok().as_ref() == Some(*t)
                    })
                    .cloned()
                    .unwrap_or(image.id);
                println!("Deleted: {name}");
            }
        }
    }
    Ok(0)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `coracle image inspect`'s JSON for one image.
fn inspect_json(image: &Image) -> serde_json::Value {
    let layers: Vec<_> = image
        .diff_ids
        .iter()
        .zip(&image.layers)
        .zip(&image.layer_sizes)
        .map(|((diff_id, path), size)| {
            serde_json::json!({"diffId": diff_id, "size": size, "path": path})
        })
        .collect();
    serde_json::json!({
        "id": image.id,
        "repoTags": image.repo_tags,
        "repoDigests": image.repo_digests,
        "size": image.size,
        "created": image.created,
        "config": image.config,
        "layers": layers,
    })
}

/// The `coracle image ls` table, in `crictl images` columns.
fn table(images: &[Image], digests: bool) -> String {
    let mut rows = vec![{
        let mut head = vec!["IMAGE", "TAG"];
        if digests {
            head.push("DIGEST");
        }
        head.extend(["IMAGE ID", "SIZE"]);
        head.into_iter().map(String::from).collect::<Vec<_>>()
    }];
    for image in images {
        let digest = image
            .repo_digests
            .first()
            .and_then(|d| d.rsplit_once("@sha256:"))
            .map(|(_, hex)| hex[..12.min(hex.len())].to_string())
            .unwrap_or_else(|| "<none>".into());
        let id = image.id.trim_start_matches("sha256:")[..12].to_string();
        let mut names: Vec<(String, String)> = image
            .repo_tags
            .iter()
            .map(|t| {
                let (name, tag) = split_tag(t);
                (name.to_string(), tag.to_string())
            })
            .collect();
        if names.is_empty() {
            let name = image
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>", |(n, _)| n);
            names.push((name.to_string(), "<none>".into()));
        }
        for (name, tag) in names {
            let mut row = vec![name, tag];
            if digests {
                row.push(digest.clone());
            }
            row.extend([id.clone(), human_size(image.size)]);
            rows.push(row);
        }
    }
    rows[1..].sort();
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `docker.io/library/busybox:latest` → (`docker.io/library/busybox`, `latest`).
fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (name, "<none>"),
    }
}

/// Sizes as crictl prints them: decimal units, three significant digits (`4.26MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let text = if unit == 0 || value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// Pull progress on stderr: bars on a terminal, one line per event otherwise.
struct PullDisplay {
    quiet: bool,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl PullDisplay {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal())
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        PullDisplay { quiet, bars }
    }

    fn show(&self, event: PullProgress) {
        if self.quiet {
            return;
        }
        let Some((multi, bars)) = &self.bars else {
            self.line(event);
            return;
        };
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            PullProgress::Layer {
                digest,
                size,
                done,
                bytes,
            } => {
                let bar = bars.entry(digest.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(size));
                    let style = ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_prefix(short(&digest));
                    bar
                });
                bar.set_position(bytes);
                if done {
                    bar.finish_with_message("done");
                }
            }
            other => {
                let _ = multi.println(describe(&other));
            }
        }
    }

    fn line(&self, event: PullProgress) {
        // Plain output: only the start and end of each layer, not every megabyte.
        if let PullProgress::Layer {
            done: false, bytes, ..
        } = &event
        {
            if *bytes > 0 {
                return;
            }
        }
        eprintln!("{}", describe(&event));
    }

    fn finish(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

fn describe(event: &PullProgress) -> String {
    match event {
        PullProgress::Resolving {
            reference,
            registry,
        } => format!("resolving {reference} on {registry}"),
        PullProgress::Resolved { digest, layers, .. } => {
            format!("resolved {digest}: {layers} layer(s)")
        }
        PullProgress::Layer {
            digest,
            size,
            done: false,
            ..
        } => format!("layer {} {}: downloading", short(digest), human_size(*size)),
        PullProgress::Layer { digest, size, .. } => {
            format!("layer {} {}: done", short(digest), human_size(*size))
        }
        PullProgress::LayerExists { digest, size } => {
            format!(
                "layer {} {}: already present",
                short(digest),
                human_size(*size)
            )
        }
        PullProgress::Done { id } => format!("pulled {id}"),
    }
}

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    hex[..12.min(hex.len())].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_decimal_with_three_significant_digits() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }

    #[test]
    fn tags_split_after_a_registry_port() {
        assert_eq!(split_tag("127.0.0.1:5000/a:v1"), ("127.0.0.1:5000/a", "v1"));
        assert_eq!(
            split_tag("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a", "<none>")
        );
    }
}
