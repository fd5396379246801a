//! Invoice documents: what a buyer receives, built from a month-end invoice and then frozen.
//!
//! Rules (DESIGN.md, "Invoices"):
//! - a document is a draft (no number, recomputed on demand) until it is issued: then it has a number
//!   from its issuer's gapless sequence, an issue instant, a due date, and a SHA-256 content hash of its
//!   JSON body, and it never changes again;
//! - lines group the month-end lines by subscription and meter (or by meter, or by subscription:
//!   [`LineGrouping`]); lines of another kind (discounts, credits, commitments, adjustments, pass-through
//!   charges) and lines of another branch or tax rate stay apart. A group's amount is the sum of its
//!   rounded month-end lines, so the document adds up to the month-end invoice;
//! - taxes: each line takes the rate of the most specific [`TaxRule`] for (issuer, buyer's jurisdiction,
//!   meter category); discounts and credits, which have no meter, take the rule without a category. Tax
//!   per rate = that rate x the net of that rate's lines, rounded once. Total = sum of lines + taxes;
//! - what is still to bill is a *balance*: the full document minus what documents already issued for the
//!   same (period, issuer, buyer) billed, line by line ([`balance`]). A final invoice after interim ones,
//!   a credit or debit note after re-rating, and an invoice issued again after a void are all balances;
//!   so the issued documents of a buyer and period always add up, line by line, to what it owes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::billing::month_end::{Invoice, InvoiceLine, LineKind};
use crate::error::{CmsError, Location};
use crate::model::hierarchy::NodeKind;
use crate::model::meter::{Category, MeterId};
use crate::model::money::{Currency, Rounding};
use crate::model::time::{Instant, Period};

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// The invoice of a period (after interim invoices: the balance).
    #[default]
    Invoice,
    /// An interim invoice, issued mid-period when a buyer's running total crosses its threshold.
    Interim,
    /// A credit note: voids an invoice, or returns what re-rating found overbilled.
    CreditNote,
    /// A debit note: bills what re-rating found underbilled.
    DebitNote,
}

impl DocumentKind {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Interim => "interim",
            Self::CreditNote => "credit_note",
            Self::DebitNote => "debit_note",
        }
    }
}

/// How usage lines are grouped on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineGrouping {
    /// One line per subscription and meter (the default).
    #[default]
    SubscriptionMeter,
    /// One line per meter, all subscriptions together.
    Meter,
    /// One line per subscription, all meters together (no quantity: units differ).
    Subscription,
}

/// Invoice settings of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSettings {
    /// Days after a period's end before its invoices may be issued.
    #[serde(default)]
    pub issue_delay_days: u32,
    /// How usage lines are grouped.
    #[serde(default)]
    pub grouping: LineGrouping,
    /// Progressive billing: tenant id -> the running amount (before tax, not yet invoiced) at which an
    /// interim invoice is issued mid-period.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Decimal>,
}

impl Default for InvoiceSettings {
    fn default() -> Self {
        Self { issue_delay_days: 0, grouping: LineGrouping::SubscriptionMeter, thresholds: BTreeMap::new() }
    }
}

impl InvoiceSettings {
    /// Refuse negative thresholds.
    pub fn validate(&self) -> Result<(), CmsError> {
        for (tenant, threshold) in &self.thresholds {
            if threshold.is_sign_negative() || threshold.is_zero() {
                return Err(CmsError::InvalidValue {
                    at: Location::field("invoice settings", &format!("thresholds.{tenant}")),
                    text: threshold.to_string(),
                    reason: "a threshold must be positive".into(),
                });
            }
        }
        Ok(())
    }
}

/// A tax rate that applies to lines of an issuer's documents to buyers of a jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRule {
    /// The rule's id.
    pub id: String,
    /// Shown on documents ("VAT 20 %").
    pub name: String,
    /// The buyer's jurisdiction (from its billing profile, own or inherited).
    pub jurisdiction: String,
    /// Only documents of this issuer (`None`: any issuer).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Only lines of meters of this category (`None`: every line).
    #[serde(default)]
    pub category: Option<Category>,
    /// The rate (0.2 for 20 %); 0 for exempt lines.
    pub rate: Decimal,
}

impl TaxRule {
    /// Refuse a negative rate or a rate of 100 % or more, and an empty id or jurisdiction.
    pub fn validate(&self) -> Result<(), CmsError> {
        let bad = |field: &str, text: String, reason: &str| CmsError::InvalidValue {
            at: Location::field(format!("tax rule {}", self.id), field),
            text,
            reason: reason.into(),
        };
        if self.id.trim().is_empty() {
            return Err(bad("id", self.id.clone(), "must not be empty"));
        }
        if self.jurisdiction.trim().is_empty() {
            return Err(bad("jurisdiction", self.jurisdiction.clone(), "must not be empty"));
        }
        if self.rate.is_sign_negative() || self.rate >= Decimal::ONE {
            return Err(bad("rate", self.rate.to_string(), "must be at least 0 and below 1"));
        }
        Ok(())
    }

    fn specificity(&self) -> u8 {
        u8::from(self.issuer.is_some()) * 2 + u8::from(self.category.is_some())
    }
}

/// Tax rules by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxTable {
    /// Rules by id.
    pub rules: BTreeMap<String, TaxRule>,
}

impl TaxTable {
    /// The most specific rule for a line: issuer and category both given beat issuer only, which beats
    /// category only, which beats neither. No jurisdiction, or no rule: untaxed.
    pub fn rule_for(
        &self,
        issuer: &str,
        jurisdiction: Option<&str>,
        category: Option<Category>,
    ) -> Option<&TaxRule> {
        let jurisdiction = jurisdiction?;
        self.rules
            .values()
            .filter(|rule| rule.jurisdiction.eq_ignore_ascii_case(jurisdiction))
            .filter(|rule| rule.issuer.as_deref().is_none_or(|id| id == issuer))
            .filter(|rule| rule.category.is_none_or(|wanted| Some(wanted) == category))
            .max_by_key(|rule| rule.specificity())
    }
}

/// One line of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentLine {
    /// What kind of line (serialised flat: `"kind": "usage"`, `"kind": "credit"` with its fields...).
    #[serde(flatten)]
    pub kind: LineKind,
    /// The subscription (`None` when grouped by meter).
    #[serde(default)]
    pub subscription: Option<String>,
    /// The meter (`None` when grouped by subscription, and for lines without one).
    #[serde(default)]
    pub meter: Option<MeterId>,
    /// What the buyer reads.
    pub description: String,
    /// Unit of the quantity.
    #[serde(default)]
    pub unit: String,
    /// Quantity (`None` when units differ within the line).
    #[serde(default)]
    pub quantity: Option<Decimal>,
    /// Amount before tax, rounded.
    pub amount: Decimal,
    /// The tax rate applied to the line.
    pub tax_rate: Decimal,
    /// The partner the usage was attributed to (who earns commission on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// The distributor likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor: Option<String>,
}

/// Tax at one rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxAmount {
    /// The rate.
    pub rate: Decimal,
    /// The rule's name (empty for a rate no rule names).
    pub name: String,
    /// Net of the lines at this rate.
    pub base: Decimal,
    /// `rate x base`, rounded.
    pub amount: Decimal,
}

/// An invoice, interim invoice, credit note or debit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDocument {
    /// The number (`None` for a draft): `{issuer}-{sequence:06}`, gapless per issuer.
    pub number: Option<String>,
    /// What it is.
    pub kind: DocumentKind,
    /// Who issues it.
    pub issuer: String,
    /// Its display name.
    pub issuer_name: String,
    /// Who buys (a tenant, or a reseller buying from the level above).
    pub buyer: String,
    /// Its display name.
    pub buyer_name: String,
    /// Its level.
    pub buyer_kind: NodeKind,
    /// Who receives it (the buyer, or the ancestor its billing profile names).
    pub bill_to: String,
    /// The billing period, `YYYY-MM`.
    #[serde(with = "period_text")]
    pub period: Period,
    /// Currency of every amount.
    pub currency: Currency,
    /// The buyer's tax jurisdiction, if any.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// When it was issued (`None` for a draft).
    #[serde(default)]
    pub issued_at: Option<Instant>,
    /// Days to pay.
    pub payment_terms_days: u32,
    /// Due date: the issue date plus the payment terms (`None` for a draft).
    #[serde(default)]
    pub due: Option<NaiveDate>,
    /// The lines.
    pub lines: Vec<DocumentLine>,
    /// Sum of the lines.
    pub subtotal: Decimal,
    /// Tax per rate (rates of zero are not listed).
    pub taxes: Vec<TaxAmount>,
    /// Subtotal plus taxes.
    pub total: Decimal,
    /// A credit or debit note: the invoice it corrects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrects: Option<String>,
    /// Interim invoices of the period whose lines this one deducts (it bills the rest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deducts: Vec<String>,
    /// Why a credit or debit note was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `Period` as `YYYY-MM` text.
pub mod period_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::time::Period;

    /// Write `YYYY-MM` (or `START/END` for a period that is not a calendar month).
    pub fn serialize<S: Serializer>(period: &Period, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(period)
    }

    /// Read what [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Period, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where documents get their tax rates and groupings.
#[derive(Debug, Clone, Copy)]
pub struct DocumentTerms<'a> {
    /// Grouping of usage lines.
    pub grouping: LineGrouping,
    /// Tax rules.
    pub taxes: &'a TaxTable,
    /// The buyer's jurisdiction.
    pub jurisdiction: Option<&'a str>,
    /// Rounding of shown amounts (tax).
    pub rounding: Rounding,
}

/// What makes a document line: lines with the same key add up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    order: u8,
    kind: String,
    subscription: Option<String>,
    meter: Option<MeterId>,
    partner: Option<String>,
    distributor: Option<String>,
    tax_rate: Decimal,
}

fn kind_order(kind: &LineKind) -> u8 {
    match kind {
        LineKind::Usage => 0,
        LineKind::Discount { .. } => 1,
        LineKind::PassThrough { .. } => 2,
        LineKind::Adjustment { .. } => 3,
        LineKind::MinimumCommitment { .. } => 4,
        LineKind::Credit { .. } => 5,
    }
}

fn key_of(line: &DocumentLine) -> Key {
    Key {
        order: kind_order(&line.kind),
        kind: serde_json::to_string(&line.kind).unwrap_or_default(),
        subscription: line.subscription.as_ref().map(|id| id.to_ascii_lowercase()),
        meter: line.meter,
        partner: line.partner.clone(),
        distributor: line.distributor.clone(),
        tax_rate: line.tax_rate.normalize(),
    }
}

fn describe(kind: &LineKind, meter: Option<MeterId>, subscription: Option<&str>) -> String {
    let meter_name =
        meter.map(|meter| meter.info().map_or_else(|| meter.canonical(), |info| info.name.to_owned()));
    let subject = match (meter_name, subscription) {
        (Some(meter), Some(subscription)) => format!("{meter}, {subscription}"),
        (Some(meter), None) => meter,
        (None, Some(subscription)) => subscription.to_owned(),
        (None, None) => String::new(),
    };
    match kind {
        LineKind::Usage => subject,
        LineKind::Adjustment { adjusts } => format!("Late usage of {adjusts}: {subject}"),
        LineKind::PassThrough { .. } => format!("Pass-through cost: {subject}"),
        LineKind::Discount { discount, percent } => {
            format!("Discount {discount} ({}%): {subject}", (percent * Decimal::ONE_HUNDRED).normalize())
        }
        LineKind::MinimumCommitment { commitment } => format!("Minimum commitment true-up ({commitment})"),
        LineKind::Credit { credit, reason } => format!("Credit {credit}: {reason}"),
    }
}

/// Add `line` into `lines` by key.
fn add_line(lines: &mut BTreeMap<Key, DocumentLine>, line: DocumentLine) {
    let key = key_of(&line);
    match lines.get_mut(&key) {
        Some(sum) => {
            sum.amount += line.amount;
            sum.quantity = match (sum.quantity, line.quantity) {
                (Some(left), Some(right)) if sum.unit == line.unit => Some(left + right),
                _ => None,
            };
        }
        None => {
            lines.insert(key, line);
        }
    }
}

/// The category of a line's meter, for its tax rule (discounts and credits have none).
fn category_of(line: &InvoiceLine) -> Option<Category> {
    match line.kind {
        LineKind::Discount { .. } | LineKind::Credit { .. } => None,
        _ => line.meter.info().map(|info| info.category),
    }
}

/// The full draft of a month-end invoice.
pub fn draft(invoice: &Invoice, terms: DocumentTerms<'_>) -> InvoiceDocument {
    let mut lines = BTreeMap::new();
    for line in &invoice.lines {
        let rule = terms.taxes.rule_for(&invoice.issuer, terms.jurisdiction, category_of(line));
        let tax_rate = rule.map_or(Decimal::ZERO, |rule| rule.rate);
        let has_meter = !matches!(line.kind, LineKind::Credit { .. } | LineKind::MinimumCommitment { .. });
        let (subscription, meter) = match (&line.kind, terms.grouping) {
            (LineKind::Credit { .. } | LineKind::MinimumCommitment { .. }, _) => (None, None),
            (_, LineGrouping::SubscriptionMeter) => (Some(line.subscription.clone()), Some(line.meter)),
            (_, LineGrouping::Meter) => (None, Some(line.meter)),
            (_, LineGrouping::Subscription) => (Some(line.subscription.clone()), None),
        };
        let quantity = (has_meter && meter.is_some()).then_some(line.quantity);
        add_line(
            &mut lines,
            DocumentLine {
                description: describe(&line.kind, meter, subscription.as_deref()),
                kind: line.kind.clone(),
                subscription,
                meter,
                unit: if meter.is_some() { line.unit.clone() } else { String::new() },
                quantity,
                amount: line.amount,
                tax_rate,
                partner: line.partner.clone(),
                distributor: line.distributor.clone(),
            },
        );
    }
    let mut document = InvoiceDocument {
        number: None,
        kind: DocumentKind::Invoice,
        issuer: invoice.issuer.clone(),
        issuer_name: invoice.issuer_name.clone(),
        buyer: invoice.buyer.clone(),
        buyer_name: invoice.buyer_name.clone(),
        buyer_kind: invoice.buyer_kind,
        bill_to: invoice.bill_to.clone(),
        period: invoice.period,
        currency: invoice.currency,
        jurisdiction: terms.jurisdiction.map(str::to_owned),
        issued_at: None,
        payment_terms_days: invoice.payment_terms_days,
        due: None,
        lines: lines.into_values().collect(),
        subtotal: Decimal::ZERO,
        taxes: Vec::new(),
        total: Decimal::ZERO,
        corrects: None,
        deducts: Vec::new(),
        reason: None,
    };
    total_up(&mut document, terms.taxes, terms.rounding);
    document
}

/// Recompute subtotal, taxes per rate (on the net of each rate's lines) and total.
pub fn total_up(document: &mut InvoiceDocument, taxes: &TaxTable, rounding: Rounding) {
    let mut by_rate: BTreeMap<Decimal, Decimal> = BTreeMap::new();
    for line in &document.lines {
        *by_rate.entry(line.tax_rate.normalize()).or_default() += line.amount;
    }
    document.subtotal = rounding.apply(document.lines.iter().map(|line| line.amount).sum());
    document.taxes = by_rate
        .into_iter()
        .filter(|(rate, _)| !rate.is_zero())
        .map(|(rate, base)| TaxAmount {
            rate,
            name: taxes
                .rules
                .values()
                .find(|rule| rule.rate.normalize() == rate)
                .map(|rule| rule.name.clone())
                .unwrap_or_default(),
            base: rounding.apply(base),
            amount: rounding.apply(rate * base),
        })
        .collect();
    document.total =
        rounding.apply(document.subtotal + document.taxes.iter().map(|tax| tax.amount).sum::<Decimal>());
}

/// What is left to bill: `full` minus the lines of `billed` (documents already issued for the same period,
/// issuer and buyer), line by line; lines that net to nothing are dropped. Header fields come from `full`.
pub fn balance(
    full: &InvoiceDocument,
    billed: &[InvoiceDocument],
    taxes: &TaxTable,
    rounding: Rounding,
) -> InvoiceDocument {
    let mut lines: BTreeMap<Key, DocumentLine> = BTreeMap::new();
    for line in &full.lines {
        add_line(&mut lines, line.clone());
    }
    for document in billed {
        for line in &document.lines {
            let mut negated = line.clone();
            negated.amount = -negated.amount;
            negated.quantity = negated.quantity.map(|quantity| -quantity);
            add_line(&mut lines, negated);
        }
    }
    let mut document = full.clone();
    document.lines = lines
        .into_values()
        .filter(|line| !line.amount.is_zero() || line.quantity.is_some_and(|quantity| !quantity.is_zero()))
        .collect();
    total_up(&mut document, taxes, rounding);
    document
}

/// A credit note cancelling `invoice` whole: every line and tax negated.
pub fn cancelling(invoice: &InvoiceDocument, reason: &str) -> InvoiceDocument {
    let mut note = invoice.clone();
    note.number = None;
    note.kind = DocumentKind::CreditNote;
    note.issued_at = None;
    note.due = None;
    note.corrects.clone_from(&invoice.number);
    note.deducts = Vec::new();
    note.reason = Some(reason.to_owned());
    for line in &mut note.lines {
        line.amount = -line.amount;
        line.quantity = line.quantity.map(|quantity| -quantity);
    }
    for tax in &mut note.taxes {
        tax.base = -tax.base;
        tax.amount = -tax.amount;
    }
    note.subtotal = -invoice.subtotal;
    note.total = -invoice.total;
    note
}

/// The JSON body of a document, as stored and hashed.
pub fn body(document: &InvoiceDocument) -> Result<String, CmsError> {
    serde_json::to_string(document)
        .map_err(|error| CmsError::Store { message: format!("document {:?}: {error}", document.number) })
}

/// The lowercase hex SHA-256 of a body.
pub fn content_hash(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Read a stored body back.
pub fn parse_body(body: &str, what: &str) -> Result<InvoiceDocument, CmsError> {
    serde_json::from_str(body).map_err(|error| CmsError::BadJson {
        at: Location::whole(what.to_owned()),
        message: error.to_string(),
    })
}

/// A document's lines as CSV: one row per line with the document's number, period, buyer and currency.
pub fn to_csv(documents: &[InvoiceDocument]) -> Result<String, CmsError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |error: csv::Error| CmsError::Store { message: format!("writing CSV: {error}") };
    writer
        .write_record([
            "number",
            "kind",
            "period",
            "issuer",
            "buyer",
            "currency",
            "line_kind",
            "subscription",
            "meter",
            "description",
            "unit",
            "quantity",
            "amount",
            "tax_rate",
        ])
        .map_err(fail)?;
    for document in documents {
        for line in &document.lines {
            let kind = serde_json::to_value(&line.kind)
                .ok()
                .and_then(|value| value.get("kind").and_then(|kind| kind.as_str().map(str::to_owned)))
                .unwrap_or_default();
            writer
                .write_record([
                    document.number.as_deref().unwrap_or(""),
                    document.kind.as_str(),
                    &document.period.to_string(),
                    &document.issuer,
                    &document.buyer,
                    document.currency.code(),
                    &kind,
                    line.subscription.as_deref().unwrap_or(""),
                    &line.meter.map(MeterId::canonical).unwrap_or_default(),
                    &line.description,
                    &line.unit,
                    &line.quantity.map(|quantity| quantity.normalize().to_string()).unwrap_or_default(),
                    &line.amount.to_string(),
                    &line.tax_rate.normalize().to_string(),
                ])
                .map_err(fail)?;
        }
    }
    let bytes =
        writer.into_inner().map_err(|error| CmsError::Store { message: format!("writing CSV: {error}") })?;
    String::from_utf8(bytes).map_err(|error| CmsError::Store { message: format!("writing CSV: {error}") })
}

/// A document as Markdown (plain text that renders as tables).
pub fn to_markdown(document: &InvoiceDocument) -> String {
    let mut out = String::new();
    let title = match document.kind {
        DocumentKind::Invoice => "Invoice",
        DocumentKind::Interim => "Interim invoice",
        DocumentKind::CreditNote => "Credit note",
        DocumentKind::DebitNote => "Debit note",
    };
    let number = document.number.as_deref().unwrap_or("DRAFT");
    let _ = writeln!(out, "# {title} {number}\n");
    let _ = writeln!(out, "- From: {} ({})", document.issuer_name, document.issuer);
    let _ =
        writeln!(out, "- To: {} ({}), billed to {}", document.buyer_name, document.buyer, document.bill_to);
    let _ = writeln!(out, "- Period: {}", document.period);
    if let Some(issued) = document.issued_at {
        let _ = writeln!(out, "- Issued: {}", issued.format("%Y-%m-%d"));
    }
    if let Some(due) = document.due {
        let _ = writeln!(out, "- Due: {due} ({} days)", document.payment_terms_days);
    } else {
        let _ = writeln!(out, "- Payment terms: {} days", document.payment_terms_days);
    }
    if let Some(corrects) = &document.corrects {
        let _ = writeln!(out, "- Corrects: {corrects}");
    }
    if !document.deducts.is_empty() {
        let _ = writeln!(out, "- Deducts interim invoices: {}", document.deducts.join(", "));
    }
    if let Some(reason) = &document.reason {
        let _ = writeln!(out, "- Reason: {reason}");
    }
    let _ = writeln!(out, "\n| Description | Quantity | Unit | Tax | Amount ({}) |", document.currency);
    let _ = writeln!(out, "|---|---:|---|---:|---:|");
    for line in &document.lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}% | {} |",
            line.description.replace('|', "/"),
            line.quantity.map(|quantity| quantity.normalize().to_string()).unwrap_or_default(),
            line.unit,
            (line.tax_rate * Decimal::ONE_HUNDRED).normalize(),
            line.amount
        );
    }
    let _ = writeln!(out, "\n| | {} |\n|---|---:|", document.currency);
    let _ = writeln!(out, "| Subtotal | {} |", document.subtotal);
    for tax in &document.taxes {
        let name = if tax.name.is_empty() { "Tax".to_owned() } else { tax.name.clone() };
        let _ = writeln!(
            out,
            "| {name} {}% on {} | {} |",
            (tax.rate * Decimal::ONE_HUNDRED).normalize(),
            tax.base,
            tax.amount
        );
    }
    let _ = writeln!(out, "| **Total** | **{}** |", document.total);
    out
}
