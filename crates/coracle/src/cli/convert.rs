//! `coracle convert FILE…`: rewrites manifests that carry the pre-1.8
//! `pod.{alpha,beta}.kubernetes.io/init-containers` annotations into `spec.initContainers`.
//!
//! Works on untyped documents so the user's key order survives and no defaulted fields are
//! added; comments do not survive a rewrite, so `--in-place` touches only files that had
//! something to convert.
//!
//! Shortcoming: the rewrite reads and writes YAML 1.2 through serde_norway, while kubectl and
//! `coracle run` read YAML 1.1 (see `coracle_api::yaml`). An unquoted `0440` is therefore written
//! back as the string `'0440'`, and a quoted `"yes"` loses its quotes, so kubectl reads those
//! values of a rewritten file differently from the original.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use coracle_api::legacy::convert_document;
use serde::Deserialize;
use serde_norway::Value;

/// Arguments of `coracle convert`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// Manifests to convert (YAML, several documents allowed, or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Rewrite the files in place instead of printing the result.
    #[arg(short = 'i', long)]
    pub in_place: bool,
}

/// A parsed manifest file, remembering whether it was JSON so it is written back as JSON.
struct Manifest {
    docs: Vec<Value>,
    json: bool,
}

/// Converts every file; prints the result (or rewrites the files) and one warning per
/// converted pod or pod template on stderr.
pub fn run(args: ConvertArgs) -> anyhow::Result<i32> {
    let mut outputs = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
        let mut manifest = parse(&text, &name)?;
        let mut converted = false;
        for (i, doc) in manifest.docs.iter_mut().enumerate() {
            let warnings =
                convert_document(doc).with_context(|| format!("{name}: document {}", i + 1))?;
            for w in &warnings {
                eprintln!("Warning: {name}: {w}");
            }
            converted |= !warnings.is_empty();
        }
        let rendered = render(&manifest).with_context(|| format!("cannot render {name}"))?;
        if args.in_place {
            if converted {
                write_atomically(file, &rendered)
                    .with_context(|| format!("cannot rewrite {name}"))?;
            }
        } else {
            outputs.push(rendered);
        }
    }
    if !args.in_place {
        let joined = outputs.join("---\n");
        std::io::stdout()
            .write_all(joined.as_bytes())
            .context("cannot write to stdout")?;
    }
    Ok(0)
}

fn parse(text: &str, name: &str) -> anyhow::Result<Manifest> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut docs = Vec::new();
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, doc) in stream.enumerate() {
            docs.push(
                doc.with_context(|| format!("{name}: document {}: cannot parse JSON", i + 1))?,
            );
        }
        return Ok(Manifest { docs, json: true });
    }
    let mut docs = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(de)
            .with_context(|| format!("{name}: document {}: cannot parse YAML", i + 1))?;
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    if docs.is_empty() && !text.trim().is_empty() {
        bail!("{name}: no Kubernetes objects found");
    }
    Ok(Manifest { docs, json: false })
}

fn render(manifest: &Manifest) -> anyhow::Result<String> {
    if manifest.json {
        let mut out = String::new();
        for doc in &manifest.docs {
            out.push_str(&serde_json::to_string_pretty(doc)?);
            out.push('\n');
        }
        return Ok(out);
    }
    let docs: Result<Vec<String>, _> = manifest.docs.iter().map(serde_norway::to_string).collect();
    Ok(docs?.join("---\n"))
}

/// Writes next to the file and renames over it, keeping its permissions.
fn write_atomically(file: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = file
        .file_name()
        .context("not a file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{base}.coracle-convert.{}", std::process::id()));
    let result = (|| {
        std::fs::write(&tmp, contents)?;
        let perms = std::fs::metadata(file)?.permissions();
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}
