//! Invariants of month-end billing over random channels and usage (proptest).

use cms_core::Decimal;
use cms_core::billing::{BillingRules, bill};
use cms_core::error::Location;
use cms_core::model::hierarchy::{Hierarchy, NodeKind};
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, Rounding, RoundingMode};
use cms_core::model::pricing::{CommissionPlan, PriceList};
use cms_core::model::terms::CommercialTerms;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::Period;
use cms_core::model::usage::UsageRow;
use cms_core::rating::UsageAccumulator;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Scenario {
    partners_per_distributor: Vec<usize>,
    tenant_parents: Vec<usize>,
    usage: Vec<(usize, usize, u32, i64)>,
    prices: Vec<Vec<(u32, i64)>>,
    volume: Vec<bool>,
    bands: Vec<(u32, u32)>,
    whole_amount: bool,
    half_even: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(1usize..4, 1..3),
        proptest::collection::vec(0usize..100, 1..8),
        proptest::collection::vec((0usize..100, 0usize..3, 0u32..744, 0i64..50_000_000), 0..80),
        proptest::collection::vec(proptest::collection::vec((0u32..400, 0i64..100_000), 1..4), 3),
        proptest::collection::vec(any::<bool>(), 3),
        proptest::collection::vec((0u32..5000, 0u32..200), 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                partners_per_distributor,
                tenant_parents,
                usage,
                prices,
                volume,
                bands,
                whole_amount,
                half_even,
            )| {
                Scenario {
                    partners_per_distributor,
                    tenant_parents,
                    usage,
                    prices,
                    volume,
                    bands,
                    whole_amount,
                    half_even,
                }
            },
        )
}

fn meter(index: usize) -> MeterId {
    MeterId::from_u128(0xFAB6_EB84_500B_4A09_A8CA_7358_F8BB_AEA5 + index as u128)
}

/// A tier list from random (from, rate) pairs with the first forced to start at 0, duplicates dropped.
fn tiers(pairs: &[(u32, i64)], rate_scale: u32) -> Vec<Tier> {
    let mut out: Vec<Tier> = Vec::new();
    for (index, (from, rate)) in pairs.iter().enumerate() {
        let from = if index == 0 { Decimal::ZERO } else { Decimal::from(*from) };
        if out.iter().all(|tier| tier.from != from) {
            out.push(Tier { from, rate: Decimal::new(*rate, rate_scale) });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Invoice total = sum of its rounded lines; each line = its schedule rounded once; partner revenue =
    /// sum of its tenants' totals; commission = bands on that revenue (the bands sum to the plan's math),
    /// rounded; the override = rate x network revenue, rounded.
    #[test]
    fn documents_add_up(scenario in scenario()) {
        let mut hierarchy = Hierarchy::new("platform", "P");
        let mut partners = Vec::new();
        for (d, count) in scenario.partners_per_distributor.iter().enumerate() {
            let distributor = format!("d{d}");
            hierarchy.add(&distributor, NodeKind::Distributor, None, "", None).unwrap();
            for p in 0..*count {
                let partner = format!("p{d}-{p}");
                hierarchy.add(&partner, NodeKind::Partner, Some(&distributor), "", None).unwrap();
                partners.push(partner);
            }
        }
        let mut subscriptions = Vec::new();
        for (t, parent) in scenario.tenant_parents.iter().enumerate() {
            let tenant = format!("t{t}");
            hierarchy.add(&tenant, NodeKind::Tenant, Some(&partners[parent % partners.len()]), "", None).unwrap();
            let subscription = format!("s{t}");
            hierarchy.add(&subscription, NodeKind::Subscription, Some(&tenant), "", None).unwrap();
            subscriptions.push(subscription);
        }
        let mut list = PriceList::new("list", Currency::USD);
        for (index, pairs) in scenario.prices.iter().enumerate() {
            let mode = if scenario.volume[index] { TierMode::Volume } else { TierMode::Graduated };
            list.set(meter(index), "u", mode, tiers(pairs, 6)).unwrap();
        }
        let band_mode = if scenario.whole_amount { TierMode::Volume } else { TierMode::Graduated };
        let band_pairs: Vec<(u32, i64)> = scenario.bands.iter().map(|(from, rate)| (*from, i64::from(*rate))).collect();
        let plan = CommissionPlan::new("bands", band_mode, tiers(&band_pairs, 3)).unwrap();
        let mut terms = CommercialTerms::default();
        terms.put_price_list(list.clone()).unwrap();
        terms.assign_price_list(cms_core::model::price_book::PriceScope::Default, "list").unwrap();
        terms.put_commission_plan(plan.clone());
        terms.assign_commission_plan("platform", "bands").unwrap();
        terms.set_override_rate("platform", Decimal::new(2, 2));

        let period = Period::month(2026, 10).unwrap();
        let mut accumulator = UsageAccumulator::new(period);
        for (subscription, meter_index, hour, micros) in &scenario.usage {
            let start = period.start_seconds() + i64::from(*hour) * 3600;
            let row = UsageRow {
                subscription: &subscriptions[subscription % subscriptions.len()],
                meter: meter(*meter_index),
                start,
                end: start + 3600,
                quantity: Decimal::new(*micros, 6),
                resource_uri: "/r",
                location: "local",
            };
            accumulator.ingest(&row, || Location::whole("property")).unwrap();
        }
        let mode = if scenario.half_even { RoundingMode::HalfEven } else { RoundingMode::HalfAwayFromZero };
        let rounding = Rounding::new(2, mode);
        let report = bill(&hierarchy, &terms, BillingRules { mode, scale: Some(2), price_double_counting: false }, &accumulator.finish()).unwrap();

        for invoice in &report.invoices {
            prop_assert_eq!(invoice.total, invoice.lines.iter().map(|line| line.amount).sum::<Decimal>());
            for line in &invoice.lines {
                let exact = list.price(line.meter).unwrap().amount(line.quantity).unwrap();
                prop_assert_eq!(line.amount_exact, exact);
                prop_assert_eq!(line.amount, rounding.apply(exact));
            }
        }
        let mut commissioned = Decimal::ZERO;
        for statement in &report.commissions {
            let node = hierarchy.find(&statement.partner).unwrap();
            let revenue: Decimal = report.invoices.iter()
                .filter(|invoice| hierarchy.ancestor_of_kind(hierarchy.find(&invoice.buyer).unwrap(), NodeKind::Partner) == Some(node))
                .map(|invoice| invoice.total).sum();
            prop_assert_eq!(statement.revenue, revenue);
            let bands: Decimal = statement.bands.iter().map(|band| band.amount).sum();
            prop_assert_eq!(bands, plan.commission(revenue).unwrap());
            prop_assert_eq!(statement.commission, rounding.apply(bands));
            commissioned += statement.revenue;
        }
        let total_invoiced: Decimal = report.invoices.iter().map(|invoice| invoice.total).sum();
        prop_assert_eq!(commissioned, total_invoiced, "every invoiced tenant sits under a partner here");
        let network: Decimal = report.overrides.iter().map(|statement| statement.revenue).sum();
        prop_assert_eq!(network, total_invoiced);
        for statement in &report.overrides {
            prop_assert_eq!(statement.amount, rounding.apply(statement.revenue * Decimal::new(2, 2)));
        }
    }
}
