//! `cms invoice`: invoice documents on a SQLite file (`./cms.db` unless `--db`), as the operator at the
//! current time.
//!
//! - `preview`: the drafts of a period (every buyer's, or those named by `--tenant`), as tables, JSON, CSV
//!   or Markdown; nothing is written;
//! - `issue`: closes the period if it is open and issues its drafts (gapless numbers per issuer, SHA-256 of
//!   each body); a second run finds nothing to issue;
//! - `void`: a credit note cancelling an issued invoice whole;
//! - `rerate`: credit and debit notes for what a closed period's corrections changed;
//! - `interim`: progressive billing now (tenants whose uninvoiced amount crossed their threshold);
//! - `list`, `show`, `verify`: the documents issued and drafted, one in full, and a check of every stored
//!   body against its recorded hash.
//!
//! JSON output carries decimals as strings and periods as `YYYY-MM`, like the stored bodies.

use std::io::Write as _;
use std::path::Path;

use clap::{Subcommand, ValueEnum};
use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::billing::invoice::{DocumentKind, InvoiceDocument, body, to_csv, to_markdown};
use cms_core::engine::{Cms, DocumentState, ListedDocument};
use cms_core::error::Location;
use cms_core::model::time::Period;
use cms_sqlite::SqliteStore;
use serde::Serialize;

use crate::tables::table;

/// What `cms invoice` does.
#[derive(Subcommand)]
pub enum Command {
    /// Show the drafts of a period: what `issue` would issue now.
    Preview {
        /// The billing period, `YYYY-MM`.
        #[arg(long)]
        period: String,
        /// Only this buyer (a tenant, or a reseller buying from the level above); repeat for several.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
        format: PreviewFormat,
    },
    /// Issue the drafts of a period (closing it if it is open); running it again issues nothing.
    Issue {
        /// The billing period, `YYYY-MM`.
        #[arg(long)]
        period: String,
        /// Only this buyer; repeat for several.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
    /// Void an issued invoice with a credit note cancelling it whole.
    Void {
        /// The invoice's number.
        number: String,
        /// Why (printed on the credit note).
        #[arg(long)]
        reason: String,
    },
    /// Re-rate a closed period after corrections: a credit or debit note per invoice for the difference.
    Rerate {
        /// The billing period, `YYYY-MM`.
        #[arg(long)]
        period: String,
        /// Why (printed on each note).
        #[arg(long)]
        reason: String,
    },
    /// Progressive billing now: interim invoices for tenants whose uninvoiced amount crossed their threshold.
    Interim,
    /// List the documents issued (of a period, or all) and the drafts.
    List {
        /// Only this billing period, `YYYY-MM` (without it: every issued document, and the drafts of every
        /// closed period and of the month after the latest one).
        #[arg(long)]
        period: Option<String>,
        /// Output format (`json`: one array; decimals as strings).
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Print an issued document.
    Show {
        /// The document's number.
        number: String,
        /// Output format (`json`: the stored body, whose SHA-256 is the recorded hash).
        #[arg(long, value_enum, default_value_t = ShowFormat::Markdown)]
        format: ShowFormat,
    },
    /// Check every issued document's stored body against its recorded hash.
    Verify,
}

/// Formats of `preview`.
#[derive(Clone, Copy, ValueEnum)]
pub enum PreviewFormat {
    /// A table per document.
    Text,
    /// One JSON array of the documents.
    Json,
    /// One CSV row per document line.
    Csv,
    /// Each document as Markdown.
    Markdown,
}

/// Formats of `list`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    /// A table, one row per document.
    Text,
    /// One JSON array of the listed documents.
    Json,
}

/// Formats of `show`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    /// The document as Markdown.
    Markdown,
    /// The stored JSON body.
    Json,
}

/// Open the engine on an existing SQLite file: reading or invoicing an empty new file would only hide a
/// mistyped `--db`.
pub(crate) fn open_existing(db: &Path) -> Result<Cms<SqliteStore>, CmsError> {
    if !db.is_file() {
        return Err(CmsError::Io {
            at: Location::whole(db.display().to_string()),
            message: "no such database (`cms demo` or `cms ingest` creates one)".into(),
        });
    }
    crate::open_engine(db)
}

/// A period given on the command line.
pub(crate) fn period(text: &str) -> Result<Period, CmsError> {
    text.trim().parse()
}

/// Write `text` and a newline to standard output. A closed pipe (`cms invoice list | head`) ends the output
/// quietly instead of panicking like `println!`.
pub(crate) fn emit(text: impl std::fmt::Display) -> Result<(), CmsError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CmsError::Io { at: Location::whole("standard output"), message: error.to_string() })
        }
        _ => Ok(()),
    }
}

/// Pretty JSON of a value that serialises without failing (the core's records).
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, CmsError> {
    serde_json::to_string_pretty(value).map_err(|error| CmsError::Store { message: format!("JSON: {error}") })
}

pub fn run(command: Command, db: &Path) -> Result<(), CmsError> {
    let operator = crate::actor::operator();
    match command {
        Command::Preview { period: text, tenants, format } => {
            let period = period(&text)?;
            let cms = open_existing(db)?;
            let buyers = (!tenants.is_empty()).then_some(tenants.as_slice());
            let documents = cms.preview_invoices(&operator, period, buyers)?;
            print_documents(&documents, format)
        }
        Command::Issue { period: text, tenants } => {
            let period = period(&text)?;
            let mut cms = open_existing(db)?;
            let buyers = (!tenants.is_empty()).then_some(tenants.as_slice());
            let issued = cms.issue_invoices(&operator, crate::actor::now(), period, buyers)?;
            if issued.is_empty() {
                emit(format_args!("nothing to issue for {period}"))?;
            } else {
                emit(format_args!("Issued {} document(s) for {period}", issued.len()))?;
                emit(issued_table(&issued))?;
            }
            Ok(())
        }
        Command::Void { number, reason } => {
            let mut cms = open_existing(db)?;
            let note = cms.void_invoice(&operator, crate::actor::now(), &number, &reason)?;
            emit(format_args!(
                "Voided {number} by credit note {}: {} {} to {} ({})",
                note.number.as_deref().unwrap_or("?"),
                note.total,
                note.currency,
                note.buyer_name,
                note.buyer
            ))?;
            Ok(())
        }
        Command::Rerate { period: text, reason } => {
            let period = period(&text)?;
            let mut cms = open_existing(db)?;
            let notes = cms.rerate(&operator, crate::actor::now(), period, &reason)?;
            if notes.is_empty() {
                emit(format_args!(
                    "nothing to re-rate in {period}: every invoice still matches its figures"
                ))?;
            } else {
                emit(format_args!("Re-rated {period}: {} note(s) issued", notes.len()))?;
                emit(issued_table(&notes))?;
            }
            Ok(())
        }
        Command::Interim => {
            let mut cms = open_existing(db)?;
            let interims = cms.issue_interim(&operator, crate::actor::now())?;
            if interims.is_empty() {
                emit("no interim invoice due")?;
            } else {
                emit(format_args!("Issued {} interim invoice(s)", interims.len()))?;
                emit(issued_table(&interims))?;
            }
            Ok(())
        }
        Command::List { period: text, format } => {
            let period = text.as_deref().map(period).transpose()?;
            let cms = open_existing(db)?;
            let listed = cms.invoice_documents(&operator, period)?;
            match format {
                ListFormat::Json => emit(json(&listed)?)?,
                ListFormat::Text if listed.is_empty() => emit("no documents")?,
                ListFormat::Text => emit(listed_table(&listed))?,
            }
            Ok(())
        }
        Command::Show { number, format } => {
            let cms = open_existing(db)?;
            let (_, document) = cms.issued_document(&operator, &number)?;
            match format {
                ShowFormat::Markdown => emit(to_markdown(&document).trim_end_matches('\n'))?,
                ShowFormat::Json => emit(body(&document)?)?,
            }
            Ok(())
        }
        Command::Verify => {
            let cms = open_existing(db)?;
            let broken = cms.verify_documents()?;
            if broken.is_empty() {
                emit(format_args!("{} documents intact", cms.state().issued.len()))?;
                Ok(())
            } else {
                Err(CmsError::Store {
                    message: format!(
                        "{} of {} issued document(s) altered or missing: {}",
                        broken.len(),
                        cms.state().issued.len(),
                        broken.join(", ")
                    ),
                })
            }
        }
    }
}

fn kind_title(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Invoice => "Invoice",
        DocumentKind::Interim => "Interim invoice",
        DocumentKind::CreditNote => "Credit note",
        DocumentKind::DebitNote => "Debit note",
    }
}

fn percent(rate: Decimal) -> String {
    format!("{}%", (rate * Decimal::ONE_HUNDRED).normalize())
}

fn print_documents(documents: &[InvoiceDocument], format: PreviewFormat) -> Result<(), CmsError> {
    match format {
        PreviewFormat::Json => emit(json(documents)?)?,
        PreviewFormat::Csv => emit(to_csv(documents)?.trim_end_matches('\n'))?,
        PreviewFormat::Markdown => {
            for (index, document) in documents.iter().enumerate() {
                if index > 0 {
                    emit("")?;
                }
                emit(to_markdown(document).trim_end_matches('\n'))?;
            }
        }
        PreviewFormat::Text if documents.is_empty() => emit("nothing to issue")?,
        PreviewFormat::Text => {
            for document in documents {
                print_document(document)?;
            }
        }
    }
    Ok(())
}

/// A document as a heading and a table of its lines, subtotal, taxes and total.
fn print_document(document: &InvoiceDocument) -> Result<(), CmsError> {
    emit(format_args!(
        "\n{} {} {} from {} to {} ({}), {}, {} days",
        kind_title(document.kind),
        document.number.as_deref().unwrap_or("DRAFT"),
        document.period,
        document.issuer_name,
        document.buyer_name,
        document.buyer,
        document.currency,
        document.payment_terms_days
    ))?;
    let blank = |label: &str, amount: Decimal| {
        vec![label.to_owned(), String::new(), String::new(), String::new(), amount.to_string()]
    };
    let rows = document
        .lines
        .iter()
        .map(|line| {
            vec![
                line.description.clone(),
                line.quantity.map(|quantity| quantity.normalize().to_string()).unwrap_or_default(),
                line.unit.clone(),
                percent(line.tax_rate),
                line.amount.to_string(),
            ]
        })
        .chain(std::iter::once(blank("subtotal", document.subtotal)))
        .chain(document.taxes.iter().map(|tax| {
            let name = if tax.name.is_empty() { "tax" } else { tax.name.as_str() };
            blank(&format!("{name} {} on {}", percent(tax.rate), tax.base), tax.amount)
        }))
        .chain(std::iter::once(blank("total", document.total)))
        .collect();
    emit(table(&["description", "quantity", "unit", "tax", "amount"], &[1, 3, 4], rows))
}

/// Issued documents: number, kind, buyer, total.
fn issued_table(documents: &[InvoiceDocument]) -> comfy_table::Table {
    let rows = documents
        .iter()
        .map(|document| {
            vec![
                document.number.clone().unwrap_or_default(),
                document.kind.as_str().to_owned(),
                document.period.to_string(),
                format!("{} ({})", document.buyer_name, document.buyer),
                document.corrects.clone().unwrap_or_default(),
                format!("{} {}", document.total, document.currency),
            ]
        })
        .collect();
    table(&["number", "kind", "period", "buyer", "corrects", "total"], &[5], rows)
}

/// Listed documents, one row each.
fn listed_table(listed: &[ListedDocument]) -> comfy_table::Table {
    let rows = listed
        .iter()
        .map(|entry| {
            let document = &entry.document;
            let state = match &entry.voided_by {
                Some(note) => format!("voided by {note}"),
                None => match entry.state {
                    DocumentState::Draft => "draft".to_owned(),
                    DocumentState::Issued => "issued".to_owned(),
                    DocumentState::Voided => "voided".to_owned(),
                },
            };
            vec![
                document.number.clone().unwrap_or_else(|| "(draft)".into()),
                document.kind.as_str().to_owned(),
                document.period.to_string(),
                state,
                document.issuer_name.clone(),
                format!("{} ({})", document.buyer_name, document.buyer),
                format!("{} {}", document.total, document.currency),
            ]
        })
        .collect();
    table(&["number", "kind", "period", "state", "from", "to", "total"], &[6], rows)
}
