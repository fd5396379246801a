//! The engine facade: commercial commands become events, events are persisted through a [`Store`] and
//! applied to the in-memory state; usage goes to the store; month-end rates a period from the store.
//!
//! This is the seam later layers hang on: access checks and audit (governance) wrap [`Cms::execute`], the
//! `SQLite` and `PostgreSQL` stores implement [`Store`], the Usage API client implements [`UsageSource`].
//! State is rebuilt by replaying events when a store is opened, so a second run continues where the first
//! stopped.

pub mod access;
pub mod commercial;
pub mod events;
pub mod ingest;
pub mod invoicing;
pub mod monitoring;
pub mod queries;

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use commercial::{ChainLevel, ChangeSetPreview, DRAFT_INVOICE, DraftChange, Impact, Reprocessed};
pub use events::{Event, PLATFORM_ID, State};
pub use ingest::{IngestPolicy, IngestSummary, RefusedRecord};
pub use invoicing::{DocumentState, INVOICE_DOCUMENT, IssuedDocument, ListedDocument, document_number};
pub use queries::NodeView;

use crate::billing::{
    AdjustmentQuantity, BillingContext, BillingInput, BillingRules, MonthEndReport, Parts, PassThroughBefore,
    PassThroughCharge, UsageSlice, bill_with,
};
use crate::error::{CmsError, Location};
use crate::governance::audit::{AuditHead, AuditRecord, GENESIS, Outcome, Verification, next_digest, verify};
use crate::model::adjustments::DiscountScope;
use crate::model::hierarchy::NodeKind;
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::time::{Instant, Period};
use crate::model::usage::UsageRecord;
use crate::rating::IngestStats;
use crate::source::{Checkpoint, Granularity, PageOrigin, UsageSource};
use crate::store::{Commit, Document, EventRecord, Store};

/// The principal [`Cms::ingest`] and [`Cms::pull`] act as: give it the Service role once roles are in use.
pub const INGEST_PRINCIPAL: &str = "ingest";

/// The kind of the documents holding closed periods' month-ends.
pub const CLOSED_MONTH_END: &str = "closed_month_end";

/// Who is acting: an id (recorded on every event) and the node whose subtree they act in. Queries return
/// only what lies in that subtree. Access checks (roles, policies) arrive with governance and hang on
/// [`Cms::execute_all`]; until then every principal may run every command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The principal's id (a user, a service).
    pub id: String,
    /// The node whose subtree the principal acts in (the platform for the operator).
    pub node: String,
}

impl Principal {
    /// A principal acting for the whole platform.
    pub fn platform(id: &str) -> Self {
        Self { id: id.to_owned(), node: PLATFORM_ID.to_owned() }
    }

    /// A principal acting within `node`'s subtree.
    pub fn at(id: &str, node: &str) -> Self {
        Self { id: id.to_owned(), node: node.to_owned() }
    }
}

/// How the month-end sums stored usage: folded subscription, meter, part, resource (where a resource
/// discount may match it).
type SliceKey = (String, MeterId, usize, Option<String>);

/// The engine: state in memory, persisted through `S`.
pub struct Cms<S: Store> {
    store: S,
    state: State,
    /// The last event applied to `state`.
    last_event: u64,
    /// The state digest after it ([`crate::governance::audit`]).
    digest: String,
    /// The audit chain's head as last seen.
    head: AuditHead,
}

/// What a command will write, once checked.
struct Planned<T> {
    events: Vec<Event>,
    documents: Vec<Document>,
    content: Option<String>,
    value: T,
}

/// How many times a command is tried again after another writer committed first.
const RETRIES: usize = 32;

/// What the ingestion rules need from the store and the channel.
struct Lookup<'a, S: Store> {
    store: &'a S,
    state: &'a State,
}

impl<S: Store> ingest::IngestLookup for Lookup<'_, S> {
    fn stored(&self, record: &UsageRecord) -> Result<Option<UsageRecord>, CmsError> {
        self.store.usage(&record.key())
    }

    fn stored_granularity(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<Granularity>, CmsError> {
        Ok(self
            .store
            .sample_interval(subscription, period)?
            .and_then(|(start, end)| ingest::granularity_of(start, end)))
    }

    fn known_subscription(&self, subscription: &str) -> bool {
        self.state
            .hierarchy
            .find_ignoring_case(subscription)
            .is_some_and(|index| self.state.hierarchy.node(index).kind == NodeKind::Subscription)
    }
}

impl<S: Store> Cms<S> {
    /// Open an engine on a store, replaying its events.
    pub fn open(store: S) -> Result<Self, CmsError> {
        let head = store.audit_head()?;
        let mut cms =
            Self { store, state: State::default(), last_event: 0, digest: GENESIS.to_owned(), head };
        cms.refresh()?;
        Ok(cms)
    }

    /// Apply what other writers appended since this engine last looked (another engine on the same
    /// database), and read the audit chain's head again.
    pub fn refresh(&mut self) -> Result<(), CmsError> {
        // The head first: a writer committing between the two reads leaves events newer than the head,
        // and a record sealed on them fails to extend the stored head (a conflict, planned again) instead of
        // chaining onto a stale digest.
        let head = self.store.audit_head()?;
        for record in self.store.events_after(self.last_event)? {
            if record.seq != self.last_event + 1 {
                return Err(CmsError::Store {
                    message: format!(
                        "event {} follows event {}: the log has a gap",
                        record.seq, self.last_event
                    ),
                });
            }
            self.state.apply(record.at, &record.event)?;
            self.digest = next_digest(&self.digest, &record)?;
            self.last_event = record.seq;
        }
        self.head = head;
        Ok(())
    }

    /// Run one command: refresh, plan it (checks included), then commit its events, documents and audit
    /// record together; a refusal is audited too. When another writer commits first the command is planned
    /// again on the fresh state.
    fn audited<T>(
        &mut self,
        principal: &Principal,
        at: Instant,
        command: &str,
        target: &str,
        plan: &dyn Fn(&Self) -> Result<Planned<T>, CmsError>,
    ) -> Result<T, CmsError> {
        for _ in 0..RETRIES {
            self.refresh()?;
            let planned = plan(self).and_then(|planned| {
                let mut next = self.state.clone();
                for event in &planned.events {
                    admit(principal, &next, at, event)?;
                    next.apply(at, event)?;
                }
                Ok((planned, next))
            });
            let (planned, next) = match planned {
                Ok(planned) => planned,
                Err(error) => match self.record_refusal(principal, at, command, target, &error) {
                    Err(CmsError::Conflict { .. }) => continue,
                    Err(store_error) => return Err(store_error),
                    Ok(()) => return Err(error),
                },
            };
            let mut after = self.digest.clone();
            for (seq, event) in (self.last_event + 1..).zip(&planned.events) {
                let record = EventRecord { seq, actor: principal.id.clone(), at, event: event.clone() };
                after = next_digest(&after, &record)?;
            }
            let count = planned.events.len() as u64;
            let audit = AuditRecord {
                seq: self.head.seq + 1,
                at,
                actor: principal.id.clone(),
                scope: principal.node.clone(),
                command: command.to_owned(),
                target: target.to_owned(),
                outcome: Outcome::Done,
                events: (count > 0).then(|| (self.last_event + 1, self.last_event + count)),
                content: planned.content.clone(),
                before: self.digest.clone(),
                after: after.clone(),
                prev: self.head.hash.clone(),
                hash: String::new(),
            }
            .seal()?;
            let commit = Commit {
                actor: &principal.id,
                at,
                events: &planned.events,
                documents: &planned.documents,
                audit: Some(&audit),
            };
            match self.store.commit(&commit) {
                Ok(_) => {
                    self.state = next;
                    self.last_event += count;
                    self.digest = after;
                    self.head = AuditHead { seq: audit.seq, hash: audit.hash };
                    return Ok(planned.value);
                }
                Err(CmsError::Conflict { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Err(CmsError::Conflict {
            what: format!("{command} on {target}: other writers kept committing first"),
        })
    }

    /// Append the audit record of a refused command.
    fn record_refusal(
        &mut self,
        principal: &Principal,
        at: Instant,
        command: &str,
        target: &str,
        error: &CmsError,
    ) -> Result<(), CmsError> {
        let audit = AuditRecord {
            seq: self.head.seq + 1,
            at,
            actor: principal.id.clone(),
            scope: principal.node.clone(),
            command: command.to_owned(),
            target: target.to_owned(),
            outcome: Outcome::Refused { code: error.code().to_owned(), message: error.to_string() },
            events: None,
            content: None,
            before: self.digest.clone(),
            after: self.digest.clone(),
            prev: self.head.hash.clone(),
            hash: String::new(),
        }
        .seal()?;
        self.store.commit(&Commit {
            actor: &principal.id,
            at,
            events: &[],
            documents: &[],
            audit: Some(&audit),
        })?;
        self.head = AuditHead { seq: audit.seq, hash: audit.hash };
        Ok(())
    }

    /// Retention at `at`: purge the raw usage of every invoiced period that ended at least the policy's
    /// `usage_retention_months` before `at` and lies beyond the late-usage look-back window. Each purge is
    /// an audited command (`UsagePurged`) followed by the deletion; a purge interrupted between the two is
    /// completed by the next call. Month-ends and documents stay. Returns the periods purged now and how
    /// many records each lost.
    pub fn purge_usage(
        &mut self,
        principal: &Principal,
        at: Instant,
    ) -> Result<Vec<(Period, u64)>, CmsError> {
        self.refresh()?;
        let Some(months) = self.state.policies.usage_retention_months else { return Ok(Vec::new()) };
        let Some(latest) = self.state.closed_periods.iter().next_back().copied() else {
            return Ok(Vec::new());
        };
        let window = i64::from(self.state.ingest_policy.look_back_periods);
        let due: Vec<Period> = self
            .state
            .closed_periods
            .iter()
            .copied()
            .filter(|period| ingest::months_between(period, &latest) >= window)
            .filter(|period| {
                period.end.checked_add_months(chrono::Months::new(months)).is_some_and(|kept| kept <= at)
            })
            .collect();
        let mut purged = Vec::new();
        for period in due {
            if !self.state.purged_periods.contains(&period) {
                self.execute(principal, at, &Event::UsagePurged { period })?;
            }
            let deleted = self.store.purge_usage(&period, None)?;
            if deleted > 0 {
                purged.push((period, deleted));
            }
        }
        Ok(purged)
    }

    /// The audit trail, checked against the event log (and an exported head, if given).
    pub fn verify_audit(&self, expected: Option<&AuditHead>) -> Result<Verification, CmsError> {
        Ok(verify(&self.store.audit_records()?, &self.store.events()?, expected))
    }

    /// Every audit record and the head, for export.
    pub fn export_audit(&self) -> Result<(Vec<AuditRecord>, AuditHead), CmsError> {
        let records = self.store.audit_records()?;
        let head = records.last().map_or_else(AuditHead::genesis, |record| AuditHead {
            seq: record.seq,
            hash: record.hash.clone(),
        });
        Ok((records, head))
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Close the engine, handing its store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Check, persist, then apply one command, recorded as done by `principal` at `at`. Refused commands
    /// change nothing. Returns the event's sequence number.
    pub fn execute(&mut self, principal: &Principal, at: Instant, event: &Event) -> Result<u64, CmsError> {
        self.execute_all(principal, at, std::slice::from_ref(event))
    }

    /// Several events as one command: each is checked against the state the ones before it leave, then all
    /// are persisted in one store transaction and applied. If any is refused, nothing changes.
    pub fn execute_all(
        &mut self,
        principal: &Principal,
        at: Instant,
        events: &[Event],
    ) -> Result<u64, CmsError> {
        let (command, target) = describe(events);
        let plan = |_: &Self| {
            Ok(Planned { events: events.to_vec(), documents: Vec::new(), content: None, value: () })
        };
        self.audited(principal, at, &command, &target, &plan)?;
        Ok(self.last_event)
    }

    /// Ingest one batch of usage records (one page) as the service principal [`INGEST_PRINCIPAL`]: see
    /// [`Self::ingest_as`].
    /// The batch is audited at the latest usage end it holds (the core has no clock; [`Self::ingest_as`]
    /// takes the instant).
    pub fn ingest(
        &mut self,
        records: &[UsageRecord],
        origin: &PageOrigin,
    ) -> Result<IngestSummary, CmsError> {
        let at = records.iter().map(|record| record.end).max().unwrap_or_default();
        self.ingest_as(&Principal::platform(INGEST_PRINCIPAL), at, records, origin)
    }

    /// Ingest one batch of usage records (one page): apply the ingestion rules ([`ingest`]), then store what
    /// they keep, with the checkpoint the batch's origin completes and the batch's audit record (its content
    /// hash: SHA-256 of the records as JSON), in one store transaction.
    pub fn ingest_as(
        &mut self,
        principal: &Principal,
        at: Instant,
        records: &[UsageRecord],
        origin: &PageOrigin,
    ) -> Result<IngestSummary, CmsError> {
        let content =
            serde_json::to_vec(records)
                .map(|bytes| crate::governance::audit::sha256_hex(&bytes))
                .map_err(|error| CmsError::Store { message: format!("batch {}: {error}", origin.name) })?;
        let target = format!("{} ({} records)", origin.name, records.len());
        for _ in 0..RETRIES {
            self.refresh()?;
            let classified = self.authorize_ingest(principal).and_then(|()| {
                let lookup = Lookup { store: &self.store, state: &self.state };
                ingest::classify(
                    records,
                    &origin.name,
                    &self.state.ingest_policy,
                    &self.state.closed_periods,
                    &lookup,
                )
            });
            let classified = match classified {
                Ok(classified) => classified,
                Err(error) => match self.record_refusal(principal, at, "ingest", &target, &error) {
                    Err(CmsError::Conflict { .. }) => continue,
                    Err(store_error) => return Err(store_error),
                    Ok(()) => return Err(error),
                },
            };
            let audit = AuditRecord {
                seq: self.head.seq + 1,
                at,
                actor: principal.id.clone(),
                scope: principal.node.clone(),
                command: "ingest".into(),
                target: target.clone(),
                outcome: Outcome::Done,
                events: None,
                content: Some(content.clone()),
                before: self.digest.clone(),
                after: self.digest.clone(),
                prev: self.head.hash.clone(),
                hash: String::new(),
            }
            .seal()?;
            let checkpoint = Checkpoint::after(origin);
            let write =
                match self.store.put_usage_audited(&classified.to_store, checkpoint.as_ref(), Some(&audit)) {
                    Ok(write) => write,
                    Err(CmsError::Conflict { .. }) => continue,
                    Err(error) => return Err(error),
                };
            self.head = AuditHead { seq: audit.seq, hash: audit.hash };
            let mut summary = classified.summary;
            summary.stored = write.inserted;
            summary.duplicates += write.duplicates;
            summary.corrections = write.corrections;
            summary.checkpoints.extend(checkpoint);
            return Ok(summary);
        }
        Err(CmsError::Conflict { what: format!("ingest of {target}: other writers kept committing first") })
    }

    /// Whether `principal` may ingest usage: `IngestUsage` at the platform (the Service role, platform admins).
    fn authorize_ingest(&self, principal: &Principal) -> Result<(), CmsError> {
        let action = crate::governance::rbac::Action::IngestUsage;
        self.state.roles.authorize(
            &self.state.hierarchy,
            &principal.id,
            &principal.node,
            action,
            &[PLATFORM_ID],
        )
    }

    /// Pull every page of a source. Each page is stored (or refused) whole, with its checkpoint.
    pub fn pull(&mut self, source: &mut dyn UsageSource) -> Result<IngestSummary, CmsError> {
        let mut summary = IngestSummary::default();
        while let Some(sourced) = source.next_page()? {
            let mut page = self.ingest(&sourced.page.records, &sourced.origin)?;
            page.pages = 1;
            summary.add(page);
        }
        Ok(summary)
    }

    /// Checkpoints of every region and subscriber, for resuming pulls.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        self.store.checkpoints()
    }

    /// Close a period: its month-end (with the engine's billing rules) is stored as issued, later usage of
    /// it becomes adjustments on the next open period, and nothing dated inside it is accepted any more.
    /// [`Self::month_end`] of a closed period returns what was stored.
    pub fn close_period(
        &mut self,
        principal: &Principal,
        at: Instant,
        period: Period,
    ) -> Result<(), CmsError> {
        self.refresh()?;
        let mut check = self.state.clone();
        check.apply(at, &Event::PeriodClosed { period })?;
        let report = self.compute_month_end(self.billing_context(), period, self.state.rules)?;
        let body = serde_json::to_string(&report)
            .map_err(|error| CmsError::Store { message: format!("month-end of {period}: {error}") })?;
        // Stored first: a snapshot of a period that is not closed is never read, and is replaced when the
        // period is closed.
        self.store.put_documents(&[Document {
            kind: CLOSED_MONTH_END.into(),
            key: period.to_string(),
            body,
        }])?;
        self.execute(principal, at, &Event::PeriodClosed { period }).map(drop)
    }

    /// Rate a period from stored usage and build its invoices and statements: usage of the period (as it
    /// stood when the period was closed, for a closed period), adjustments of earlier periods billed in this
    /// one, and pass-through charges. The period is cut where prices, branches, discounts or exchange rates
    /// change ([`Parts`]); each record is priced in the part its usage starts in.
    ///
    /// A closed period's month-end is the one stored when it was closed (with the rules of then; `rules`
    /// applies to open periods).
    pub fn month_end(&self, period: Period, rules: BillingRules) -> Result<MonthEndReport, CmsError> {
        if self.state.closed_periods.contains(&period) {
            let key = period.to_string();
            if let Some(document) =
                self.store.documents(CLOSED_MONTH_END, &key)?.into_iter().find(|document| document.key == key)
            {
                return serde_json::from_str(&document.body).map_err(|error| CmsError::BadJson {
                    at: Location::whole(format!("stored month-end of {period}")),
                    message: error.to_string(),
                });
            }
        }
        self.compute_month_end(self.billing_context(), period, rules)
    }

    /// [`Self::month_end`] computed under another context: other terms (a preview), or prices as of an
    /// instant. Closed periods are computed too (not read from what was stored).
    pub fn month_end_in(
        &self,
        context: BillingContext<'_>,
        period: Period,
        rules: BillingRules,
    ) -> Result<MonthEndReport, CmsError> {
        self.compute_month_end(context, period, rules)
    }

    fn compute_month_end(
        &self,
        context: BillingContext<'_>,
        period: Period,
        rules: BillingRules,
    ) -> Result<MonthEndReport, CmsError> {
        let mut reports = self.compute_month_ends_until(context, period, rules, &[period.end])?;
        reports.pop().ok_or_else(|| CmsError::Store { message: format!("month-end of {period}: no report") })
    }

    /// The month-end of `period` as it stands with the usage that started before each cutoff (ascending
    /// instants): one report per cutoff, from one pass over the stored usage. Adjustments of earlier periods
    /// billed in this one count from the first cutoff on. With the period's end as the only cutoff this is
    /// the month-end; with the end of every day, the month-to-date cost day by day (a day's cost is the
    /// difference of two consecutive reports, so tiers apply to the month's running total).
    pub(crate) fn compute_month_ends_until(
        &self,
        context: BillingContext<'_>,
        period: Period,
        rules: BillingRules,
        cutoffs: &[Instant],
    ) -> Result<Vec<MonthEndReport>, CmsError> {
        let parts = Parts::of(&context, period);
        let resource_discounts: Vec<(String, String)> = context
            .terms
            .discounts
            .values()
            .filter_map(|discount| match &discount.scope {
                DiscountScope::Resource { subscription, resource_uri } => {
                    Some((subscription.to_ascii_lowercase(), resource_uri.to_ascii_lowercase()))
                }
                _ => None,
            })
            .collect();
        let buckets = cutoffs.len();
        // (folded subscription, meter, part, resource where a discount matches it) -> (spelling, quantity
        // per cutoff bucket)
        let mut usage: BTreeMap<SliceKey, (String, Vec<Decimal>)> = BTreeMap::new();
        let mut pass_through: BTreeMap<(String, MeterId, Currency), Vec<PassThroughCharge>> = BTreeMap::new();
        let mut stats = vec![IngestStats::default(); buckets];
        self.store.for_each_usage(&period, &mut |record| {
            if !record.existed_at_close() {
                // Arrived after the period was invoiced: billed as an adjustment of a later period.
                return Ok(());
            }
            let bucket = cutoffs.partition_point(|cutoff| *cutoff <= record.start);
            if bucket == buckets {
                return Ok(());
            }
            let quantity = record.quantity_as_billed_in(None);
            if let (Some(cost), Some(amount)) = (&record.cost, record.cost_as_billed_in(None)) {
                let charges = pass_through
                    .entry((record.subscription.to_ascii_lowercase(), record.meter, cost.currency))
                    .or_insert_with(|| vec![pass_through_charge(record, cost.currency, None); buckets]);
                charges[bucket].quantity += quantity;
                charges[bucket].cost += amount;
                return Ok(());
            }
            stats[bucket].rows += 1;
            stats[bucket].accepted += 1;
            let subscription = record.subscription.to_ascii_lowercase();
            let resource = record.resource_uri.to_ascii_lowercase();
            let discounted =
                resource_discounts.iter().any(|(id, uri)| *id == subscription && *uri == resource);
            let key =
                (subscription, record.meter, parts.part_of(record.start), discounted.then_some(resource));
            let entry = usage
                .entry(key)
                .or_insert_with(|| (record.subscription.clone(), vec![Decimal::ZERO; buckets]));
            entry.1[bucket] += quantity;
            Ok(())
        })?;
        let (adjustments, pass_through_adjustments) = self.adjustments_billed_in(&period)?;
        let mut reports = Vec::with_capacity(buckets);
        // Running totals: each cutoff adds its own bucket to what the cutoffs before it left.
        let mut running_stats = IngestStats::default();
        let mut running_usage = vec![Decimal::ZERO; usage.len()];
        let mut running_charges: Vec<(PassThroughCharge, bool)> =
            pass_through.values().map(|charges| (emptied(&charges[0]), false)).collect();
        for bucket in 0..buckets {
            let last = bucket + 1 == buckets;
            running_stats.rows += stats[bucket].rows;
            running_stats.accepted += stats[bucket].accepted;
            for (total, (_, quantities)) in running_usage.iter_mut().zip(usage.values()) {
                *total += quantities[bucket];
            }
            let slices: Vec<UsageSlice> = usage
                .iter()
                .zip(&running_usage)
                .map(|(((_, meter, part, resource), (subscription, _)), quantity)| UsageSlice {
                    subscription: subscription.clone(),
                    meter: *meter,
                    part: *part,
                    resource: resource.clone(),
                    quantity: *quantity,
                })
                .filter(|slice| last || !slice.quantity.is_zero())
                .collect();
            for ((total, seen), charges) in running_charges.iter_mut().zip(pass_through.values()) {
                let charge = &charges[bucket];
                total.quantity += charge.quantity;
                total.cost += charge.cost;
                *seen |= !charge.quantity.is_zero() || !charge.cost.is_zero();
            }
            let charges: Vec<PassThroughCharge> = running_charges
                .iter()
                .filter(|(_, seen)| *seen || last)
                .map(|(total, _)| total.clone())
                .chain(pass_through_adjustments.iter().cloned())
                .collect();
            reports.push(bill_with(
                context,
                rules,
                BillingInput {
                    parts: &parts,
                    usage: &slices,
                    stats: &running_stats,
                    adjustments: &adjustments,
                    pass_through: &charges,
                },
            )?);
        }
        Ok(reports)
    }

    /// The channel and terms, as billing reads them.
    pub fn billing_context(&self) -> BillingContext<'_> {
        BillingContext::new(&self.state.hierarchy, &self.state.channel, &self.state.terms)
    }

    /// For each (subscription, meter, earlier period) with changes billed in `period`: its quantities (and,
    /// for pass-through charges, costs) before and after them.
    fn adjustments_billed_in(
        &self,
        period: &Period,
    ) -> Result<(Vec<AdjustmentQuantity>, Vec<PassThroughCharge>), CmsError> {
        let (mut usage, mut pass_through) = (Vec::new(), Vec::new());
        for earlier in self.state.closed_periods.iter().filter(|closed| closed.start < period.start) {
            let mut groups: BTreeMap<(String, MeterId), (AdjustmentQuantity, bool)> = BTreeMap::new();
            let mut costs: BTreeMap<(String, MeterId, Currency), (PassThroughCharge, bool)> = BTreeMap::new();
            self.store.for_each_usage(earlier, &mut |record| {
                // As invoiced up to the period before `period`, and with `period`'s changes.
                let before = record.quantity
                    - record
                        .adjustments
                        .iter()
                        .filter(|adjustment| adjustment.billed_in.start >= period.start)
                        .map(|adjustment| adjustment.delta)
                        .sum::<Decimal>();
                let after = record.quantity_as_billed_in(Some(period));
                let touched = record.adjustments.iter().any(|adjustment| adjustment.billed_in == *period);
                let subscription = record.subscription.to_ascii_lowercase();
                if let Some(cost) = &record.cost {
                    let cost_after = record.cost_as_billed_in(Some(period)).unwrap_or_default();
                    let cost_before = cost_after
                        - record
                            .adjustments
                            .iter()
                            .filter(|adjustment| adjustment.billed_in == *period)
                            .filter_map(|adjustment| adjustment.cost_delta)
                            .sum::<Decimal>();
                    let base =
                        PassThroughBefore { period: *earlier, quantity: Decimal::ZERO, cost: Decimal::ZERO };
                    let entry = costs
                        .entry((subscription, record.meter, cost.currency))
                        .or_insert_with(|| (pass_through_charge(record, cost.currency, Some(base)), false));
                    entry.0.quantity += after;
                    entry.0.cost += cost_after;
                    if let Some(base) = entry.0.adjusts.as_mut() {
                        base.quantity += before;
                        base.cost += cost_before;
                    }
                    entry.1 |= touched;
                    return Ok(());
                }
                let entry = groups.entry((subscription, record.meter)).or_insert_with(|| {
                    let empty = AdjustmentQuantity {
                        subscription: record.subscription.clone(),
                        meter: record.meter,
                        period: *earlier,
                        before: Decimal::ZERO,
                        after: Decimal::ZERO,
                    };
                    (empty, false)
                });
                entry.0.before += before;
                entry.0.after += after;
                entry.1 |= touched;
                Ok(())
            })?;
            usage.extend(groups.into_values().filter(|(_, touched)| *touched).map(|(change, _)| change));
            pass_through
                .extend(costs.into_values().filter(|(_, touched)| *touched).map(|(change, _)| change));
        }
        Ok((usage, pass_through))
    }
}

/// Rules that depend on who acts, checked before an event is applied (the state's own rules are checked by
/// [`State::apply`]): the principal's roles ([`access`], [`crate::governance::rbac`]), the policies
/// ([`crate::governance::policy`]), and a subscription takes a new offer only if it is public, or private
/// and the operator (a platform principal) sets it up.
fn admit(principal: &Principal, state: &State, at: Instant, event: &Event) -> Result<(), CmsError> {
    let hierarchy = &state.hierarchy;
    for (action, targets) in access::requirements(state, event) {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        state.roles.authorize(hierarchy, &principal.id, &principal.node, action, &targets)?;
    }
    if let Event::RoleAssigned { assignment } | Event::RoleRevoked { assignment } = event {
        state.roles.check_assignment(hierarchy, &principal.id, &principal.node, assignment)?;
    }
    crate::governance::policy::evaluate(state, principal, at, event)?;
    if let Event::AlertAcknowledged { by, .. } | Event::AlertResolved { by, .. } = event
        && by != &principal.id
    {
        return Err(CmsError::Forbidden {
            principal: principal.id.clone(),
            action: "manage_alerts".into(),
            scope: format!("acting as {by}"),
        });
    }
    if let Event::SubscriptionSet { id, info } = event {
        let current = state.channel.subscription(id).and_then(|info| info.offer.as_deref());
        if let Some(offer) = info.offer.as_deref().filter(|offer| Some(*offer) != current) {
            state.catalogue.check_subscribable(offer, principal.node == PLATFORM_ID)?;
        }
    }
    Ok(())
}

/// An empty pass-through charge for a record's (subscription, meter, currency).
fn pass_through_charge(
    record: &UsageRecord,
    currency: Currency,
    adjusts: Option<PassThroughBefore>,
) -> PassThroughCharge {
    PassThroughCharge {
        subscription: record.subscription.clone(),
        meter: record.meter,
        unit: record.additional_info.get("unit").cloned().unwrap_or_default(),
        quantity: Decimal::ZERO,
        cost: Decimal::ZERO,
        currency,
        adjusts,
    }
}

/// A pass-through charge of the same subscription, meter and currency with nothing charged yet.
fn emptied(charge: &PassThroughCharge) -> PassThroughCharge {
    PassThroughCharge { quantity: Decimal::ZERO, cost: Decimal::ZERO, ..charge.clone() }
}

/// The audit name and target of a command of events: the first event's type and its subject.
fn describe(events: &[Event]) -> (String, String) {
    let Some(first) = events.first() else { return ("nothing".into(), String::new()) };
    let value = serde_json::to_value(first).unwrap_or_default();
    let command = value.get("type").and_then(|kind| kind.as_str()).unwrap_or("event").to_owned();
    let command = if events.len() > 1 { format!("{command} (+{} more)", events.len() - 1) } else { command };
    let target = ["id", "node", "list", "offer", "number", "period", "source"]
        .iter()
        .find_map(|key| {
            value.get(*key).map(|found| match serde_json::from_value::<Period>(found.clone()) {
                Ok(period) => period.to_string(),
                Err(_) => found.as_str().map_or_else(|| found.to_string(), str::to_owned),
            })
        })
        .or_else(|| {
            ["list", "discount", "credit", "plan", "change_set", "rule", "service", "offer", "budget", "run"]
                .iter()
                .find_map(|key| {
                    value
                        .get(*key)
                        .and_then(|object| object.get("id").or_else(|| object.get("key")))
                        .and_then(|id| id.as_str())
                        .map(str::to_owned)
                })
        })
        .unwrap_or_default();
    (command, target)
}
