//! Pricing usage at every level of the billing chain.
//!
//! A period is cut into [`Parts`] at every instant where something that prices usage changes: a price
//! version takes effect, a tenant or subscription moves, a discount starts or ends, an exchange rate
//! changes. Within a part nothing changes, so usage of a part is priced with what is in effect at its
//! start: the branch the subscription is on, the buyers its billing chain gives (the tenant, and each
//! reseller above it in resale), each buyer's price by precedence (see [`PriceBook::resolve`]).
//!
//! Tiers count the monthly quantity, across parts, in time order: the amount of a part is
//! `P(before + q) - P(before)` where `before` is what the month counted before the part, and `P` the
//! price in effect for the part. When the price does not change, the parts add up to `P(month)` exactly
//! (a telescoping sum), so a month without changes is priced exactly as one quantity. Where tiers count
//! ([`TierScope`]): per subscription (default), or pooled per tenant or per list; a pooled part's amount is
//! shared among its subscriptions in proportion to their quantities, the last (by id) taking what the
//! division leaves, so the shares add up to the pooled amount exactly.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::billing::month_end::NotBilledReason;
use crate::error::CmsError;
use crate::model::adjustments::best_discount;
use crate::model::channel::ChannelAttributes;
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::meter::{MeterId, MeterInfo};
use crate::model::money::Currency;
use crate::model::price_book::{Resolved, TierScope};
use crate::model::terms::CommercialTerms;
use crate::model::tiers::checked_mul;
use crate::model::time::{Instant, Period};

/// The channel and its terms, as billing reads them.
#[derive(Debug, Clone, Copy)]
pub struct BillingContext<'a> {
    /// The channel tree, with its history of moves.
    pub hierarchy: &'a Hierarchy,
    /// Organisation and subscription attributes, billing relationships.
    pub channel: &'a ChannelAttributes,
    /// Prices, commissions, exchange rates, discounts, credits.
    pub terms: &'a CommercialTerms,
    /// Price every part with the prices in effect at this instant instead of at the part's start (a
    /// bulk change's preview prices a past period's usage at the change's effective date). Branches,
    /// discounts and exchange rates still follow the part.
    pub prices_at: Option<Instant>,
}

impl<'a> BillingContext<'a> {
    /// The context of a channel and its terms, pricing each part as of its start.
    pub fn new(hierarchy: &'a Hierarchy, channel: &'a ChannelAttributes, terms: &'a CommercialTerms) -> Self {
        Self { hierarchy, channel, terms, prices_at: None }
    }
}

/// A period cut where pricing changes: part `i` runs from `starts[i]` to the next start (or the period's
/// end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    period: Period,
    starts: Vec<Instant>,
}

impl Parts {
    /// The period in one part.
    pub fn whole(period: Period) -> Self {
        Self { period, starts: vec![period.start] }
    }

    /// The period cut at every instant inside it where a price version, a branch of the channel, a
    /// discount or an exchange rate changes.
    pub fn of(context: &BillingContext<'_>, period: Period) -> Self {
        let (from, to) = (period.start, period.end);
        let inside = |at: &Instant| from < *at && *at < to;
        let mut cuts = context.terms.book.change_instants(from, to);
        cuts.extend(context.hierarchy.moves().iter().map(|moved| moved.effective).filter(inside));
        cuts.extend(context.terms.fx.change_instants(from, to));
        for discount in context.terms.discounts.values() {
            cuts.extend([Some(discount.from), discount.until].into_iter().flatten().filter(inside));
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut starts = Vec::with_capacity(cuts.len() + 1);
        starts.push(from);
        starts.extend(cuts);
        Self { period, starts }
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// How many parts.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the period is one part.
    pub fn is_whole(&self) -> bool {
        self.starts.len() == 1
    }

    /// Always false: a period has at least one part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The part usage starting at `at` belongs to (`at` inside the period).
    pub fn part_of(&self, at: Instant) -> usize {
        self.starts.partition_point(|&start| start <= at).saturating_sub(1)
    }

    /// Where part `part` starts.
    pub fn start(&self, part: usize) -> Instant {
        self.starts.get(part).copied().unwrap_or(self.period.start)
    }
}

/// The nodes whose lists may price what `from` buys from `issuer` at `at`, most specific first: `from` and
/// its ancestors up to, not including, the issuer (the platform is never in a path: its list is the
/// default scope). So a list assigned at a reseller prices what the reseller buys; what it sells is priced
/// by lists below it (its partners, tenants, subscriptions), else by the region and platform defaults.
/// In an all-agency channel the issuer is the platform and the path is the whole branch.
pub fn price_path(hierarchy: &Hierarchy, from: NodeIndex, issuer: NodeIndex, at: Instant) -> Vec<&str> {
    hierarchy
        .ancestry_at(from, at)
        .take_while(|&node| node != issuer)
        .filter(|&node| hierarchy.node(node).kind != NodeKind::Platform)
        .map(|node| hierarchy.node(node).id.as_str())
        .collect()
}

/// Usage to price: a subscription's quantity of a meter in one part of the period. `resource` is set only
/// for usage a resource-scoped discount may match (the rest of the subscription's usage is summed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageSlice {
    /// Subscription id, as the usage spells it.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Part of the period.
    pub part: usize,
    /// Resource uri, where it matters for a discount.
    pub resource: Option<String>,
    /// Quantity, exact.
    pub quantity: Decimal,
}

/// Usage priced for one buyer: a subscription's meter in one part, at one level of the billing chain.
#[derive(Debug, Clone)]
pub struct PricedPart {
    /// Who buys (a tenant, or a reseller buying from the level above).
    pub buyer: NodeIndex,
    /// Who invoices the buyer.
    pub issuer: NodeIndex,
    /// The subscription.
    pub subscription: NodeIndex,
    /// Its tenant in this part.
    pub tenant: NodeIndex,
    /// Its partner and distributor in this part (who earn commission and override on it).
    pub partner: Option<NodeIndex>,
    /// See `partner`.
    pub distributor: Option<NodeIndex>,
    /// Meter.
    pub meter: MeterId,
    /// Part of the period.
    pub part: usize,
    /// Quantity.
    pub quantity: Decimal,
    /// The list that priced it, its version's index and effective instant, its currency and unit.
    pub list: String,
    /// See `list`.
    pub version: usize,
    /// See `list`.
    pub effective: Instant,
    /// See `list`.
    pub currency: Currency,
    /// See `list`.
    pub unit: String,
    /// The exact amount in the list's currency.
    pub amount: Decimal,
    /// For tenants' usage: the discounts taken off it.
    pub discounts: Vec<DiscountTaken>,
}

/// A discount taken off a priced part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountTaken {
    /// The discount's id.
    pub id: String,
    /// Its percent (0.1 for 10 %).
    pub percent: Decimal,
    /// The quantity it covered.
    pub quantity: Decimal,
    /// The amount taken off, positive, exact, in the list's currency.
    pub amount: Decimal,
}

/// Usage that could not be priced for a buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpriced {
    /// Subscription, as the usage spells it.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Quantity.
    pub quantity: Decimal,
    /// Why.
    pub reason: NotBilledReason,
    /// The reseller that has no buying price, when the tenant's price exists (resale chains).
    pub buyer: Option<String>,
}

/// Everything rating produced.
#[derive(Debug, Clone, Default)]
pub struct Rated {
    /// Priced usage, by buyer.
    pub parts: Vec<PricedPart>,
    /// Usage that was not priced.
    pub unpriced: Vec<Unpriced>,
}

/// One buyer's price of a meter in one part.
struct Quote<'a> {
    buyer: NodeIndex,
    issuer: NodeIndex,
    price: Resolved<'a>,
}

/// Where a subscription stands in one part.
#[derive(Clone)]
struct Placement {
    subscription: NodeIndex,
    tenant: NodeIndex,
    partner: Option<NodeIndex>,
    distributor: Option<NodeIndex>,
    chain: Vec<(NodeIndex, NodeIndex)>,
}

/// What usage counts together for pooled tiers: one list and meter, at one level of the billing chain (the
/// tenants' level, or one reseller's purchases), for one tenant (tenant scope) or every buyer at that
/// level (list scope). The count runs over the month across the list's versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PoolKey {
    reseller: Option<NodeIndex>,
    list: String,
    meter: MeterId,
    tenant: Option<NodeIndex>,
}

/// Usage whose tiers count together: entries by part, each a subscription's part waiting for the pool's
/// amount.
#[derive(Default)]
struct Pool<'a> {
    by_part: BTreeMap<usize, Vec<usize>>,
    entries: Vec<Option<PooledEntry<'a>>>,
}

/// A subscription's part waiting for its pool to be priced.
struct PooledEntry<'a> {
    priced: PricedPart,
    price: Resolved<'a>,
    slices: Vec<UsageSlice>,
}

/// Slices by (subscription, meter), then by part.
type Groups<'s> = BTreeMap<(NodeIndex, MeterId), BTreeMap<usize, Vec<&'s UsageSlice>>>;

/// Prices usage slices.
pub struct Rater<'a> {
    context: BillingContext<'a>,
    parts: &'a Parts,
    price_double_counting: bool,
    discounts: Vec<crate::model::adjustments::Discount>,
}

impl<'a> Rater<'a> {
    /// A rater for `parts` of a period.
    pub fn new(context: BillingContext<'a>, parts: &'a Parts, price_double_counting: bool) -> Self {
        let discounts = context.terms.discounts.values().cloned().collect();
        Self { context, parts, price_double_counting, discounts }
    }

    /// Where a subscription stands in a part: its tenant, agents, and billing chain (buyer, issuer).
    fn place(&self, subscription: NodeIndex, at: Instant) -> Result<Placement, CmsError> {
        let hierarchy = self.context.hierarchy;
        let tenant = hierarchy.ancestor_of_kind_at(subscription, NodeKind::Tenant, at).ok_or_else(|| {
            CmsError::InvalidHierarchy {
                id: hierarchy.node(subscription).id.clone(),
                reason: "subscription is not under a tenant".into(),
                context: None,
            }
        })?;
        let chain = self
            .context
            .channel
            .billing_chain(hierarchy, subscription, at)
            .into_iter()
            .map(|buyer| (buyer, self.context.channel.issuer_of(hierarchy, buyer, at)))
            .collect();
        Ok(Placement {
            subscription,
            tenant,
            partner: hierarchy.ancestor_of_kind_at(subscription, NodeKind::Partner, at),
            distributor: hierarchy.ancestor_of_kind_at(subscription, NodeKind::Distributor, at),
            chain,
        })
    }

    /// The price path of a buyer (see [`price_path`]); a tenant's starts at the subscription.
    fn path(&self, placement: &Placement, buyer: NodeIndex, issuer: NodeIndex, at: Instant) -> Vec<&'a str> {
        let from = if buyer == placement.tenant { placement.subscription } else { buyer };
        price_path(self.context.hierarchy, from, issuer, at)
    }

    fn region(&self, subscription: NodeIndex) -> Option<&'a str> {
        let id = &self.context.hierarchy.node(subscription).id;
        self.context.channel.subscription(id).and_then(|info| info.region.as_deref())
    }

    /// Slices by (subscription node, meter) and part; slices that cannot be billed go to `unpriced`.
    fn group<'s>(&self, slices: &'s [UsageSlice], unpriced: &mut Vec<Unpriced>) -> Groups<'s> {
        let hierarchy = self.context.hierarchy;
        let mut groups = Groups::new();
        let mut lookup: BTreeMap<&str, Option<NodeIndex>> = BTreeMap::new();
        for slice in slices {
            let node = *lookup.entry(slice.subscription.as_str()).or_insert_with(|| {
                hierarchy
                    .find_ignoring_case(&slice.subscription)
                    .or_else(|| {
                        self.context
                            .channel
                            .find_subscription_by_external(hierarchy, &slice.subscription)
                            .and_then(|id| hierarchy.find(id))
                    })
                    .filter(|&index| hierarchy.node(index).kind == NodeKind::Subscription)
            });
            let reason = match node {
                None => NotBilledReason::UnknownSubscription,
                Some(_)
                    if !self.price_double_counting
                        && slice.meter.info().is_some_and(MeterInfo::double_counts) =>
                {
                    NotBilledReason::DoubleCounts
                }
                Some(node) => {
                    groups.entry((node, slice.meter)).or_default().entry(slice.part).or_default().push(slice);
                    continue;
                }
            };
            unpriced.push(Unpriced {
                subscription: slice.subscription.clone(),
                meter: slice.meter,
                quantity: slice.quantity,
                reason,
                buyer: None,
            });
        }
        groups
    }

    /// Price every slice at every level of its billing chain.
    pub fn rate(&self, slices: &[UsageSlice]) -> Result<Rated, CmsError> {
        let hierarchy = self.context.hierarchy;
        let mut rated = Rated::default();
        let groups = self.group(slices, &mut rated.unpriced);
        let mut pools: BTreeMap<PoolKey, Pool<'a>> = BTreeMap::new();
        for ((subscription, meter), by_part) in &groups {
            let mut before = Decimal::ZERO;
            for (&part, part_slices) in by_part {
                let at = self.parts.start(part);
                let quantity: Decimal = part_slices.iter().map(|slice| slice.quantity).sum();
                let placement = self.place(*subscription, at)?;
                let quotes = self.quotes(&placement, *meter, at)?;
                if quotes.last().is_none_or(Option::is_none) {
                    rated.unpriced.push(Unpriced {
                        subscription: hierarchy.node(*subscription).id.clone(),
                        meter: *meter,
                        quantity,
                        reason: NotBilledReason::NoPrice,
                        buyer: None,
                    });
                    before += quantity;
                    continue;
                }
                for (quote, (buyer, _)) in quotes.into_iter().zip(&placement.chain) {
                    let Some(quote) = quote else {
                        rated.unpriced.push(Unpriced {
                            subscription: hierarchy.node(*subscription).id.clone(),
                            meter: *meter,
                            quantity,
                            reason: NotBilledReason::NoPrice,
                            buyer: Some(hierarchy.node(*buyer).id.clone()),
                        });
                        continue;
                    };
                    let priced = Self::priced(&placement, &quote, *meter, part, quantity);
                    match quote.price.tier_scope() {
                        TierScope::Subscription => {
                            let amount =
                                quote.price.amount(before + quantity)? - quote.price.amount(before)?;
                            let priced = PricedPart { amount, ..priced };
                            rated.parts.push(self.with_discounts(priced, part_slices.iter().copied()));
                        }
                        scope => {
                            let key = PoolKey {
                                reseller: (quote.buyer != placement.tenant).then_some(quote.buyer),
                                list: quote.price.list_id().to_owned(),
                                meter: *meter,
                                tenant: (scope == TierScope::Tenant).then_some(placement.tenant),
                            };
                            let pool = pools.entry(key).or_default();
                            pool.by_part.entry(part).or_default().push(pool.entries.len());
                            let slices = part_slices.iter().map(|slice| (*slice).clone()).collect();
                            pool.entries.push(Some(PooledEntry {
                                priced: PricedPart { quantity, ..priced },
                                price: quote.price,
                                slices,
                            }));
                        }
                    }
                }
                before += quantity;
            }
        }
        for pool in pools.into_values() {
            self.rate_pool(pool, &mut rated)?;
        }
        Ok(rated)
    }

    /// Each buyer's price of `meter` for a subscription at `at`, top-down (`None`: no price).
    fn quotes(
        &self,
        placement: &Placement,
        meter: MeterId,
        at: Instant,
    ) -> Result<Vec<Option<Quote<'a>>>, CmsError> {
        let hierarchy = self.context.hierarchy;
        let tenant_id = hierarchy.node(placement.tenant).id.as_str();
        let region = self.region(placement.subscription);
        placement
            .chain
            .iter()
            .map(|&(buyer, issuer)| {
                let path = self.path(placement, buyer, issuer, at);
                let priced_at = self.context.prices_at.unwrap_or(at);
                let price =
                    self.context.terms.book.resolve(&path, region, meter, priced_at, Some(tenant_id))?;
                Ok(price.map(|price| Quote { buyer, issuer, price }))
            })
            .collect()
    }

    fn priced(
        placement: &Placement,
        quote: &Quote<'_>,
        meter: MeterId,
        part: usize,
        quantity: Decimal,
    ) -> PricedPart {
        PricedPart {
            buyer: quote.buyer,
            issuer: quote.issuer,
            subscription: placement.subscription,
            tenant: placement.tenant,
            partner: placement.partner,
            distributor: placement.distributor,
            meter,
            part,
            quantity,
            list: quote.price.list_id().to_owned(),
            version: quote.price.version_index(),
            effective: quote.price.effective(),
            currency: quote.price.currency(),
            unit: quote.price.unit().to_owned(),
            amount: Decimal::ZERO,
            discounts: Vec::new(),
        }
    }

    /// Tenants' usage gets the discounts that match its slices: each slice's share of the part's amount,
    /// times the best matching discount's percent.
    fn with_discounts<'s>(
        &self,
        mut priced: PricedPart,
        slices: impl IntoIterator<Item = &'s UsageSlice>,
    ) -> PricedPart {
        if priced.buyer != priced.tenant || self.discounts.is_empty() || priced.quantity.is_zero() {
            return priced;
        }
        let hierarchy = self.context.hierarchy;
        let (subscription, tenant) =
            (&hierarchy.node(priced.subscription).id, &hierarchy.node(priced.tenant).id);
        let at = self.parts.start(priced.part);
        let mut taken: BTreeMap<String, DiscountTaken> = BTreeMap::new();
        for slice in slices {
            let Some(discount) = best_discount(
                &self.discounts,
                subscription,
                tenant,
                slice.resource.as_deref(),
                priced.meter,
                at,
            ) else {
                continue;
            };
            let share = priced.amount * slice.quantity / priced.quantity;
            let entry = taken.entry(discount.id.clone()).or_insert_with(|| DiscountTaken {
                id: discount.id.clone(),
                percent: discount.percent,
                quantity: Decimal::ZERO,
                amount: Decimal::ZERO,
            });
            entry.quantity += slice.quantity;
            entry.amount += share * discount.percent;
        }
        priced.discounts = taken.into_values().collect();
        priced
    }

    /// Price a pool part by part, sharing each part's amount among its subscriptions. The pool's count
    /// runs over the month; within a part, subscriptions priced by the same version share
    /// `P(before + Q) x Q_v / Q - P(before) x Q_v / Q` (the whole `P(before + Q) - P(before)` when one
    /// version prices the whole part, as usual), where `Q` is the part's pooled quantity and `Q_v` the
    /// version's (tenants exempt from a version keep an earlier one).
    fn rate_pool(&self, mut pool: Pool<'a>, rated: &mut Rated) -> Result<(), CmsError> {
        let hierarchy = self.context.hierarchy;
        let mut before = Decimal::ZERO;
        for members in pool.by_part.values() {
            let members: Vec<PooledEntry<'a>> =
                members.iter().filter_map(|&index| pool.entries[index].take()).collect();
            let total: Decimal = members.iter().map(|entry| entry.priced.quantity).sum();
            let mut by_version: BTreeMap<usize, Vec<PooledEntry<'a>>> = BTreeMap::new();
            for entry in members {
                by_version.entry(entry.price.version_index()).or_default().push(entry);
            }
            let versions = by_version.len();
            for mut group in by_version.into_values() {
                group.sort_by(|left, right| {
                    hierarchy
                        .node(left.priced.subscription)
                        .id
                        .cmp(&hierarchy.node(right.priced.subscription).id)
                });
                let Some(first) = group.first() else { continue };
                let quantity: Decimal = group.iter().map(|entry| entry.priced.quantity).sum();
                let whole = first.price.amount(before + total)? - first.price.amount(before)?;
                let amount = if versions == 1 || total.is_zero() {
                    whole
                } else {
                    checked_mul(whole, quantity)? / total
                };
                self.share(amount, quantity, group, rated)?;
            }
            before += total;
        }
        Ok(())
    }

    /// Share `amount` among pooled parts in proportion to their quantities (summing to `quantity`), the last
    /// taking what the divisions leave, so the shares add up to `amount` exactly.
    fn share(
        &self,
        amount: Decimal,
        quantity: Decimal,
        members: Vec<PooledEntry<'a>>,
        rated: &mut Rated,
    ) -> Result<(), CmsError> {
        let mut left = amount;
        let count = members.len();
        for (position, entry) in members.into_iter().enumerate() {
            let share = if position + 1 == count {
                left
            } else if quantity.is_zero() {
                Decimal::ZERO
            } else {
                checked_mul(amount, entry.priced.quantity)? / quantity
            };
            left -= share;
            let priced = PricedPart { amount: share, ..entry.priced };
            rated.parts.push(self.with_discounts(priced, &entry.slices));
        }
        Ok(())
    }
}
