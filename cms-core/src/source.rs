//! The `UsageSource` trait: where usage comes from, one page at a time.
//!
//! The Azure Stack Hub Usage API client (`cms-azure-stack`) implements it over HTTPS, looping per region,
//! per subscriber and per reported window; folder sources serve exported page files (disconnected stamps);
//! [`PageBytesSource`] serves pages already in memory (tests, the demo).
//!
//! Each page comes with its [`PageOrigin`]: where it was read and, for API pulls, which reported window it
//! belongs to. When the last page of a window has been stored, the engine records a [`Checkpoint`] (per
//! region and subscriber: reported time fully ingested up to here) in the same store transaction, so a
//! pull that stops anywhere resumes from the last complete window and never skips one.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::formats::usage_api::{UsagePage, parse_page};
use crate::model::time::Instant;

/// Aggregation granularity of Usage API records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One-hour buckets.
    #[default]
    Hourly,
    /// One-day buckets (UTC midnight to midnight).
    Daily,
}

impl Granularity {
    /// The API's spelling (`Hourly`, `Daily`).
    pub const fn api_name(self) -> &'static str {
        match self {
            Self::Hourly => "Hourly",
            Self::Daily => "Daily",
        }
    }

    /// Length of one bucket in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Self::Hourly => 3600,
            Self::Daily => 86_400,
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
        })
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "hourly" => Ok(Self::Hourly),
            "daily" => Ok(Self::Daily),
            _ => Err(format!("unknown granularity {text:?} (expected hourly or daily)")),
        }
    }
}

/// A reported-time window asked of the Usage API: `[start, end)`, on hour (hourly) or midnight (daily)
/// boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReportedWindow {
    /// Reported start, inclusive.
    pub start: Instant,
    /// Reported end, exclusive.
    pub end: Instant,
    /// Granularity requested.
    pub granularity: Granularity,
}

/// Where a page was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOrigin {
    /// A name for errors and reports: a file name or the request URL (without secrets).
    pub name: String,
    /// The region (stamp) the usage comes from; empty when unknown (a loose page file).
    pub region: String,
    /// The subscriber the page was asked for (`subscriberId`), if the pull loops per subscriber.
    pub subscriber: Option<String>,
    /// The reported window the page belongs to, for API pulls.
    pub window: Option<ReportedWindow>,
    /// Whether this is the last page of its window: once it is stored, the window is complete.
    pub completes_window: bool,
}

impl PageOrigin {
    /// The origin of a loose page (a file, a test).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: String::new(),
            subscriber: None,
            window: None,
            completes_window: false,
        }
    }
}

/// A page with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedPage {
    /// Where it came from.
    pub origin: PageOrigin,
    /// The parsed page.
    pub page: UsagePage,
}

/// How far usage of one region and subscriber has been ingested: every reported window ending at or
/// before `reported_until` is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The region.
    pub region: String,
    /// The subscriber (`None`: the whole stamp in one query).
    pub subscriber: Option<String>,
    /// Granularity of the windows.
    pub granularity: Granularity,
    /// End of the last complete reported window.
    pub reported_until: Instant,
}

impl Checkpoint {
    /// The checkpoint a completed window sets.
    pub fn after(origin: &PageOrigin) -> Option<Self> {
        let window = origin.window.filter(|_| origin.completes_window)?;
        Some(Self {
            region: origin.region.clone(),
            subscriber: origin.subscriber.clone(),
            granularity: window.granularity,
            reported_until: window.end,
        })
    }
}

/// A source of usage pages.
pub trait UsageSource {
    /// The next page, or `None` when the source is exhausted. A page that cannot be read or parsed is an
    /// error naming it; nothing of that page is returned.
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError>;
}

/// Usage API pages held as bytes, served in order.
#[derive(Debug, Clone, Default)]
pub struct PageBytesSource {
    pages: VecDeque<(String, Vec<u8>)>,
}

impl PageBytesSource {
    /// A source over `(name, bytes)` pages, served in the given order.
    pub fn new(pages: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self { pages: pages.into_iter().collect() }
    }
}

impl UsageSource for PageBytesSource {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        let Some((name, bytes)) = self.pages.front() else { return Ok(None) };
        let page = parse_page(bytes, name)?;
        let origin = PageOrigin::named(name.clone());
        self.pages.pop_front();
        Ok(Some(SourcedPage { origin, page }))
    }
}
