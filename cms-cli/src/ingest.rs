//! `cms ingest`: usage from Usage API pages, an exported page folder, live regions, or FOCUS files, through
//! the engine's ingestion rules (dedupe by natural key, exclusions, one granularity per subscription and
//! period, late usage of closed periods, checkpoints), with a progress bar and a summary.
//!
//! Usage is stored in the SQLite database (`--db FILE`, `./cms.db` by default), so a second run of the same
//! pages counts them as duplicates and a region pull resumes from its checkpoints. The channel is the
//! database's; `--data DIR` onboards the nodes of a workload folder (`hierarchy.csv`, `subscriptions.csv`)
//! that the database does not have yet, so the summary can tell which subscriptions are not in it.
//! `--out FILE` writes every stored record as CSV in the workload's usage format, which `cms month-end`
//! reads.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cms_azure_stack::{
    ClientCredentials, MultiRegionSource, PageFolderSource, RegionConfig, UsageApiClient, read_page_file,
};
use cms_core::engine::{Cms, Event, IngestSummary};
use cms_core::error::{Location, Position};
use cms_core::formats::focus::{FocusCharge, read_focus_csv};
use cms_core::formats::focus_parquet::{is_parquet, read_focus_parquet_file};
use cms_core::formats::focus_usage::{AccountMap, charge_to_usage_mapped};
use cms_core::formats::usage_api::parse_page;
use cms_core::formats::workload::{PLATFORM_ID, read_hierarchy, read_subscriptions};
use cms_core::model::hierarchy::Hierarchy;
use cms_core::model::time::{Instant, Period, parse_timestamp};
use cms_core::model::usage::UsageRecord;
use cms_core::source::{PageOrigin, SourcedPage, UsageSource};
use cms_core::store::Store;
use cms_core::{CmsError, Decimal};
use cms_sqlite::SqliteStore;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::io_error;
use crate::tables::table;

/// Where usage comes from.
#[derive(Subcommand)]
pub enum Source {
    /// Usage API response pages (JSON files), in the order given.
    Pages {
        /// Page files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A folder of pages exported by a disconnected stamp (`*.json`, in file-name order).
    Folder {
        /// The folder.
        folder: PathBuf,
        /// The region (stamp) the pages come from, recorded with the usage.
        #[arg(long, default_value = "")]
        region: String,
    },
    /// FOCUS 1.2 cost data of other clouds (Azure, AWS, GCP exports), billed by pass-through pricing.
    Focus {
        /// FOCUS files: CSV, or Parquet (told by its `PAR1` magic bytes or a `.parquet` name).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A CSV file with the columns `account,subscription`: the subscription each FOCUS account
        /// (`SubAccountId`, else `BillingAccountId`; compared ignoring case) is billed to. Without it, or
        /// for an account it lacks, the account id is the subscription id.
        #[arg(long)]
        map: Option<PathBuf>,
    },
    /// Live regions: the provider Usage API of each stamp, per subscriber, from its checkpoint.
    Region {
        /// A region configuration file (JSON); repeat for several regions.
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// Read reported time up to this instant (RFC 3339), rounded down to the hour. Default: the start
        /// of the current UTC day, as the API flags windows ending on the current date as still processing.
        #[arg(long)]
        until: Option<String>,
    },
}

/// Options shared by every source.
#[derive(Args)]
pub struct Options {
    /// The SQLite database (created if missing).
    #[arg(long, global = true, default_value = "cms.db")]
    db: PathBuf,
    /// A workload folder whose hierarchy.csv and subscriptions.csv give the channel (nodes the database
    /// lacks are onboarded).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// A subscription whose usage is not billable (the default provider subscription, infrastructure);
    /// repeat for several.
    #[arg(long = "exclude", global = true)]
    excluded: Vec<String>,
    /// Write every stored record as CSV (the workload usage format, with cost columns) to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Print the summary as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// A region configuration file. The client secret is never stored in it: it names the environment
/// variable that holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    region: String,
    arm_endpoint: String,
    provider_subscription: String,
    tenant: String,
    client_id: String,
    client_secret_env: String,
    start: String,
    #[serde(default)]
    subscribers: Vec<String>,
    #[serde(default)]
    granularity: Option<String>,
    #[serde(default)]
    window_hours: Option<i64>,
    #[serde(default)]
    ca_certificates_file: Option<PathBuf>,
    #[serde(default)]
    allow_http: bool,
}

fn invalid(path: &Path, field: &str, text: &str, reason: &str) -> CmsError {
    CmsError::InvalidValue {
        at: Location::field(path.display().to_string(), field),
        text: text.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(crate) fn region_config(path: &Path) -> Result<RegionConfig, CmsError> {
    let bytes = std::fs::read(path).map_err(|error| io_error(path, &error))?;
    let file: RegionFile = serde_json::from_slice(&bytes).map_err(|error| CmsError::BadJson {
        at: Location::whole(path.display().to_string()),
        message: error.to_string(),
    })?;
    let secret = std::env::var(&file.client_secret_env).map_err(|_| {
        invalid(path, "client_secret_env", &file.client_secret_env, "the environment variable is not set")
    })?;
    let start = parse_timestamp(&file.start)
        .ok_or_else(|| invalid(path, "start", &file.start, "expected an RFC 3339 instant"))?;
    let credentials =
        ClientCredentials { tenant: file.tenant, client_id: file.client_id, client_secret: secret };
    let mut config =
        RegionConfig::new(file.region, file.arm_endpoint, file.provider_subscription, credentials, start);
    config.subscribers = file.subscribers;
    if let Some(text) = &file.granularity {
        config.granularity =
            text.parse().map_err(|reason: String| invalid(path, "granularity", text, &reason))?;
    }
    if let Some(hours) = file.window_hours {
        if hours <= 0 {
            return Err(invalid(path, "window_hours", &hours.to_string(), "must be positive"));
        }
        config.window = chrono::TimeDelta::hours(hours);
    }
    if let Some(pem_path) = &file.ca_certificates_file {
        let pem_path = path.parent().map_or_else(|| pem_path.clone(), |folder| folder.join(pem_path));
        config.extra_root_certificates_pem =
            Some(std::fs::read_to_string(&pem_path).map_err(|error| io_error(&pem_path, &error))?);
    }
    config.allow_http = file.allow_http;
    Ok(config)
}

/// Where a region pull ends when `--until` is not given: the start of the current UTC day (`now`'s date at
/// 00:00 UTC). The Usage API flags a `reportedEndTime` on the current date as "processing not complete": the
/// usage of those hours may still grow, and a checkpoint set past such a window would never read it again.
/// So by default today's windows wait for tomorrow's pull; `--until` reads closer to now.
fn default_until(now: Instant) -> Instant {
    now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Usage API page files given on the command line.
struct PageFiles {
    files: std::vec::IntoIter<PathBuf>,
}

impl UsageSource for PageFiles {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        let Some(path) = self.files.next() else { return Ok(None) };
        let name = path.display().to_string();
        let bytes = read_page_file(&path, &name)?;
        let page = parse_page(&bytes, &name)?;
        Ok(Some(SourcedPage { origin: PageOrigin::named(name), page }))
    }
}

/// A source that ticks a progress bar per page.
struct Progress<'a> {
    inner: &'a mut dyn UsageSource,
    bar: ProgressBar,
}

impl UsageSource for Progress<'_> {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        let page = self.inner.next_page()?;
        if let Some(sourced) = &page {
            self.bar.inc(1);
            self.bar.set_message(format!("{} ({} records)", sourced.origin.name, sourced.page.records.len()));
        }
        Ok(page)
    }
}

fn channel(data: Option<&Path>) -> Result<Hierarchy, CmsError> {
    let mut hierarchy = Hierarchy::new(PLATFORM_ID, "Platform");
    if let Some(data) = data {
        let open = |name: &str| {
            let path = data.join(name);
            File::open(&path).map(BufReader::new).map_err(|error| io_error(&path, &error))
        };
        read_hierarchy(open("hierarchy.csv")?, "hierarchy.csv", &mut hierarchy)?;
        read_subscriptions(open("subscriptions.csv")?, "subscriptions.csv", &mut hierarchy)?;
    }
    Ok(hierarchy)
}

pub fn run(source: Source, options: &Options) -> Result<(), CmsError> {
    let mut cms = crate::open_engine(&options.db)?;
    let operator = crate::actor::operator();
    let hierarchy = channel(options.data.as_deref())?;
    for index in hierarchy.subtree(hierarchy.root()).into_iter().skip(1) {
        let node = hierarchy.node(index);
        if cms.state().hierarchy.find(&node.id).is_some() {
            continue;
        }
        let parent = node.parent.clone().filter(|parent| parent != PLATFORM_ID);
        cms.execute(
            &operator,
            crate::actor::now(),
            &Event::NodeAdded { id: node.id.clone(), kind: node.kind, parent, name: node.name.clone() },
        )?;
    }
    if !options.excluded.is_empty() {
        let current = &cms.state().ingest_policy;
        let mut policy = current.clone();
        policy.excluded_subscriptions.extend(options.excluded.iter().cloned());
        if policy != *current {
            cms.execute(&operator, crate::actor::now(), &Event::IngestPolicySet { policy })?;
        }
    }
    // Recorded as a job run, so that refused and late records raise alerts at the next evaluation.
    let source_name = match &source {
        Source::Pages { .. } => "pages".to_owned(),
        Source::Folder { region, .. } if region.is_empty() => "folder".to_owned(),
        Source::Folder { region, .. } => format!("folder:{region}"),
        Source::Focus { .. } => "focus".to_owned(),
        Source::Region { .. } => "region".to_owned(),
    };
    if let Source::Focus { files, map } = &source {
        let accounts = match map {
            Some(path) => {
                let file = File::open(path).map_err(|error| io_error(path, &error))?;
                AccountMap::read_csv(BufReader::new(file), &path.display().to_string())?
            }
            None => AccountMap::new(),
        };
        let summary = ingest_focus(&mut cms, files, &accounts)?;
        cms.record_ingestion(&operator, crate::actor::now(), &source_name, &summary)?;
        return finish(&cms, options, &summary);
    }
    let (mut inner, pages): (Box<dyn UsageSource>, Option<u64>) = match source {
        Source::Pages { files } => {
            let count = files.len() as u64;
            (Box::new(PageFiles { files: files.into_iter() }), Some(count))
        }
        Source::Folder { folder, region } => {
            let source = PageFolderSource::open(&folder)?.with_region(region);
            let count = source.remaining().len() as u64;
            (Box::new(source), Some(count))
        }
        Source::Region { configs, until } => {
            let until = match until {
                Some(text) => parse_timestamp(&text).ok_or_else(|| CmsError::InvalidValue {
                    at: Location::whole("--until"),
                    text: text.clone(),
                    reason: "expected an RFC 3339 instant".into(),
                })?,
                None => default_until(chrono::Utc::now()),
            };
            let clients = configs
                .iter()
                .map(|path| UsageApiClient::new(region_config(path)?, until))
                .collect::<Result<Vec<_>, CmsError>>()?;
            (Box::new(MultiRegionSource::new(clients)?.with_checkpoints(&cms.checkpoints()?)), None)
        }
        Source::Focus { .. } => return Ok(()),
    };
    let bar = match pages {
        Some(count) => ProgressBar::new(count),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} pages {wide_msg} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = cms.pull(&mut Progress { inner: inner.as_mut(), bar: bar.clone() });
    bar.finish_and_clear();
    let summary = summary?;
    cms.record_ingestion(&operator, crate::actor::now(), &source_name, &summary)?;
    finish(&cms, options, &summary)
}

fn finish(cms: &Cms<SqliteStore>, options: &Options, summary: &IngestSummary) -> Result<(), CmsError> {
    if let Some(out) = &options.out {
        export(cms, out)?;
    }
    if options.json {
        println!("{}", serde_json::to_string_pretty(summary).unwrap_or_default());
    } else {
        print_summary(summary);
    }
    Ok(())
}

/// Rows of a FOCUS file go to the engine in batches of this many.
const FOCUS_BATCH: usize = 1000;

/// Whether a FOCUS file is Parquet: it starts with the Parquet magic bytes, or is named `*.parquet` (so a
/// damaged Parquet file gets the Parquet reader's error, not a CSV header error). Leaves `file` at its start.
fn is_parquet_file(path: &Path, file: &mut File) -> Result<bool, CmsError> {
    let mut head = Vec::with_capacity(4);
    let read = (&mut *file).take(4).read_to_end(&mut head).and_then(|_| file.seek(SeekFrom::Start(0)));
    read.map_err(|error| io_error(path, &error))?;
    let named = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("parquet"));
    Ok(is_parquet(&head) || named)
}

/// FOCUS files (CSV or Parquet), streamed in batches through the engine's rules, each account billed to the
/// subscription `accounts` gives it. Tax rows are counted and skipped (CMS computes its own taxes).
fn ingest_focus(
    cms: &mut Cms<SqliteStore>,
    files: &[PathBuf],
    accounts: &AccountMap,
) -> Result<IngestSummary, CmsError> {
    let mut summary = IngestSummary::default();
    let bar = ProgressBar::new(files.len() as u64);
    for path in files {
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
        bar.set_message(name.clone());
        let mut file = File::open(path).map_err(|error| io_error(path, &error))?;
        let parquet = is_parquet_file(path, &mut file)?;
        // Batches are named by their lines (CSV, the header being line 1) or rows (Parquet, from 0).
        let (unit, mut first) = if parquet { ("rows", 0) } else { ("lines", 2) };
        let mut batch: Vec<UsageRecord> = Vec::with_capacity(FOCUS_BATCH);
        let mut flush = |batch: &mut Vec<UsageRecord>, first: u64, last: u64| -> Result<(), CmsError> {
            if !batch.is_empty() {
                let origin = PageOrigin::named(format!("{name} {unit} {first}-{last}"));
                let mut part = cms.ingest(batch, &origin)?;
                part.pages = 1;
                summary.add(part);
                batch.clear();
            }
            Ok(())
        };
        let mut last = first;
        let mut taxes = 0;
        let visit = |charge: &FocusCharge, at: &Location| -> Result<(), CmsError> {
            last = match at.position {
                Position::Line(position) | Position::Record(position) => position,
                _ => last + 1,
            };
            match charge_to_usage_mapped(charge, accounts) {
                Some(record) => batch.push(record),
                None => taxes += 1,
            }
            if batch.len() == FOCUS_BATCH {
                flush(&mut batch, first, last)?;
                first = last + 1;
            }
            Ok(())
        };
        if parquet {
            read_focus_parquet_file(file, &name, visit)?;
        } else {
            read_focus_csv(BufReader::new(file), &name, visit)?;
        }
        flush(&mut batch, first, last)?;
        summary.received += taxes;
        summary.tax_rows_skipped += taxes;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}

fn print_summary(summary: &IngestSummary) {
    let count = |value: u64| value.to_string();
    let rows = vec![
        vec!["pages".into(), count(summary.pages)],
        vec!["records received".into(), count(summary.received)],
        vec!["stored (new)".into(), count(summary.stored)],
        vec!["duplicates".into(), count(summary.duplicates)],
        vec!["corrections".into(), count(summary.corrections.len() as u64)],
        vec!["late (adjustments of closed periods)".into(), count(summary.late_adjustments)],
        vec!["excluded subscriptions".into(), count(summary.excluded)],
        vec!["FOCUS tax rows (not imported)".into(), count(summary.tax_rows_skipped)],
        vec!["refused".into(), count(summary.refused.len() as u64)],
        vec!["unknown meters (kept)".into(), count(summary.unknown_meters.values().sum())],
        vec![
            "subscriptions not in the channel (kept)".into(),
            count(summary.unknown_subscriptions.values().sum()),
        ],
        vec!["VM size hours, not priced by default (kept)".into(), count(summary.double_counting)],
        vec!["checkpoints recorded".into(), count(summary.checkpoints.len() as u64)],
    ];
    println!("{}", table(&["ingestion", "records"], &[1], rows));
    if !summary.refused.is_empty() {
        let rows = summary
            .refused
            .iter()
            .take(20)
            .map(|refused| vec![refused.code.clone(), refused.message.clone()])
            .collect();
        println!("Refused records (first 20):\n{}", table(&["code", "why"], &[], rows));
    }
    if !summary.unknown_meters.is_empty() {
        let rows = summary
            .unknown_meters
            .iter()
            .map(|(meter, records)| vec![meter.canonical(), records.to_string()])
            .collect();
        println!("Unknown meters:\n{}", table(&["meter", "records"], &[1], rows));
    }
    if !summary.corrections.is_empty() {
        let rows = summary
            .corrections
            .iter()
            .take(20)
            .map(|correction| {
                vec![
                    correction.key.subscription.clone(),
                    correction.key.meter.canonical(),
                    correction.key.start.to_rfc3339(),
                    correction.old_quantity.to_string(),
                    correction.new_quantity.to_string(),
                ]
            })
            .collect();
        println!(
            "Corrections (first 20):\n{}",
            table(&["subscription", "meter", "start", "was", "now"], &[3, 4], rows)
        );
    }
}

/// Every stored record, as CSV in the workload usage format plus the source cost.
fn export(cms: &Cms<SqliteStore>, path: &Path) -> Result<(), CmsError> {
    let file = File::create(path).map_err(|error| io_error(path, &error))?;
    let mut writer =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(BufWriter::new(file));
    let failed = |error: &dyn std::fmt::Display| CmsError::Io {
        at: Location::whole(path.display().to_string()),
        message: error.to_string(),
    };
    writer
        .write_record([
            "subscription_id",
            "meter_id",
            "usage_start_time",
            "usage_end_time",
            "quantity",
            "resource_uri",
            "location",
            "cost",
            "cost_currency",
        ])
        .map_err(|error| failed(&error))?;
    let everything = Period::new(Instant::MIN_UTC, Instant::MAX_UTC)?;
    let time = |instant: Instant| instant.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    cms.store().for_each_usage(&everything, &mut |record| {
        let (cost, currency) = record.cost.map_or((String::new(), String::new()), |cost| {
            (cost.amount.to_string(), cost.currency.to_string())
        });
        writer
            .write_record([
                record.subscription.clone(),
                record.meter.canonical(),
                time(record.start),
                time(record.end),
                quantity_text(record.quantity),
                record.resource_uri.clone(),
                record.location.clone(),
                cost,
                currency,
            ])
            .map_err(|error| failed(&error))
    })?;
    writer.flush().map_err(|error| failed(&error))?;
    writer.into_inner().map_err(|error| failed(&error))?.flush().map_err(|error| failed(&error))
}

fn quantity_text(quantity: Decimal) -> String {
    quantity.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_pulls_end_at_the_start_of_the_current_utc_day_by_default() {
        let at = |text: &str| parse_timestamp(text).unwrap();
        for (now, until) in [
            ("2026-11-27T10:41:13Z", "2026-11-27T00:00:00Z"),
            ("2026-11-27T00:00:00Z", "2026-11-27T00:00:00Z"),
            ("2026-11-27T23:59:59Z", "2026-11-27T00:00:00Z"),
            ("2026-12-31T23:30:00-02:00", "2027-01-01T00:00:00Z"),
            ("2026-03-01T00:30:00+01:00", "2026-02-28T00:00:00Z"),
        ] {
            assert_eq!(default_until(at(now)), at(until), "{now}");
        }
    }
}
