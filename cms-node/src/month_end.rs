//! `monthEnd(dataDir, outDir, options?)`: the WORKLOAD.md month-end on a folder of files (what
//! `cms month-end` runs), on a libuv worker thread; the Promise resolves to a summary.

use std::collections::HashMap;

use cms_api::CmsError;
use cms_api::month_end::{Options, Summary};
use cms_core::Location;
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi::{Env, Task};
use napi_derive::napi;
use serde_json::Value;

use crate::convert::{argument, js_error, string_argument};

/// Options of `monthEnd` (all optional; the TypeScript shape of the plain object it takes).
#[napi(object)]
pub struct MonthEndOptions {
    /// A folder of Usage API response pages (`*.json`, read in file-name order) to read instead of
    /// `usage.csv`.
    pub pages_dir: Option<String>,
    /// Refuse usage of meters no price prices (`unpriced_meter`) instead of reporting it in `unpriced`.
    pub strict: Option<bool>,
    /// Worker threads parsing usage (default: every core; 1 runs single-threaded).
    pub threads: Option<u32>,
    /// A folder for FOCUS 1.2 exports of the billed data, one file per issuing level.
    pub focus_out: Option<String>,
}

/// Usage of a (subscription, meter) that no price prices: reported, not billed.
#[napi(object)]
pub struct Unpriced {
    /// The subscription as spelled in the usage.
    pub subscription: String,
    /// The meter, canonical (upper-case 8-4-4-4-12).
    pub meter: String,
    /// The quantity not billed, exact (a decimal string).
    pub quantity: String,
}

/// What a month-end did. Amounts are decimal strings.
#[napi(object)]
pub struct MonthEndSummary {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// Usage rows (or page records) read.
    pub usage_rows: i64,
    /// Rows counted in the period (after dedupe).
    pub counted: i64,
    /// Exact repeats, counted once.
    pub duplicates: i64,
    /// Rows that replaced an earlier quantity of their key.
    pub corrections: i64,
    /// Rows before the period (late usage of an earlier one), not billed here.
    pub before_period: i64,
    /// Rows after the period, not billed here.
    pub after_period: i64,
    /// Invoices written.
    pub invoices: i64,
    /// Invoice lines written.
    pub invoice_lines: i64,
    /// Commission statements written.
    pub commission_statements: i64,
    /// Distributor override statements written.
    pub overrides: i64,
    /// The sum of the invoices' totals per currency code, as decimal strings.
    pub totals: HashMap<String, String>,
    /// Usage that no price prices (empty when everything was priced).
    pub unpriced: Vec<Unpriced>,
    /// The files written, in order: the four outputs, then the FOCUS exports.
    pub outputs: Vec<String>,
    /// Worker threads used.
    pub threads: i64,
    /// Wall time, in milliseconds.
    pub elapsed_ms: i64,
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl From<Summary> for MonthEndSummary {
    fn from(summary: Summary) -> Self {
        Self {
            period: summary.period,
            usage_rows: count(summary.usage_rows),
            counted: count(summary.counted),
            duplicates: count(summary.duplicates),
            corrections: count(summary.corrections),
            before_period: count(summary.before_period),
            after_period: count(summary.after_period),
            invoices: count(summary.invoices),
            invoice_lines: count(summary.invoice_lines),
            commission_statements: count(summary.commission_statements),
            overrides: count(summary.overrides),
            totals: summary
                .totals
                .into_iter()
                .map(|(currency, total)| (currency, total.to_string()))
                .collect(),
            unpriced: summary
                .unpriced
                .into_iter()
                .map(|entry| Unpriced {
                    subscription: entry.subscription,
                    meter: entry.meter,
                    quantity: entry.quantity.to_string(),
                })
                .collect(),
            outputs: summary.outputs,
            threads: count(summary.threads),
            elapsed_ms: count(summary.elapsed_ms),
        }
    }
}

/// The month-end as a libuv task: `compute` runs off the main thread, `resolve` back on it. Arguments that do
/// not read are carried to `resolve` too, so they reject the Promise like any other error.
pub struct MonthEndTask {
    options: Result<Options, CmsError>,
}

impl Task for MonthEndTask {
    // The core's outcome is carried to `resolve`, which turns an error into an `Error` with its code (a
    // rejection built in `compute` could only carry napi's own status names).
    type Output = Result<Summary, CmsError>;
    type JsValue = MonthEndSummary;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(self.options.as_ref().map_err(Clone::clone).and_then(cms_api::month_end::run))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map(MonthEndSummary::from).map_err(|error| js_error(env, &error))
    }
}

const METHOD: &str = "monthEnd";

/// `monthEnd`'s arguments as the job's options; a wrong type or an unknown option is `bad_json` naming it.
fn read_options(
    env: Env,
    data_dir: Unknown<'_>,
    out_dir: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> Result<Options, CmsError> {
    let mut run = Options::new(
        string_argument(env, METHOD, "dataDir", data_dir)?,
        string_argument(env, METHOD, "outDir", out_dir)?,
    );
    let options = match options {
        Some(options) => argument(env, METHOD, "options", options)?,
        None => None,
    };
    let bad = |field: &str, message: String| CmsError::BadJson {
        at: Location::field(METHOD, &format!("options.{field}")),
        message,
    };
    let fields = match options {
        None | Some(Value::Null) => return Ok(run),
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            return Err(CmsError::BadJson {
                at: Location::field(METHOD, "options"),
                message: format!("expected an object of options, got {other}"),
            });
        }
    };
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match (key.as_str(), value) {
            ("pagesDir", Value::String(folder)) => run.pages = Some(folder.into()),
            ("focusOut", Value::String(folder)) => run.focus_out = Some(folder.into()),
            ("strict", Value::Bool(strict)) => run.strict = strict,
            ("threads", Value::Number(number)) if number.as_u64().is_some_and(|threads| threads > 0) => {
                run.threads = number.as_u64().map(|threads| usize::try_from(threads).unwrap_or(usize::MAX));
            }
            ("pagesDir" | "focusOut", other) => {
                return Err(bad(&key, format!("expected a string, got {other}")));
            }
            ("strict", other) => return Err(bad(&key, format!("expected a boolean, got {other}"))),
            ("threads", other) => return Err(bad(&key, format!("expected a positive integer, got {other}"))),
            (_, _) => {
                return Err(bad(
                    &key,
                    "unexpected option (expected pagesDir, strict, threads, focusOut)".into(),
                ));
            }
        }
    }
    Ok(run)
}

/// The month-end of `../shared/bench/WORKLOAD.md` on the folder `dataDir` (`hierarchy.csv`,
/// `subscriptions.csv`, `prices.csv`, `commission.csv`, `plan.json`, `usage.csv`): writes
/// `invoice_lines.csv`, `invoices.csv`, `commissions.csv` and `overrides.csv` into `outDir` (created if
/// missing), byte-identical to `cms month-end`, and resolves to a summary. Runs off the main thread. Bad
/// input (a missing folder included) rejects with an `Error` whose `code` says why (`io`, `bad_record`,
/// `bad_json` for a wrong argument, ...) and whose message names the file and line.
#[napi(
    ts_args_type = "dataDir: string, outDir: string, options?: MonthEndOptions",
    ts_return_type = "Promise<MonthEndSummary>"
)]
pub fn month_end(
    env: Env,
    data_dir: Unknown<'_>,
    out_dir: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> AsyncTask<MonthEndTask> {
    AsyncTask::new(MonthEndTask { options: read_options(env, data_dir, out_dir, options) })
}
