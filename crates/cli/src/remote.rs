//! `marquee remote …`: a running server's API from the command line, through the Rust SDK.
//!
//! The other subcommands work on the data directory. These talk HTTP to a server — on this
//! machine or another — under an API key, so they need no access to its files and are held to
//! the key's scopes, limits and metering like any other client (and get the SDK's validation
//! and retries). Lists print one JSON object per line (or a table with `--format table`);
//! single answers print one JSON object.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use marquee_client::{
    Client, FeedbackInput, GroupBy, RecommendRequest, Recommendation, Timestamp, UsageQuery,
};

#[derive(Args)]
pub struct RemoteArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "MARQUEE_BASE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key (secret, or publishable for recommend and send-feedback). Prefer the environment
    /// variable: a command-line argument is visible to other users of the machine.
    #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// Recommendations for a user (in the context of an item with --item).
    Recommend {
        user: String,
        /// Recommend what to watch after this item.
        #[arg(long)]
        item: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Items similar to an item.
    Similar {
        item: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// The most popular items.
    Popular {
        #[command(flatten)]
        list: ListArgs,
    },
    /// A user's latest item, weighted interests and recent history.
    Profile {
        user: String,
        /// Entries of recent history (0-100).
        #[arg(long, default_value_t = 20)]
        history: usize,
    },
    /// Send feedback from a file of JSON lines or CSV (user,item,type[,value,timestamp], with
    /// or without that header), in batches; prints how many events the server accepted.
    SendFeedback {
        /// The file; `-` reads standard input.
        file: PathBuf,
        /// The file's format [default: from the extension, else from the first character].
        #[arg(long, value_enum)]
        format: Option<FeedbackFormat>,
        /// Events per request (the server takes at most 10,000).
        #[arg(long, default_value_t = marquee_client::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
    /// Requests, units and cost in a window (default: the current billing period).
    Usage {
        #[arg(long, value_enum)]
        group_by: Option<Group>,
        /// Start: RFC 3339, a date (2026-11-01) or Unix seconds.
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), as --from.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Args)]
struct ListArgs {
    /// Items to return (1-1000).
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Keep items in these categories (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    category: Vec<String>,
    /// A filter expression over item fields and metadata, e.g. `year >= 1990`.
    #[arg(long)]
    filter: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Json)]
    format: Output,
}

impl ListArgs {
    fn request(&self) -> RecommendRequest {
        RecommendRequest {
            n: Some(self.n),
            category: self.category.clone(),
            filter: self.filter.clone(),
            ..RecommendRequest::default()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One JSON object per line.
    Json,
    /// Aligned columns for people.
    Table,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FeedbackFormat {
    /// One JSON object per line (`{"user_id", "item_id", "type", …}`), or one JSON array.
    Jsonl,
    /// user,item,type[,value,timestamp]
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Group {
    Day,
    Key,
    Model,
    Route,
    Tenant,
}

impl From<Group> for GroupBy {
    fn from(g: Group) -> Self {
        match g {
            Group::Day => GroupBy::Day,
            Group::Key => GroupBy::Key,
            Group::Model => GroupBy::Model,
            Group::Route => GroupBy::Route,
            Group::Tenant => GroupBy::Tenant,
        }
    }
}

pub async fn run(args: RemoteArgs) -> anyhow::Result<()> {
    let batch_size = match &args.command {
        RemoteCommand::SendFeedback { batch_size, .. } => *batch_size,
        _ => marquee_client::DEFAULT_BATCH_SIZE,
    };
    let mut builder = Client::builder()
        .base_url(&args.url)
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .batch_size(batch_size)
        .user_agent(format!("marquee-cli/{}", env!("CARGO_PKG_VERSION")));
    if let Some(key) = args.key.as_deref().filter(|k| !k.is_empty()) {
        builder = builder.api_key(key);
    }
    let client = builder.build()?;
    let mut out = std::io::stdout().lock();
    match args.command {
        RemoteCommand::Recommend { user, item, list } => {
            let mut request = list.request();
            request.item_id = item;
            let recs = client.recommend(&user, &request).await?;
            print_list(&mut out, &recs, list.format)?;
        }
        RemoteCommand::Similar { item, list } => {
            let recs = client.similar(&item, &list.request()).await?;
            print_list(&mut out, &recs, list.format)?;
        }
        RemoteCommand::Popular { list } => {
            let recs = client.popular(&list.request()).await?;
            print_list(&mut out, &recs, list.format)?;
        }
        RemoteCommand::Profile { user, history } => {
            let profile = client.profile_with_history(&user, history).await?;
            writeln!(out, "{}", serde_json::to_string(&profile)?)?;
        }
        RemoteCommand::SendFeedback {
            file,
            format,
            batch_size,
        } => {
            let accepted = send_feedback(&client, &file, format, batch_size).await?;
            writeln!(out, "{}", serde_json::json!({ "accepted": accepted }))?;
        }
        RemoteCommand::Usage { group_by, from, to } => {
            let query = UsageQuery {
                from: from.as_deref().map(parse_time).transpose()?,
                to: to.as_deref().map(parse_time).transpose()?,
                group_by: group_by.map(GroupBy::from),
                tenant: None,
            };
            let report = client.usage(&query).await?;
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        }
    }
    Ok(())
}

fn print_list(out: &mut impl Write, recs: &[Recommendation], format: Output) -> anyhow::Result<()> {
    match format {
        Output::Json => {
            for r in recs {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        Output::Table => {
            let id_width = recs
                .iter()
                .map(|r| r.item_id.chars().count())
                .chain([7])
                .max()
                .unwrap_or(7);
            let title_width = recs
                .iter()
                .map(|r| r.title.as_deref().unwrap_or("").chars().count().min(40))
                .chain([5])
                .max()
                .unwrap_or(5);
            writeln!(
                out,
                "{:>4}  {:<id_width$}  {:<title_width$}  {:>8}  REASON",
                "RANK", "ITEM_ID", "TITLE", "SCORE"
            )?;
            for (rank, r) in recs.iter().enumerate() {
                let title: String = r.title.as_deref().unwrap_or("").chars().take(40).collect();
                writeln!(
                    out,
                    "{:>4}  {:<id_width$}  {:<title_width$}  {:>8.4}  {}",
                    rank + 1,
                    r.item_id,
                    title,
                    r.score,
                    r.reason.message
                )?;
            }
        }
    }
    Ok(())
}

/// RFC 3339, a bare date (midnight UTC) or Unix seconds.
fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return serde_json::from_value(serde_json::json!(secs))
            .with_context(|| format!("{s:?} is out of range"));
    }
    let text = if s.len() == 10 && s.as_bytes()[4] == b'-' {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    Timestamp::parse_rfc3339(&text)
        .with_context(|| format!("{s:?} is not a time (RFC 3339, YYYY-MM-DD or Unix seconds)"))
}

/// Reads the events and sends them batch by batch, so a large file never sits in memory.
async fn send_feedback(
    client: &Client,
    file: &Path,
    format: Option<FeedbackFormat>,
    batch_size: usize,
) -> anyhow::Result<usize> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let stdin = file.as_os_str() == "-";
    let reader: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(file).with_context(|| format!("cannot open {}", file.display()))?)
    };
    let mut reader = BufReader::new(reader);
    let format = match format {
        Some(f) => f,
        None => detect_format(file, &mut reader)?,
    };
    let events: Box<dyn Iterator<Item = anyhow::Result<FeedbackInput>>> = match format {
        FeedbackFormat::Csv => Box::new(csv_events(reader)),
        FeedbackFormat::Jsonl => json_events(reader)?,
    };
    let name = if stdin {
        "standard input".to_string()
    } else {
        file.display().to_string()
    };
    let mut accepted = 0;
    let mut batch = Vec::with_capacity(batch_size.min(10_000));
    let mut events = events.peekable();
    while let Some(event) = events.next() {
        batch.push(event.with_context(|| format!("in {name}"))?);
        if batch.len() == batch_size || events.peek().is_none() {
            accepted += client.send_feedback(&batch).await.with_context(|| {
                format!("sending {name} ({accepted} events accepted before this batch)")
            })?;
            batch.clear();
        }
    }
    Ok(accepted)
}

fn detect_format(file: &Path, reader: &mut impl BufRead) -> anyhow::Result<FeedbackFormat> {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => return Ok(FeedbackFormat::Csv),
        Some("jsonl" | "ndjson" | "json") => return Ok(FeedbackFormat::Jsonl),
        _ => {}
    }
    let start = reader.fill_buf()?;
    let first = start.iter().find(|b| !b.is_ascii_whitespace());
    Ok(match first {
        Some(b'{' | b'[') => FeedbackFormat::Jsonl,
        _ => FeedbackFormat::Csv,
    })
}

/// JSON lines (one event per line, blank lines skipped), or one JSON array.
fn json_events(
    mut reader: BufReader<Box<dyn Read>>,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<FeedbackInput>>>> {
    let starts_with_array =
        reader.fill_buf()?.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if starts_with_array {
        let events: Vec<FeedbackInput> =
            serde_json::from_reader(reader).context("not a JSON array of feedback events")?;
        return Ok(Box::new(events.into_iter().map(Ok)));
    }
    Ok(Box::new(
        reader
            .lines()
            .enumerate()
            .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(|(n, line)| {
                let line = line?;
                serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))
            }),
    ))
}

/// Column positions of a CSV file: from its header, or user,item,type,value,timestamp.
struct Columns {
    user: usize,
    item: usize,
    kind: usize,
    value: Option<usize>,
    timestamp: Option<usize>,
}

impl Columns {
    const POSITIONAL: Columns = Columns {
        user: 0,
        item: 1,
        kind: 2,
        value: Some(3),
        timestamp: Some(4),
    };

    /// The columns a header names, or `None` when the first record is data.
    fn from_header(record: &csv::StringRecord) -> Option<anyhow::Result<Columns>> {
        let names: Vec<String> = record.iter().map(|f| f.to_ascii_lowercase()).collect();
        let find =
            |candidates: &[&str]| names.iter().position(|n| candidates.contains(&n.as_str()));
        let user = find(&["user", "user_id", "userid"]);
        let item = find(&["item", "item_id", "itemid"]);
        if user.is_none() && item.is_none() {
            return None;
        }
        let kind = find(&["type", "kind", "feedback_type", "event"]);
        Some(match (user, item, kind) {
            (Some(user), Some(item), Some(kind)) => Ok(Columns {
                user,
                item,
                kind,
                value: find(&["value", "rating", "weight"]),
                timestamp: find(&["timestamp", "time", "at"]),
            }),
            _ => Err(anyhow::anyhow!(
                "the CSV header needs user, item and type columns: {}",
                names.join(",")
            )),
        })
    }

    fn event(&self, record: &csv::StringRecord) -> anyhow::Result<FeedbackInput> {
        let field = |i: usize| record.get(i).unwrap_or("");
        let optional = |i: Option<usize>| i.map(field).filter(|f| !f.is_empty());
        if record.len() < 3 {
            bail!("expected user,item,type[,value,timestamp]");
        }
        let value = optional(self.value)
            .map(|v| {
                v.parse::<f64>()
                    .with_context(|| format!("value {v:?} is not a number"))
            })
            .transpose()?;
        let timestamp = optional(self.timestamp).map(parse_time).transpose()?;
        Ok(FeedbackInput {
            user_id: field(self.user).to_string(),
            item_id: field(self.item).to_string(),
            kind: field(self.kind).to_string(),
            value,
            timestamp,
            recommendation_id: None,
        })
    }
}

fn csv_events(
    reader: BufReader<Box<dyn Read>>,
) -> impl Iterator<Item = anyhow::Result<FeedbackInput>> {
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader)
        .into_records();
    let mut columns: Option<Columns> = None;
    std::iter::from_fn(move || {
        loop {
            let record = match records.next()? {
                Ok(r) => r,
                Err(e) => return Some(Err(anyhow::Error::new(e))),
            };
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(str::is_empty) {
                continue;
            }
            let cols = match &columns {
                Some(c) => c,
                None => match Columns::from_header(&record) {
                    Some(Ok(c)) => {
                        columns = Some(c);
                        continue;
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => columns.insert(Columns::POSITIONAL),
                },
            };
            return Some(cols.event(&record).with_context(|| format!("line {line}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_csv(text: &str) -> Vec<anyhow::Result<FeedbackInput>> {
        let reader: Box<dyn Read> = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        csv_events(BufReader::new(reader)).collect()
    }

    #[test]
    fn csv_with_or_without_a_header() {
        let plain = read_csv("ann,heat,view\nann,casino,rating,4.5,1700000000\n\n");
        let plain: Vec<FeedbackInput> = plain.into_iter().map(Result::unwrap).collect();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[0].kind, "view");
        assert_eq!(plain[0].value, None);
        assert_eq!(plain[1].value, Some(4.5));
        assert_eq!(plain[1].timestamp, Some(Timestamp(1_700_000_000_000)));

        let headed =
            read_csv("timestamp,item_id,user_id,type\n2023-11-14T22:13:20Z,heat,ann,like\n");
        let e = headed.into_iter().next().unwrap().unwrap();
        assert_eq!((e.user_id.as_str(), e.item_id.as_str()), ("ann", "heat"));
        assert_eq!(e.timestamp, Some(Timestamp(1_700_000_000_000)));

        let bad = read_csv("ann,heat,rating,lots\n");
        let err = bad.into_iter().next().unwrap().unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }

    #[test]
    fn times_are_rfc3339_dates_or_seconds() {
        assert_eq!(
            parse_time("2023-11-14").unwrap(),
            Timestamp(1_699_920_000_000)
        );
        assert_eq!(
            parse_time("1700000000").unwrap(),
            Timestamp(1_700_000_000_000)
        );
        assert!(parse_time("yesterday").is_err());
    }
}
