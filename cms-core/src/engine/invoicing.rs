//! Invoicing on the engine: preview, issue, void, re-rate and progressive (interim) billing.
//!
//! Issued documents are stored as JSON bodies (kind [`INVOICE_DOCUMENT`], key
//! `{period}/{issuer}/{buyer}/{number}`) and recorded by a [`Event::DocumentIssued`] event with their
//! SHA-256; the body is never written again. Rules:
//! - issuing a period needs its end plus the issue delay to have passed; it closes the period (freezing
//!   its month-end) if it is still open, then issues every draft of it that is not issued yet. A second run
//!   finds nothing left to issue;
//! - a draft is the balance of the period's full document and what is already issued for the same issuer
//!   and buyer (interim invoices are deducted; after a void, the whole is billed again);
//! - voiding issues a credit note that cancels the invoice whole;
//! - re-rating a closed period (after a [`Event::Correction`]) recomputes it and issues, per issued
//!   invoice, a credit note or a debit note for exactly the difference, line by line;
//! - progressive billing: at any instant of an open period, a tenant whose uninvoiced running amount
//!   (before tax) reaches its threshold gets an interim invoice for it.

use chrono::{Datelike, Duration};
use serde::{Deserialize, Serialize};

use crate::billing::chargeback::{JournalLine, ShowbackReport, journal, showback};
use crate::billing::invoice::{
    DocumentKind, DocumentTerms, InvoiceDocument, balance, body, cancelling, content_hash, draft, parse_body,
};
use crate::billing::statements::{CommissionReport, commission_report};
use crate::billing::{BillingRules, Invoice, MonthEndReport};
use std::collections::BTreeMap;

use crate::engine::{CLOSED_MONTH_END, Cms, Event, Planned, Principal, State};
use crate::error::{CmsError, Location};
use crate::governance::rbac::Action;
use crate::model::hierarchy::NodeKind;
use crate::model::time::{Instant, Period};
use crate::store::{Document, Store};

/// The kind of the stored bodies of issued documents.
pub const INVOICE_DOCUMENT: &str = "invoice_document";

/// The number of an issuer's `sequence`-th document.
pub fn document_number(issuer: &str, sequence: u64) -> String {
    format!("{issuer}-{sequence:06}")
}

/// An issued document as the state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedDocument {
    /// Its number.
    pub number: String,
    /// What it is.
    pub kind: DocumentKind,
    /// The billing period.
    pub period: Period,
    /// The issuer.
    pub issuer: String,
    /// The buyer.
    pub buyer: String,
    /// When it was issued.
    pub issued_at: Instant,
    /// SHA-256 of its body.
    pub hash: String,
    /// The invoice a note corrects.
    pub corrects: Option<String>,
    /// The credit note that voided it.
    pub voided_by: Option<String>,
}

impl IssuedDocument {
    /// Where its body is stored.
    pub fn key(&self) -> String {
        format!("{}/{}/{}/{}", self.period, self.issuer, self.buyer, self.number)
    }
}

/// The last number an issuer used, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// The last sequence number used.
    pub last: u64,
    /// When it was used.
    pub at: Instant,
}

/// Where a listed document stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// Not issued: recomputed on demand.
    Draft,
    /// Issued, final.
    Issued,
    /// Issued, then voided by a credit note.
    Voided,
}

/// A document as listed: its state, the buyer (as `tenant`), its hash when issued, and the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDocument {
    /// Draft, issued or voided.
    pub state: DocumentState,
    /// The buyer's id (a tenant; in resale, a reseller buying from the level above).
    pub tenant: String,
    /// SHA-256 of the issued body.
    pub hash: Option<String>,
    /// The credit note that voided it.
    pub voided_by: Option<String>,
    /// The document.
    #[serde(flatten)]
    pub document: InvoiceDocument,
}

fn refuse(what: &str, text: &str, reason: &str) -> CmsError {
    CmsError::InvalidValue {
        at: Location::whole(what.to_owned()),
        text: text.to_owned(),
        reason: reason.into(),
    }
}

impl State {
    /// Record an issued document: its number must be the issuer's next, not earlier than the last one,
    /// and fit the period's state (interim invoices in open periods, the rest in closed ones).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_issued(
        &mut self,
        at: Instant,
        number: &str,
        kind: DocumentKind,
        period: Period,
        issuer: &str,
        buyer: &str,
        hash: &str,
        corrects: Option<&str>,
    ) -> Result<(), CmsError> {
        let what = format!("document {number}");
        if self.hierarchy.find(issuer).is_none() || self.hierarchy.find(buyer).is_none() {
            return Err(CmsError::UnknownNode {
                kind: "node".into(),
                id: format!("{issuer} or {buyer}"),
                context: Some(Location::whole(what)),
            });
        }
        let sequence = self.sequences.get(issuer).copied();
        let expected = document_number(issuer, sequence.map_or(1, |sequence| sequence.last + 1));
        if number != expected {
            return Err(refuse(
                &what,
                number,
                &format!("numbers are gapless per issuer: the next is {expected}"),
            ));
        }
        if let Some(sequence) = sequence.filter(|sequence| at < sequence.at) {
            return Err(refuse(
                &what,
                &at.to_rfc3339(),
                &format!("issued before the issuer's last document ({})", sequence.at.to_rfc3339()),
            ));
        }
        let closed = self.closed_periods.contains(&period);
        match kind {
            DocumentKind::Interim if closed => {
                return Err(refuse(
                    &what,
                    &period.to_string(),
                    "interim invoices are issued in open periods",
                ));
            }
            DocumentKind::Invoice | DocumentKind::CreditNote | DocumentKind::DebitNote if !closed => {
                return Err(refuse(&what, &period.to_string(), "the period is not closed"));
            }
            _ => {}
        }
        if let Some(corrected) = corrects {
            let same = self.issued.get(corrected).is_some_and(|invoice| {
                (invoice.period, invoice.issuer.as_str(), invoice.buyer.as_str()) == (period, issuer, buyer)
            });
            if !same {
                return Err(refuse(
                    &what,
                    corrected,
                    "corrects no issued document of the same period and parties",
                ));
            }
        }
        self.sequences.insert(
            issuer.to_owned(),
            Sequence { last: sequence.map_or(1, |sequence| sequence.last + 1), at },
        );
        self.issued.insert(
            number.to_owned(),
            IssuedDocument {
                number: number.to_owned(),
                kind,
                period,
                issuer: issuer.to_owned(),
                buyer: buyer.to_owned(),
                issued_at: at,
                hash: hash.to_owned(),
                corrects: corrects.map(str::to_owned),
                voided_by: None,
            },
        );
        Ok(())
    }

    /// Record a void: the invoice must be issued and live, the credit note issued against it.
    pub(crate) fn apply_voided(&mut self, number: &str, credit_note: &str) -> Result<(), CmsError> {
        let what = format!("void of {number}");
        let note_ok = self.issued.get(credit_note).is_some_and(|note| {
            note.kind == DocumentKind::CreditNote && note.corrects.as_deref() == Some(number)
        });
        if !note_ok {
            return Err(refuse(&what, credit_note, "is not a credit note issued against the invoice"));
        }
        let invoice = self.issued.get_mut(number).ok_or_else(|| CmsError::UnknownNode {
            kind: "document".into(),
            id: number.to_owned(),
            context: None,
        })?;
        if !matches!(invoice.kind, DocumentKind::Invoice | DocumentKind::Interim) {
            return Err(refuse(&what, number, "only invoices are voided"));
        }
        if let Some(voided) = &invoice.voided_by {
            return Err(refuse(&what, number, &format!("already voided by {voided}")));
        }
        invoice.voided_by = Some(credit_note.to_owned());
        Ok(())
    }
}

impl<S: Store> Cms<S> {
    /// The document terms (grouping, taxes, jurisdiction, rounding) of a month-end invoice.
    fn document_of(&self, invoice: &Invoice) -> InvoiceDocument {
        let hierarchy = &self.state.hierarchy;
        let jurisdiction = hierarchy
            .find(&invoice.buyer)
            .and_then(|buyer| self.state.channel.jurisdiction_of(hierarchy, buyer, invoice.period.start));
        draft(
            invoice,
            DocumentTerms {
                grouping: self.state.invoice_settings.grouping,
                taxes: &self.state.taxes,
                jurisdiction,
                rounding: self.state.rules.rounding(invoice.currency),
            },
        )
    }

    /// Issued documents of (period, issuer, buyer), in number order, with their bodies.
    fn billed(
        &self,
        period: Period,
        issuer: &str,
        buyer: &str,
    ) -> Result<Vec<(IssuedDocument, InvoiceDocument)>, CmsError> {
        let mut out = Vec::new();
        for issued in self.state.issued.values() {
            if issued.period == period && issued.issuer == issuer && issued.buyer == buyer {
                out.push((issued.clone(), self.load(issued)?));
            }
        }
        Ok(out)
    }

    /// The stored body of an issued document, checked against its hash.
    fn load(&self, issued: &IssuedDocument) -> Result<InvoiceDocument, CmsError> {
        let key = issued.key();
        let stored = self
            .store
            .documents(INVOICE_DOCUMENT, &key)?
            .into_iter()
            .find(|document| document.key == key)
            .ok_or_else(|| CmsError::Store {
                message: format!("document {} is missing from the store", issued.number),
            })?;
        if content_hash(&stored.body) != issued.hash {
            return Err(CmsError::Store {
                message: format!(
                    "document {} does not match its recorded hash: it was altered",
                    issued.number
                ),
            });
        }
        parse_body(&stored.body, &format!("document {}", issued.number))
    }

    /// Whether `principal` may see a document: its buyer, issuer or bill-to party lies in the principal's
    /// subtree now or at the period's start, or a line is attributed to an agent there.
    fn may_see(&self, principal: &Principal, document: &InvoiceDocument) -> Result<bool, CmsError> {
        let scope = self.scope_of(principal)?;
        let hierarchy = &self.state.hierarchy;
        if scope == hierarchy.root() {
            return Ok(true);
        }
        let within = |id: &str| {
            hierarchy.find(id).is_some_and(|node| {
                hierarchy.is_within(node, scope)
                    || hierarchy.is_in_subtree_at(node, scope, document.period.start)
            })
        };
        Ok(within(&document.buyer)
            || within(&document.issuer)
            || within(&document.bill_to)
            || document.lines.iter().any(|line| {
                line.partner.as_deref().is_some_and(&within)
                    || line.distributor.as_deref().is_some_and(&within)
            }))
    }

    /// What would be issued for `period` now: for every buyer (or those named in `buyers`) without a live
    /// invoice of the period, the balance of its full document and what is already issued to it (interim
    /// invoices deducted). A closed period's documents come from its frozen month-end.
    pub fn preview_invoices(
        &self,
        principal: &Principal,
        period: Period,
        buyers: Option<&[String]>,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let report = self.month_end_for(principal, period, self.state.rules)?;
        let mut out = Vec::new();
        for invoice in &report.invoices {
            if buyers
                .is_some_and(|buyers| !buyers.iter().any(|buyer| buyer.eq_ignore_ascii_case(&invoice.buyer)))
            {
                continue;
            }
            let full = self.document_of(invoice);
            let billed = self.billed(period, &invoice.issuer, &invoice.buyer)?;
            let live_invoice = billed
                .iter()
                .any(|(issued, _)| issued.kind == DocumentKind::Invoice && issued.voided_by.is_none());
            if live_invoice {
                continue;
            }
            let bodies: Vec<InvoiceDocument> = billed.iter().map(|(_, body)| body.clone()).collect();
            let mut document =
                balance(&full, &bodies, &self.state.taxes, self.state.rules.rounding(full.currency));
            document.deducts = billed
                .iter()
                .filter(|(issued, _)| issued.kind == DocumentKind::Interim && issued.voided_by.is_none())
                .map(|(issued, _)| issued.number.clone())
                .collect();
            if document.lines.is_empty() && !billed.is_empty() {
                continue;
            }
            out.push(document);
        }
        Ok(out)
    }

    /// Issue the drafts of a period (every buyer's, or those named in `buyers`). The period must have
    /// ended `issue_delay_days` before `at`; an open period is closed first. Returns what was issued: a
    /// second run returns nothing.
    pub fn issue_invoices(
        &mut self,
        principal: &Principal,
        at: Instant,
        period: Period,
        buyers: Option<&[String]>,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        let delay = self.state.invoice_settings.issue_delay_days;
        let earliest = period.end + Duration::days(i64::from(delay));
        if at < earliest {
            return Err(refuse(
                &format!("issue of {period}"),
                &at.to_rfc3339(),
                &format!(
                    "invoices of {period} may be issued from {} ({delay} days after its end)",
                    earliest.to_rfc3339()
                ),
            ));
        }
        self.refresh()?;
        if !self.state.closed_periods.contains(&period) {
            match self.close_period(principal, at, period) {
                // Another engine closed it in the meantime.
                Err(CmsError::InvalidPeriod { .. })
                    if {
                        self.refresh()?;
                        self.state.closed_periods.contains(&period)
                    } => {}
                other => other?,
            }
        }
        let make = |cms: &Self| cms.preview_invoices(principal, period, buyers);
        self.issue_with(principal, at, "issue_invoices", &period.to_string(), &make, &|_| Vec::new())
    }

    /// Void an issued invoice with a credit note cancelling it whole; returns the credit note. The
    /// buyer's next preview of the period bills the whole again (as re-rated, if it was).
    pub fn void_invoice(
        &mut self,
        principal: &Principal,
        at: Instant,
        number: &str,
        reason: &str,
    ) -> Result<InvoiceDocument, CmsError> {
        let make = |cms: &Self| {
            let (issued, document) = cms.issued_document(principal, number)?;
            if !matches!(issued.kind, DocumentKind::Invoice | DocumentKind::Interim) {
                return Err(refuse(&format!("void of {number}"), number, "only invoices are voided"));
            }
            if reason.trim().is_empty() {
                return Err(refuse(&format!("void of {number}"), reason, "a void needs a reason"));
            }
            Ok(vec![cancelling(&document, reason)])
        };
        let then = |notes: &[InvoiceDocument]| {
            notes
                .iter()
                .filter_map(|note| note.number.clone())
                .map(|credit_note| Event::InvoiceVoided { number: number.to_owned(), credit_note })
                .collect()
        };
        let mut issued = self.issue_with(principal, at, "void_invoice", number, &make, &then)?;
        issued.pop().ok_or_else(|| CmsError::Store { message: "credit note not issued".into() })
    }

    /// Re-rate a closed period with the terms in force now (after corrections): its frozen month-end is
    /// replaced, and each live invoice of it gets a credit note (overbilled) or a debit note (underbilled)
    /// for exactly the difference, line by line. Issued documents stay as they are. Returns the notes.
    pub fn rerate(
        &mut self,
        principal: &Principal,
        at: Instant,
        period: Period,
        reason: &str,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        if self.state.closed_periods.contains(&period) && !self.state.purged_periods.contains(&period) {
            // The frozen month-end becomes the re-rated one: drafts not issued yet bill the new figures.
            let report = self.month_end_in(self.billing_context(), period, self.state.rules)?;
            let body = serde_json::to_string(&report)
                .map_err(|error| CmsError::Store { message: format!("month-end of {period}: {error}") })?;
            self.store.put_documents(&[Document {
                kind: CLOSED_MONTH_END.into(),
                key: period.to_string(),
                body,
            }])?;
        }
        let make = |cms: &Self| cms.rerate_notes(principal, period, reason);
        self.issue_with(principal, at, "rerate", &period.to_string(), &make, &|_| Vec::new())
    }

    /// The credit and debit notes re-rating `period` gives now.
    fn rerate_notes(
        &self,
        principal: &Principal,
        period: Period,
        reason: &str,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        if !self.state.closed_periods.contains(&period) {
            return Err(refuse(
                &format!("re-rating of {period}"),
                &period.to_string(),
                "only closed periods are re-rated",
            ));
        }
        if reason.trim().is_empty() {
            return Err(refuse(&format!("re-rating of {period}"), reason, "a re-rating needs a reason"));
        }
        if self.state.purged_periods.contains(&period) {
            return Err(refuse(
                &format!("re-rating of {period}"),
                &period.to_string(),
                "its raw usage was purged (retention): it cannot be re-rated",
            ));
        }
        let report = self.month_end_in(self.billing_context(), period, self.state.rules)?;
        // Per (issuer, buyer): the live document a note corrects, the invoice if there is one, else the
        // latest interim invoice (interim ones may have billed everything).
        let mut corrected: BTreeMap<(String, String), IssuedDocument> = BTreeMap::new();
        for issued in self.state.issued.values().filter(|issued| {
            issued.period == period
                && matches!(issued.kind, DocumentKind::Invoice | DocumentKind::Interim)
                && issued.voided_by.is_none()
        }) {
            let key = (issued.issuer.clone(), issued.buyer.clone());
            let replace = corrected.get(&key).is_none_or(|kept| match (kept.kind, issued.kind) {
                (DocumentKind::Invoice, DocumentKind::Interim) => false,
                (DocumentKind::Interim, DocumentKind::Invoice) => true,
                _ => issued.issued_at >= kept.issued_at,
            });
            if replace {
                corrected.insert(key, issued.clone());
            }
        }
        let mut notes = Vec::new();
        for invoice in corrected.into_values() {
            let billed = self.billed(period, &invoice.issuer, &invoice.buyer)?;
            let Some((_, issued_body)) = billed.iter().find(|(issued, _)| issued.number == invoice.number)
            else {
                continue;
            };
            if !self.may_see(principal, issued_body)? {
                continue;
            }
            let new =
                report.invoices.iter().find(|new| new.issuer == invoice.issuer && new.buyer == invoice.buyer);
            let full = if let Some(new) = new {
                self.document_of(new)
            } else {
                let mut empty = issued_body.clone();
                empty.lines.clear();
                empty
            };
            let bodies: Vec<InvoiceDocument> = billed.into_iter().map(|(_, body)| body).collect();
            let mut note =
                balance(&full, &bodies, &self.state.taxes, self.state.rules.rounding(full.currency));
            if note.lines.is_empty() {
                continue;
            }
            note.kind = if note.subtotal.is_sign_negative() {
                DocumentKind::CreditNote
            } else {
                DocumentKind::DebitNote
            };
            note.corrects = Some(invoice.number.clone());
            note.deducts = Vec::new();
            note.reason = Some(reason.to_owned());
            notes.push(note);
        }
        Ok(notes)
    }

    /// Progressive billing at `at`: in the open period containing it, every tenant with a threshold whose
    /// running amount not yet invoiced (before tax) reaches it gets an interim invoice for that amount.
    pub fn issue_interim(
        &mut self,
        principal: &Principal,
        at: Instant,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        let period = Period::month(at.year(), at.month())?;
        let make = |cms: &Self| cms.interim_documents(principal, period);
        self.issue_with(principal, at, "issue_interim", &period.to_string(), &make, &|_| Vec::new())
    }

    /// The interim invoices due in `period` now.
    fn interim_documents(
        &self,
        principal: &Principal,
        period: Period,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        if self.state.closed_periods.contains(&period) {
            return Err(refuse(
                &format!("interim billing of {period}"),
                &period.to_string(),
                "the period is closed",
            ));
        }
        if self.state.invoice_settings.thresholds.is_empty() {
            return Ok(Vec::new());
        }
        let report = self.month_end_for(principal, period, self.state.rules)?;
        let mut interims = Vec::new();
        for invoice in report.invoices.iter().filter(|invoice| invoice.buyer_kind == NodeKind::Tenant) {
            let Some(threshold) = self
                .state
                .invoice_settings
                .thresholds
                .iter()
                .find(|(tenant, _)| tenant.eq_ignore_ascii_case(&invoice.buyer))
                .map(|(_, threshold)| *threshold)
            else {
                continue;
            };
            let full = self.document_of(invoice);
            let billed = self.billed(period, &invoice.issuer, &invoice.buyer)?;
            let bodies: Vec<InvoiceDocument> = billed.into_iter().map(|(_, body)| body).collect();
            let mut running =
                balance(&full, &bodies, &self.state.taxes, self.state.rules.rounding(full.currency));
            if running.subtotal >= threshold {
                running.kind = DocumentKind::Interim;
                interims.push(running);
            }
        }
        Ok(interims)
    }

    /// Issue what `make` gives on the state the command runs on (planned again if another writer commits
    /// first): each document gets the issuer's next number, the issue instant, a due date and the hash of
    /// its body; bodies, their `DocumentIssued` events and the events `then` builds from the issued
    /// documents commit together with the command's audit record.
    fn issue_with(
        &mut self,
        principal: &Principal,
        at: Instant,
        command: &str,
        target: &str,
        make: &dyn Fn(&Self) -> Result<Vec<InvoiceDocument>, CmsError>,
        then: &dyn Fn(&[InvoiceDocument]) -> Vec<Event>,
    ) -> Result<Vec<InvoiceDocument>, CmsError> {
        let plan = |cms: &Self| cms.number(at, make(cms)?, then);
        self.audited(principal, at, command, target, &plan)
    }

    /// Number, date and hash documents on the current state.
    fn number(
        &self,
        at: Instant,
        documents: Vec<InvoiceDocument>,
        then: &dyn Fn(&[InvoiceDocument]) -> Vec<Event>,
    ) -> Result<Planned<Vec<InvoiceDocument>>, CmsError> {
        let mut sequences = self.state.sequences.clone();
        let mut stored = Vec::with_capacity(documents.len());
        let mut events = Vec::with_capacity(documents.len());
        let mut issued = Vec::with_capacity(documents.len());
        let mut hashes = String::new();
        for mut document in documents {
            let next = sequences.get(&document.issuer).map_or(1, |sequence| sequence.last + 1);
            sequences.insert(document.issuer.clone(), Sequence { last: next, at });
            let number = document_number(&document.issuer, next);
            document.number = Some(number.clone());
            document.issued_at = Some(at);
            document.due = Some(at.date_naive() + Duration::days(i64::from(document.payment_terms_days)));
            let text = body(&document)?;
            let hash = content_hash(&text);
            hashes.push_str(&hash);
            let record = IssuedDocument {
                number: number.clone(),
                kind: document.kind,
                period: document.period,
                issuer: document.issuer.clone(),
                buyer: document.buyer.clone(),
                issued_at: at,
                hash: hash.clone(),
                corrects: document.corrects.clone(),
                voided_by: None,
            };
            stored.push(Document { kind: INVOICE_DOCUMENT.into(), key: record.key(), body: text });
            events.push(Event::DocumentIssued {
                number,
                kind: document.kind,
                period: document.period,
                issuer: document.issuer.clone(),
                buyer: document.buyer.clone(),
                hash,
                corrects: document.corrects.clone(),
            });
            issued.push(document);
        }
        events.extend(then(&issued));
        let content = (!hashes.is_empty()).then(|| content_hash(&hashes));
        Ok(Planned { events, documents: stored, content, value: issued })
    }

    /// An issued document by number, if `principal` may see it (else unknown), checked against its hash.
    pub fn issued_document(
        &self,
        principal: &Principal,
        number: &str,
    ) -> Result<(IssuedDocument, InvoiceDocument), CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let unknown =
            || CmsError::UnknownNode { kind: "document".into(), id: number.to_owned(), context: None };
        let issued = self.state.issued.get(number).ok_or_else(unknown)?;
        let document = self.load(issued)?;
        if !self.may_see(principal, &document)? {
            return Err(unknown());
        }
        Ok((issued.clone(), document))
    }

    /// The documents `principal` may see: issued ones (of `period`, or all) and the drafts of `period`
    /// (or, without one, of every closed period and of the month after the latest closed one).
    pub fn invoice_documents(
        &self,
        principal: &Principal,
        period: Option<Period>,
    ) -> Result<Vec<ListedDocument>, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let mut out = Vec::new();
        for issued in
            self.state.issued.values().filter(|issued| period.is_none_or(|period| issued.period == period))
        {
            let document = self.load(issued)?;
            if !self.may_see(principal, &document)? {
                continue;
            }
            out.push(ListedDocument {
                state: if issued.voided_by.is_some() { DocumentState::Voided } else { DocumentState::Issued },
                tenant: issued.buyer.clone(),
                hash: Some(issued.hash.clone()),
                voided_by: issued.voided_by.clone(),
                document,
            });
        }
        let periods: Vec<Period> = if let Some(period) = period {
            vec![period]
        } else {
            let mut periods: Vec<Period> = self.state.closed_periods.iter().copied().collect();
            if let Some(latest) = self.state.closed_periods.iter().next_back() {
                periods.push(latest.next_month()?);
            }
            periods
        };
        for period in periods {
            for document in self.preview_invoices(principal, period, None)? {
                out.push(ListedDocument {
                    state: DocumentState::Draft,
                    tenant: document.buyer.clone(),
                    hash: None,
                    voided_by: None,
                    document,
                });
            }
        }
        Ok(out)
    }

    /// Check every issued document's stored body against its recorded hash; returns the numbers of those
    /// that are missing or altered (empty: all intact).
    pub fn verify_documents(&self) -> Result<Vec<String>, CmsError> {
        let mut broken = Vec::new();
        for issued in self.state.issued.values() {
            if self.load(issued).is_err() {
                broken.push(issued.number.clone());
            }
        }
        Ok(broken)
    }

    /// The month-end documents of a closed or open period as `principal` sees them (for statements).
    pub fn issued_in(&self, principal: &Principal, window: Period) -> Result<Vec<InvoiceDocument>, CmsError> {
        let mut out = Vec::new();
        for issued in self.state.issued.values().filter(|issued| window.contains(issued.issued_at)) {
            let document = self.load(issued)?;
            if self.may_see(principal, &document)? {
                out.push(document);
            }
        }
        Ok(out)
    }

    /// Commission and override statements of `period`, from the documents issued in it that `principal`
    /// may see (statements of agents outside its subtree are left out).
    pub fn commission_report(
        &self,
        principal: &Principal,
        period: Period,
    ) -> Result<CommissionReport, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let documents = self.issued_in(principal, period)?;
        let mut report = commission_report(&self.billing_context(), self.state.rules, period, &documents)?;
        let scope = self.scope_of(principal)?;
        let hierarchy = &self.state.hierarchy;
        if scope != hierarchy.root() {
            let within = |id: &str| hierarchy.find(id).is_some_and(|node| hierarchy.is_within(node, scope));
            report.statements.retain(|statement| within(&statement.partner));
            report.overrides.retain(|statement| within(&statement.distributor));
        }
        Ok(report)
    }

    /// Showback of `period` (enterprise mode: departments are tenants, projects subscriptions): the cost
    /// of each department and project from the period's tenant invoices (drafts or as issued: the
    /// month-end), with shared costs allocated by the chargeback settings.
    pub fn showback(&self, principal: &Principal, period: Period) -> Result<ShowbackReport, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let report = self.tenant_month_end(principal, period)?;
        showback(&report, &self.state.hierarchy, &self.state.chargeback)
    }

    /// Chargeback of `period` as balanced journal lines (a debit per department's cost centre, a credit
    /// to the recovery account).
    pub fn chargeback_journal(
        &self,
        principal: &Principal,
        period: Period,
    ) -> Result<Vec<JournalLine>, CmsError> {
        Ok(journal(&self.showback(principal, period)?, &self.state.chargeback))
    }

    /// The rules documents are rounded with.
    pub fn billing_rules(&self) -> BillingRules {
        self.state.rules
    }

    /// A month-end report cut to tenant invoices (for showback).
    pub fn tenant_month_end(
        &self,
        principal: &Principal,
        period: Period,
    ) -> Result<MonthEndReport, CmsError> {
        let mut report = self.month_end_for(principal, period, self.state.rules)?;
        report.invoices.retain(|invoice| invoice.buyer_kind == NodeKind::Tenant);
        Ok(report)
    }
}
