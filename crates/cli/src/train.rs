//! `marquee train`: train a model version for a tenant now and print its report as JSON.

use anyhow::Context;
use clap::Args;
use marquee_core::AlgorithmConfig;

use crate::config::StoreArgs;

#[derive(Args)]
pub struct TrainArgs {
    /// Tenant to train.
    #[arg(long)]
    tenant: String,
    /// Algorithm and hyper-parameters as JSON, e.g. '{"algorithm":"ease","lambda":300}'
    /// (default: the automatic choice).
    #[arg(long, value_name = "JSON")]
    model: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config: Option<AlgorithmConfig> = match &args.model {
        Some(json) => {
            let c: AlgorithmConfig = serde_json::from_str(json)
                .context("--model is not a valid algorithm configuration")?;
            c.validate()?;
            Some(c)
        }
        None => None,
    };
    let service = args.store.open_service_lazy().await?;
    let tenant = service
        .load_tenant_by_name(&args.tenant)
        .await?
        .with_context(|| format!("no tenant named {:?}", args.tenant))?;
    let info = service
        .train(&tenant, config)
        .await?
        .context("this tenant is already training")?;
    eprintln!(
        "trained version {} of {} in {} ms; a running server trains on its own schedule, or now with POST /v1/models/train",
        info.version, args.tenant, info.train_ms
    );
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}
