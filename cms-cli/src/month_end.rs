//! `cms month-end`: the month-end job of `cms_api::month_end` (where the files are read and written, on
//! worker threads), with a warning for unpriced usage and a one-line summary.

use cms_api::month_end::{Options, run as run_month_end};
use cms_core::CmsError;

/// Run the job, print what was not billed (on stderr) and the summary line (on stdout).
pub fn run(options: &Options) -> Result<(), CmsError> {
    let summary = run_month_end(options)?;
    if !summary.unpriced.is_empty() {
        eprintln!(
            "warning: {} (subscription, meter) pair(s) have usage but no price and were not billed:",
            summary.unpriced.len()
        );
        for entry in summary.unpriced.iter().take(10) {
            eprintln!("  {} {} quantity {}", entry.subscription, entry.meter, entry.quantity);
        }
    }
    println!(
        "month-end {}: {} usage rows, {} counted, {} duplicates, {} corrections, {} before the period, {} after; \
         {} lines, {} invoices, {} commission statements, {} overrides in {:.3} s",
        summary.period,
        summary.usage_rows,
        summary.counted,
        summary.duplicates,
        summary.corrections,
        summary.before_period,
        summary.after_period,
        summary.invoice_lines,
        summary.invoices,
        summary.commission_statements,
        summary.overrides,
        std::time::Duration::from_millis(summary.elapsed_ms).as_secs_f64()
    );
    Ok(())
}
