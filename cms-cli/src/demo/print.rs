//! The demo's tables.

use cms_core::Decimal;
use cms_core::billing::{MonthEndReport, NotBilledReason};
use cms_core::engine::{ChangeSetPreview, Cms};
use cms_sqlite::SqliteStore;

use crate::tables::table;

pub fn short(text: &str) -> &str {
    text.get(..8).unwrap_or(text)
}

pub fn shown(quantity: Decimal) -> String {
    quantity.normalize().to_string()
}

/// The channel as a tree, with each subscription's offer and each reseller's relationship.
pub fn channel(cms: &Cms<SqliteStore>) {
    let state = cms.state();
    let hierarchy = &state.hierarchy;
    for index in hierarchy.subtree(hierarchy.root()) {
        let node = hierarchy.node(index);
        let depth = hierarchy.ancestry(index).count() - 1;
        let detail = match (state.channel.subscription(&node.id), state.channel.billing_profile(&node.id)) {
            (Some(info), _) => format!(", offer {}", info.offer.as_deref().unwrap_or("none")),
            (None, Some(profile)) => format!(", {:?}", profile.relationship).to_lowercase(),
            (None, None) => String::new(),
        };
        println!("{}{} {} ({}{detail})", "  ".repeat(depth), hierarchy.label(node.kind), node.name, node.id);
    }
}

/// A month-end: every invoice in full (or, with `full` false, one line per invoice), statements, margins,
/// usage not billed.
pub fn report(cms: &Cms<SqliteStore>, report: &MonthEndReport, full: bool) {
    let hierarchy = &cms.state().hierarchy;
    let name = |id: &str| hierarchy.get(id).map_or_else(|| id.to_owned(), |node| node.name.clone());
    if full {
        print_invoices(report, &name);
    } else {
        print_invoice_totals(report);
    }
    print_statements(report);
    print_margins(report);
    print_unpriced(report, &name);
}

/// A bulk change's preview: old and new totals per tenant and partner.
pub fn preview(preview: &ChangeSetPreview) {
    println!(
        "\nPreview of {} on {} usage (lists {}):",
        preview.change_set,
        preview.period,
        preview.lists.join(", ")
    );
    let rows = preview
        .tenants
        .iter()
        .map(|impact| ("tenant", impact))
        .chain(preview.partners.iter().map(|impact| ("partner's network", impact)))
        .map(|(kind, impact)| {
            vec![
                format!("{} ({kind})", impact.name),
                impact.old.to_string(),
                impact.new.to_string(),
                impact.change.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["who", "invoiced", "at new prices", "change"], &[1, 2, 3], rows));
}

fn print_invoice_totals(report: &MonthEndReport) {
    println!("\nInvoices {}", report.period);
    let rows = report
        .invoices
        .iter()
        .map(|invoice| {
            vec![
                invoice.issuer_name.clone(),
                invoice.buyer_name.clone(),
                invoice.lines.len().to_string(),
                format!("{} days", invoice.payment_terms_days),
                format!("{} {}", invoice.total, invoice.currency),
            ]
        })
        .collect();
    println!("{}", table(&["from", "to", "lines", "terms", "total"], &[2, 4], rows));
}

fn print_margins(report: &MonthEndReport) {
    if report.margins.is_empty() {
        return;
    }
    println!("\nResellers' margins {}", report.period);
    let rows = report
        .margins
        .iter()
        .map(|margin| {
            vec![
                margin.reseller_name.clone(),
                margin.sold.to_string(),
                margin.bought.to_string(),
                margin.margin.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["reseller", "sold", "bought", "margin"], &[1, 2, 3], rows));
}

fn print_invoices(report: &MonthEndReport, name: &dyn Fn(&str) -> String) {
    for invoice in &report.invoices {
        println!(
            "\nInvoice {} from {} to {} ({}), {}",
            report.period, invoice.issuer_name, invoice.buyer_name, invoice.buyer, invoice.currency
        );
        let rows = invoice
            .lines
            .iter()
            .map(|line| {
                let meter_name = line.meter.info().map_or("unknown meter", |info| info.name);
                vec![
                    name(&line.subscription),
                    format!("{meter_name} ({})", short(&line.meter.canonical())),
                    shown(line.quantity),
                    line.unit.clone(),
                    line.price_list.clone(),
                    line.amount.to_string(),
                ]
            })
            .chain(std::iter::once(vec![
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "total".into(),
                invoice.total.to_string(),
            ]))
            .collect();
        println!(
            "{}",
            table(&["subscription", "meter", "quantity", "unit", "price list", "amount"], &[2, 5], rows)
        );
    }
}

fn print_statements(report: &MonthEndReport) {
    println!("\nCommission statements {}", report.period);
    let rows = report
        .commissions
        .iter()
        .map(|statement| {
            let bands = statement
                .bands
                .iter()
                .map(|band| {
                    format!("{}% of {}", shown(band.rate * Decimal::ONE_HUNDRED), shown(band.quantity))
                })
                .collect::<Vec<_>>()
                .join(" + ");
            vec![
                statement.partner_name.clone(),
                statement.revenue.to_string(),
                statement.plan.clone().unwrap_or_else(|| "(no plan)".into()),
                bands,
                statement.commission.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["partner", "revenue", "plan", "bands applied", "commission"], &[1, 4], rows));
    if report.overrides.is_empty() {
        return;
    }
    println!("\nDistributor overrides {}", report.period);
    let rows = report
        .overrides
        .iter()
        .map(|statement| {
            vec![
                statement.distributor_name.clone(),
                statement.revenue.to_string(),
                format!("{}%", shown(statement.rate * Decimal::ONE_HUNDRED)),
                statement.amount.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["distributor", "network revenue", "rate", "override"], &[1, 2, 3], rows));
}

fn print_unpriced(report: &MonthEndReport, name: &dyn Fn(&str) -> String) {
    if !report.not_billed.is_empty() {
        println!("\nNot billed");
        let rows = report
            .not_billed
            .iter()
            .map(|entry| {
                let why = match entry.reason {
                    NotBilledReason::NoPrice => "no price list prices the meter",
                    NotBilledReason::DoubleCounts => "double counts with the core-hour meters",
                    NotBilledReason::UnknownSubscription => "subscription not in the channel",
                    NotBilledReason::NoExchangeRate => "no exchange rate",
                };
                let meter_name = entry.meter.info().map_or("unknown meter", |info| info.name);
                vec![
                    name(&entry.subscription),
                    format!("{meter_name} ({})", short(&entry.meter.canonical())),
                    shown(entry.quantity),
                    why.into(),
                ]
            })
            .collect();
        println!("{}", table(&["subscription", "meter", "quantity", "why"], &[2], rows));
    }
}
