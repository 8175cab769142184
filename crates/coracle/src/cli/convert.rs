//! `coracle convert FILE…`: rewrites manifests that carry the pre-1.8
//! `pod.{alpha,beta}.kubernetes.io/init-containers` annotations into `spec.initContainers`.
//!
//! A YAML file is edited, not re-serialised (see `coracle_api::legacy::convert_yaml`): only the
//! annotation entries and the new `initContainers` block change, and comments, quoting and values
//! such as `defaultMode: 0440` stay as written. A document whose layout the edit cannot handle is
//! written out whole, its values kept but not its comments or formatting, with a warning. JSON
//! files are rewritten as JSON, in their key order. `--in-place` touches only files that had
//! something to convert.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use coracle_api::legacy::{convert_document, convert_yaml};
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

/// Converts every file; prints the result (or rewrites the files) and one warning per
/// converted pod or pod template on stderr.
pub fn run(args: ConvertArgs) -> anyhow::Result<i32> {
    let mut outputs: Vec<String> = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
        let (rendered, converted) = if is_json(&text) {
            convert_json_file(&text, &name)?
        } else {
            convert_yaml_file(&text, &name)?
        };
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
        std::io::stdout()
            .write_all(join_documents(&outputs).as_bytes())
            .context("cannot write to stdout")?;
    }
    Ok(0)
}

fn is_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.starts_with('{') || trimmed.starts_with('[')
}

/// The converted text of a YAML file, and whether anything was converted.
fn convert_yaml_file(text: &str, name: &str) -> anyhow::Result<(String, bool)> {
    let converted = convert_yaml(text).with_context(|| name.to_string())?;
    if converted.objects == 0 && !text.trim().is_empty() {
        bail!("{name}: no Kubernetes objects found");
    }
    for doc in &converted.documents {
        for w in &doc.warnings {
            eprintln!("Warning: {name}: {w}");
        }
        if let Some(reason) = &doc.rewritten {
            eprintln!(
                "Warning: {name}: document {}: could not edit the text in place ({reason}); \
                 wrote the document out whole, so its comments, key order and formatting were \
                 not preserved (its values were)",
                doc.document
            );
        }
    }
    Ok((converted.text, !converted.documents.is_empty()))
}

/// The converted text of a JSON file, and whether anything was converted.
fn convert_json_file(text: &str, name: &str) -> anyhow::Result<(String, bool)> {
    let mut converted = false;
    let mut out = String::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (i, doc) in stream.enumerate() {
        let document = i + 1;
        let mut doc =
            doc.with_context(|| format!("{name}: document {document}: cannot parse JSON"))?;
        let warnings =
            convert_document(&mut doc).with_context(|| format!("{name}: document {document}"))?;
        for w in &warnings {
            eprintln!("Warning: {name}: {w}");
        }
        converted |= !warnings.is_empty();
        let rendered =
            serde_json::to_string_pretty(&doc).with_context(|| format!("cannot render {name}"))?;
        out.push_str(&rendered);
        out.push('\n');
    }
    Ok((out, converted))
}

/// The outputs of several files as one YAML stream.
fn join_documents(outputs: &[String]) -> String {
    let mut joined = String::new();
    for output in outputs {
        if !joined.is_empty() {
            if !joined.ends_with('\n') {
                joined.push('\n');
            }
            if !output.starts_with("---") {
                joined.push_str("---\n");
            }
        }
        joined.push_str(output);
    }
    joined
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
