//! The dashboard as one self-contained HTML page: inline CSS, charts as inline SVG, one small inline script
//! (instants shown in the viewer's time zone). Nothing is fetched, so the page opens offline, from an
//! e-mail attachment or a file share. Every text from the data is HTML-escaped.
//!
//! Charts: cost by day (columns), cost by tenant, by meter and by region and commissions (bars), region
//! health (lag bars, red when stale), budgets (progress bars). Every chart has its own fixed colours, used
//! nowhere else on the page, so a screenshot test finds each chart by itself.

use std::fmt::Write as _;

use cms_core::Decimal;
use cms_core::monitoring::alerts::Severity;
use cms_core::monitoring::budgets::BudgetState;
use cms_core::monitoring::dashboard::{Amount, Dashboard, Ranked};

/// Columns of the cost-by-day chart.
pub const DAY_COLOUR: &str = "#2563eb";
/// Bars of the cost-by-tenant chart.
pub const TENANT_COLOUR: &str = "#0d9488";
/// Bars of the cost-by-meter chart.
pub const METER_COLOUR: &str = "#d97706";
/// Bars of the cost-by-region chart.
pub const REGION_COLOUR: &str = "#7c3aed";
/// Bars of the commissions chart.
pub const COMMISSION_COLOUR: &str = "#db2777";
/// A healthy region's lag bar.
pub const HEALTHY_COLOUR: &str = "#16a34a";
/// A stale region's lag bar.
pub const STALE_COLOUR: &str = "#dc2626";
/// A budget within its amount.
pub const BUDGET_OK_COLOUR: &str = "#0891b2";
/// A budget past its warning (or forecast to breach).
pub const BUDGET_WARNING_COLOUR: &str = "#ca8a04";
/// A breached budget.
pub const BUDGET_BREACH_COLOUR: &str = "#9f1239";

/// Escape text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// `value / peak` as a fraction of `length` pixels, at least one pixel for a positive value.
fn scaled(value: Decimal, peak: Decimal, length: u32) -> u32 {
    if peak <= Decimal::ZERO || value <= Decimal::ZERO {
        return 0;
    }
    let pixels = (value * Decimal::from(length) / peak).round();
    u32::try_from(pixels.mantissa()).unwrap_or(length).clamp(1, length)
}

fn amounts(amounts: &[Amount]) -> String {
    crate::report::amounts_joined(amounts, " + ")
}

/// Horizontal bars of a ranking.
fn bars(title: &str, entries: &[Ranked], colour: &str) -> String {
    let mut out = format!("<section><h2>{}</h2>", escape(title));
    if entries.is_empty() {
        out.push_str("<p class=\"empty\">No cost yet.</p></section>");
        return out;
    }
    let peak = entries.iter().map(|entry| entry.amount).max().unwrap_or_default();
    let height = 28 * u32::try_from(entries.len()).unwrap_or(u32::MAX).min(1000);
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 640 {height}\" width=\"640\" height=\"{height}\">",
        escape(title)
    );
    for (row, entry) in (0u32..).zip(entries) {
        let y = row * 28;
        let width = scaled(entry.amount, peak, 360);
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" class=\"label\">{}</text><rect x=\"190\" y=\"{}\" width=\"{width}\" height=\"18\" fill=\"{colour}\"><title>{}: {} {}</title></rect><text x=\"{}\" y=\"{}\" class=\"value\">{} {}</text>",
            y + 14,
            escape(&truncate(&entry.name, 26)),
            y + 2,
            escape(&entry.name),
            entry.amount,
            entry.currency,
            196 + width,
            y + 15,
            entry.amount,
            entry.currency
        );
    }
    out.push_str("</svg></section>");
    out
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Columns of cost by day (the first currency's; others are listed below the chart).
fn by_day(board: &Dashboard) -> String {
    let mut out = String::from("<section class=\"wide\"><h2>Cost by day</h2>");
    let Some(currency) = board.by_day.first().map(|day| day.currency) else {
        out.push_str("<p class=\"empty\">No cost yet.</p></section>");
        return out;
    };
    let days: Vec<_> = board.by_day.iter().filter(|day| day.currency == currency).collect();
    let peak = days.iter().map(|day| day.amount).max().unwrap_or_default();
    // One slot per day of the whole period, so a month's first days do not fill the chart.
    let slot = 900 / (board.period.hours() / 24).max(1);
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-label=\"Cost by day\" viewBox=\"0 0 960 250\" width=\"960\" height=\"250\"><line x1=\"40\" y1=\"210\" x2=\"950\" y2=\"210\" class=\"axis\"/><text x=\"0\" y=\"16\" class=\"value\">{peak} {currency}</text>"
    );
    for (index, day) in (0u32..).zip(&days) {
        let height = scaled(day.amount, peak, 190);
        let x = 44 + index * slot;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{height}\" fill=\"{DAY_COLOUR}\"><title>{}: {} {}</title></rect><text x=\"{}\" y=\"228\" class=\"tick\">{}</text>",
            210 - height,
            slot.saturating_sub(4).max(2),
            day.day,
            day.amount,
            day.currency,
            x,
            day.day.format("%d")
        );
    }
    out.push_str("</svg>");
    let others: Vec<String> = board
        .by_day
        .iter()
        .filter(|day| day.currency != currency && !day.amount.is_zero())
        .map(|day| format!("{}: {} {}", day.day, day.amount, day.currency))
        .collect();
    if !others.is_empty() {
        let _ = write!(out, "<p class=\"note\">Other currencies: {}</p>", escape(&others.join("; ")));
    }
    out.push_str("</section>");
    out
}

fn regions(board: &Dashboard) -> String {
    if board.regions.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section><h2>Region health</h2>");
    let peak = board.regions.iter().filter_map(|region| region.lag_hours).max().unwrap_or(0).max(1);
    let height = 28 * u32::try_from(board.regions.len()).unwrap_or(1);
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-label=\"Region health\" viewBox=\"0 0 640 {height}\" width=\"640\" height=\"{height}\">"
    );
    for (row, region) in (0u32..).zip(&board.regions) {
        let y = row * 28;
        let y2 = y + 2;
        let lag = region.lag_hours.unwrap_or(peak);
        let width = scaled(Decimal::from(lag.max(0)), Decimal::from(peak), 300).max(3);
        let colour = if region.stale { STALE_COLOUR } else { HEALTHY_COLOUR };
        let lag_text =
            region.lag_hours.map_or_else(|| "no usage yet".to_owned(), |lag| format!("{lag} h behind"));
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" class=\"label\">{}</text><rect x=\"110\" y=\"{y2}\" width=\"28\" height=\"18\" fill=\"{colour}\"/><rect x=\"150\" y=\"{y2}\" width=\"{width}\" height=\"18\" fill=\"{colour}\" opacity=\"0.6\"/><text x=\"{}\" y=\"{}\" class=\"value\">{}{}, {} gaps, {} refused</text>",
            y + 14,
            escape(&region.region),
            156 + width,
            y + 15,
            escape(&lag_text),
            if region.stale { " (stale)" } else { "" },
            region.gaps,
            region.refused_records
        );
    }
    out.push_str("</svg><p class=\"note\">Square: state (green ok, red stale); bar: hours since the last usage.</p><table><tr><th>Region</th><th>Last usage</th><th>Last pull</th></tr>");
    for region in &board.regions {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&region.region),
            region.last_usage.map_or_else(|| "never".to_owned(), |last| time(&last.to_rfc3339())),
            region.last_pull.map_or_else(
                || "never".to_owned(),
                |(at, ok)| format!("{} {}", time(&at.to_rfc3339()), if ok { "ok" } else { "failed" })
            )
        );
    }
    out.push_str("</table></section>");
    out
}

fn time(rfc3339: &str) -> String {
    let text = escape(rfc3339);
    format!("<time datetime=\"{text}\">{text}</time>")
}

fn budgets(board: &Dashboard) -> String {
    if board.budgets.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<section><h2>Budgets</h2><table><tr><th>Budget</th><th>Node</th><th>Spent</th><th>Used</th><th>Forecast</th></tr>",
    );
    for status in &board.budgets {
        let used = scaled(status.percent.min(Decimal::ONE_HUNDRED), Decimal::ONE_HUNDRED, 120);
        let colour = match status.state {
            BudgetState::Ok => BUDGET_OK_COLOUR,
            BudgetState::Breach => BUDGET_BREACH_COLOUR,
            BudgetState::Warning | BudgetState::ForecastBreach => BUDGET_WARNING_COLOUR,
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} of {} {}</td><td><svg width=\"124\" height=\"14\" viewBox=\"0 0 124 14\"><rect x=\"0\" y=\"0\" width=\"122\" height=\"14\" fill=\"#e5e7eb\"/><rect x=\"1\" y=\"1\" width=\"{used}\" height=\"12\" fill=\"{colour}\"/></svg> {}%</td><td>{} ({}%)</td></tr>",
            escape(&status.budget.id),
            escape(&status.budget.node),
            status.actual.round_dp(2),
            status.budget.amount,
            status.budget.currency,
            status.percent,
            status.forecast.round_dp(2),
            status.forecast_percent
        );
    }
    out.push_str("</table></section>");
    out
}

fn alerts(board: &Dashboard) -> String {
    let mut out = format!("<section class=\"wide\"><h2>Open alerts ({})</h2>", board.alerts.len());
    if board.alerts.is_empty() {
        out.push_str("<p class=\"empty\">None.</p></section>");
        return out;
    }
    out.push_str(
        "<table><tr><th>Severity</th><th>Kind</th><th>Scope</th><th>Since</th><th>Message</th></tr>",
    );
    for alert in &board.alerts {
        let class = match alert.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{class}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            alert.kind.name(),
            escape(&alert.scope),
            time(&alert.first_seen.to_rfc3339()),
            escape(&alert.message)
        );
    }
    out.push_str("</table></section>");
    out
}

fn documents(board: &Dashboard) -> String {
    let mut out = String::from("<section><h2>Invoices</h2>");
    if board.invoices.is_empty() {
        out.push_str("<p class=\"empty\">None in this period.</p></section>");
        return out;
    }
    out.push_str("<table><tr><th>State</th><th>Count</th><th>Total</th></tr>");
    for state in &board.invoices {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{} {}</td></tr>",
            format!("{:?}", state.state).to_lowercase(),
            state.count,
            state.total,
            state.currency
        );
    }
    out.push_str("</table></section>");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#111827;background:#f9fafb}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 10px}\
.sub{color:#6b7280;margin:0 0 18px}.grid{display:flex;flex-wrap:wrap;gap:16px}\
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 16px}\
section.wide{flex-basis:100%}.cards{display:flex;gap:16px;flex-wrap:wrap;margin-bottom:16px}\
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;min-width:180px}\
.card b{display:block;font-size:20px}.card span{color:#6b7280}\
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #f3f4f6;text-align:left}\
td.number{text-align:right}.label{font-size:12px;fill:#374151}.value{font-size:12px;fill:#111827}\
.tick{font-size:10px;fill:#6b7280}.axis{stroke:#9ca3af}.empty,.note{color:#6b7280}\
tr.critical td:first-child{color:#b91c1c;font-weight:600}tr.warning td:first-child{color:#b45309}";

const SCRIPT: &str = "document.querySelectorAll('time[datetime]').forEach(function(t){\
var d=new Date(t.getAttribute('datetime'));if(!isNaN(d.getTime())){t.title=t.textContent;t.textContent=d.toLocaleString();}});";

/// The page.
pub fn render(board: &Dashboard) -> String {
    let mut page = String::from("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        page,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>CMS dashboard: {} {}</title><style>{STYLE}</style></head><body>",
        escape(&board.scope_name),
        board.period
    );
    let _ = write!(
        page,
        "<h1>{} &middot; {}</h1><p class=\"sub\">Scope {} &middot; as of {}</p>",
        escape(&board.scope_name),
        board.period,
        escape(&board.scope),
        time(&board.at.to_rfc3339())
    );
    page.push_str("<div class=\"cards\">");
    for (label, value) in [
        ("Month to date", amounts(&board.month_to_date)),
        ("Projected month end", amounts(&board.projection)),
        ("Previous period", amounts(&board.previous_period)),
        ("Open alerts", board.alerts.len().to_string()),
    ] {
        let _ = write!(page, "<div class=\"card\"><span>{label}</span><b>{}</b></div>", escape(&value));
    }
    page.push_str("</div><div class=\"grid\">");
    page.push_str(&by_day(board));
    page.push_str(&bars("Cost by tenant", &board.top_tenants, TENANT_COLOUR));
    page.push_str(&bars("Cost by meter", &board.top_meters, METER_COLOUR));
    page.push_str(&bars("Cost by region", &board.by_region, REGION_COLOUR));
    page.push_str(&regions(board));
    page.push_str(&budgets(board));
    page.push_str(&documents(board));
    page.push_str(&bars("Commissions to date", &board.commissions, COMMISSION_COLOUR));
    page.push_str(&alerts(board));
    let _ = writeln!(page, "</div><script>{SCRIPT}</script></body></html>");
    page
}
