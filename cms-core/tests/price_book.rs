//! The price book: precedence, effective dates, resale chains, change sets, the calculator (proptest and
//! goldens).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::model::meter::{Category, MeterId, catalogue};
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{
    BookList, ChangeScope, ChangeSet, MeterFilter, PriceBook, PriceScope, PriceVersion, TierScope,
    VersionContent, estimate_totals,
};
use cms_core::model::pricing::{MeterPrice, PriceChange, PriceModel};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::Instant;
use proptest::prelude::*;
use rust_decimal::RoundingStrategy;

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

/// `minutes` after 2026-01-01T00:00:00Z.
fn at(minutes: i64) -> Instant {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn meter(index: usize) -> MeterId {
    MeterId::from_u128(u128::try_from(index).unwrap() + 1)
}

fn per_unit(rate: Decimal) -> MeterPrice {
    MeterPrice::new("units", PriceModel::per_unit(rate))
}

fn own(effective: Instant, prices: &[(usize, Decimal)]) -> PriceVersion {
    PriceVersion::own(effective, prices.iter().map(|&(index, rate)| (meter(index), per_unit(rate))).collect())
}

fn list(id: &str, versions: Vec<PriceVersion>) -> BookList {
    BookList { versions, ..BookList::new(id, &format!("list {id}"), Currency::USD) }
}

fn amount(
    book: &PriceBook,
    list_id: &str,
    meter: MeterId,
    instant: Instant,
    quantity: Decimal,
) -> Option<Decimal> {
    book.price_of_list(list_id, meter, instant, None)
        .unwrap()
        .map(|resolved| resolved.amount(quantity).unwrap())
}

// ---------------------------------------------------------------------------------------------- precedence

#[derive(Debug, Clone)]
struct PrecedenceCase {
    /// Per list: effective minute of its one version, and which of 4 meters it prices.
    lists: Vec<(i64, Vec<bool>)>,
    /// Per node of the path: the list assigned there, if any.
    nodes: Vec<Option<usize>>,
    region: Option<usize>,
    default: Option<usize>,
    query_region: Option<bool>,
    meter: usize,
    instant: i64,
}

fn precedence_case() -> impl Strategy<Value = PrecedenceCase> {
    (1usize..5).prop_flat_map(|list_count| {
        let assignment = proptest::option::of(0..list_count);
        (
            proptest::collection::vec((0i64..50, proptest::collection::vec(any::<bool>(), 4)), list_count),
            proptest::collection::vec(assignment.clone(), 1..6),
            assignment.clone(),
            assignment,
            proptest::option::of(any::<bool>()),
            0usize..4,
            -10i64..60,
        )
            .prop_map(|(lists, nodes, region, default, query_region, meter, instant)| {
                PrecedenceCase { lists, nodes, region, default, query_region, meter, instant }
            })
    })
}

proptest! {
    /// `resolve` returns the first scope in precedence order (path nodes, region, default) whose list prices
    /// the meter at that instant, and nothing when none does.
    #[test]
    fn precedence_is_first_scope_that_prices(case in precedence_case()) {
        let mut book = PriceBook::new();
        for (index, (effective, priced)) in case.lists.iter().enumerate() {
            // Rates identify the list: list i prices at i + 1 per unit.
            let prices: Vec<(usize, Decimal)> = (0..4).filter(|&m| priced[m]).map(|m| (m, Decimal::from(index + 1))).collect();
            book.put_list(list(&format!("l{index}"), vec![own(at(*effective), &prices)])).unwrap();
        }
        let node_ids: Vec<String> = (0..case.nodes.len()).map(|index| format!("node-{index}")).collect();
        let mut scopes: Vec<(PriceScope, Option<usize>)> = Vec::new();
        for (node, assigned) in node_ids.iter().zip(&case.nodes) {
            scopes.push((PriceScope::Node(node.clone()), *assigned));
        }
        // Assigned in mixed case, queried in another: regions compare ignoring ASCII case.
        if case.query_region.is_some() {
            scopes.push((PriceScope::Region("west".into()), case.region));
        }
        scopes.push((PriceScope::Default, case.default));
        for (scope, assigned) in &scopes {
            let scope = match scope { PriceScope::Region(_) => PriceScope::Region("WeSt".into()), other => other.clone() };
            if let Some(index) = assigned {
                book.assign(scope, &format!("l{index}")).unwrap();
            }
        }
        let instant = at(case.instant);
        let expected = scopes.iter().find_map(|(scope, assigned)| {
            let index = (*assigned)?;
            let (effective, priced) = &case.lists[index];
            (at(*effective) <= instant && priced[case.meter]).then(|| (scope.clone(), index))
        });
        let region = case.query_region.map(|upper| if upper { "WEST" } else { "west" });
        let path: Vec<&str> = node_ids.iter().map(String::as_str).collect();
        let resolved = book.resolve(&path, region, meter(case.meter), instant, None).unwrap();
        match (expected, resolved) {
            (None, None) => {}
            (Some((scope, index)), Some(resolved)) => {
                prop_assert_eq!(resolved.scope(), Some(&scope));
                prop_assert_eq!(resolved.list_id(), format!("l{index}"));
                prop_assert_eq!(resolved.amount(dec("3")).unwrap(), Decimal::from(3 * (index + 1)));
                prop_assert_eq!(resolved.unit(), "units");
                prop_assert_eq!(resolved.currency(), Currency::USD);
            }
            (expected, resolved) => prop_assert!(false, "expected {:?}, resolved {:?}", expected, resolved.map(|r| r.list_id())),
        }
    }
}

// ----------------------------------------------------------------------------------------- effective dates

proptest! {
    /// For any instant, the version used is the unique one with `effective <= t < next effective`, none
    /// before the first; appending at or before the last version is refused and changes nothing;
    /// `change_instants` lists exactly the effective instants strictly inside a range.
    #[test]
    fn versions_cover_time_without_gaps(steps in proptest::collection::vec(1i64..500, 1..8),
                                         queries in proptest::collection::vec(-100i64..5000, 1..20),
                                         late in 0i64..600, range in (-100i64..5000, 0i64..5000)) {
        let effectives: Vec<i64> = steps.iter().scan(0, |sum, step| { *sum += step; Some(*sum) }).collect();
        let mut book = PriceBook::new();
        book.put_list(list("l", Vec::new())).unwrap();
        for (index, effective) in effectives.iter().enumerate() {
            book.append_version("l", own(at(*effective), &[(0, Decimal::from(index + 1))])).unwrap();
        }
        book.assign(PriceScope::Default, "l").unwrap();
        for query in queries {
            let expected = effectives.iter().enumerate().find(|(index, effective)| {
                **effective <= query && effectives.get(index + 1).is_none_or(|next| query < *next)
            }).map(|(index, _)| index);
            let resolved = book.resolve(&[], None, meter(0), at(query), None).unwrap();
            prop_assert_eq!(resolved.as_ref().map(cms_core::model::price_book::Resolved::version_index), expected);
            if let (Some(resolved), Some(index)) = (resolved, expected) {
                prop_assert_eq!(resolved.effective(), at(effectives[index]));
                prop_assert_eq!(resolved.amount(Decimal::ONE).unwrap(), Decimal::from(index + 1));
            }
        }
        let before = book.clone();
        let last = *effectives.last().unwrap();
        let error = book.append_version("l", own(at(last - late), &[(0, Decimal::ONE)])).unwrap_err();
        prop_assert_eq!(error.code(), "invalid_value");
        prop_assert_eq!(&book, &before);
        let (from, length) = range;
        let expected: Vec<Instant> = effectives.iter().filter(|&&e| from < e && e < from + length).map(|&e| at(e)).collect();
        prop_assert_eq!(book.change_instants(at(from), at(from + length)), expected);
    }
}

// ------------------------------------------------------------------------------------------- resale chains

fn graduated(rates: &[(u32, u32)]) -> MeterPrice {
    let tiers = std::iter::once(0)
        .chain(rates.iter().skip(1).map(|(from, _)| *from))
        .zip(rates.iter().map(|(_, rate)| *rate))
        .map(|(from, rate)| Tier { from: Decimal::from(from), rate: Decimal::new(i64::from(rate), 4) })
        .collect();
    MeterPrice::new(
        "GB-hours",
        PriceModel::Tiered(TierSchedule::new(TierMode::Graduated, tiers, "m").unwrap()),
    )
}

fn rates() -> impl Strategy<Value = Vec<(u32, u32)>> {
    proptest::collection::btree_map(1u32..10_000, 0u32..100_000, 0..3).prop_flat_map(|starts| {
        (0u32..100_000).prop_map(move |first| std::iter::once((0, first)).chain(starts.clone()).collect())
    })
}

proptest! {
    /// Three levels with markups >= 0: each level is its parent's amount times (1 + markup), exactly; the
    /// margins per level add up to top - bottom; the chain's level amounts agree with each list's own.
    #[test]
    fn derived_chains_mark_up_exactly(base_rates in rates(), markups in (0u32..300, 0u32..300),
                                      quantity in 0u64..100_000_000, scale in 0u32..4) {
        let (mid_markup, top_markup) = (Decimal::new(i64::from(markups.0), 2), Decimal::new(i64::from(markups.1), 2));
        let mut book = PriceBook::new();
        let base = PriceVersion::own(at(0), BTreeMap::from([(meter(0), graduated(&base_rates))]));
        book.put_list(list("base", vec![base])).unwrap();
        book.put_list(list("mid", vec![PriceVersion::derived(at(0), "base", mid_markup)])).unwrap();
        book.put_list(list("top", vec![PriceVersion::derived(at(0), "mid", top_markup)])).unwrap();
        let quantity = Decimal::new(i64::try_from(quantity).unwrap(), scale);
        let amount_of = |id: &str| amount(&book, id, meter(0), at(5), quantity).unwrap();
        let (base_amount, mid_amount, top_amount) = (amount_of("base"), amount_of("mid"), amount_of("top"));
        prop_assert_eq!(mid_amount, base_amount * (Decimal::ONE + mid_markup));
        prop_assert_eq!(top_amount, mid_amount * (Decimal::ONE + top_markup));
        prop_assert_eq!((top_amount - mid_amount) + (mid_amount - base_amount), top_amount - base_amount);
        let resolved = book.price_of_list("top", meter(0), at(5), None).unwrap().unwrap();
        let levels: Vec<(&str, Decimal)> = resolved.level_amounts(quantity).unwrap().iter().map(|level| (level.list, level.amount)).collect();
        prop_assert_eq!(levels, vec![("top", top_amount), ("mid", mid_amount), ("base", base_amount)]);
        prop_assert_eq!(resolved.unit(), "GB-hours");
        prop_assert!(resolved.own_price().is_none());
        // Before the base has a version, nothing in the chain prices the meter.
        prop_assert!(book.price_of_list("top", meter(0), at(-1), None).unwrap().is_none());
    }

    /// With a floor, a level never goes below its parent x (1 + floor), overrides included; otherwise it
    /// keeps its own amount.
    #[test]
    fn floors_hold(base_rates in rates(), override_rate in 0u32..100_000, markup in 0u32..100,
                   floor in 0u32..50, quantity in 0u64..10_000_000) {
        let (markup, floor) = (Decimal::new(i64::from(markup), 2), Decimal::new(i64::from(floor), 2));
        let mut book = PriceBook::new();
        let base = PriceVersion::own(at(0), BTreeMap::from([(meter(0), graduated(&base_rates)), (meter(1), graduated(&base_rates))]));
        book.put_list(list("base", vec![base])).unwrap();
        let overridden = graduated(&[(0, override_rate)]);
        let child = PriceVersion {
            content: VersionContent::Derived {
                parent: "base".into(),
                markup,
                overrides: BTreeMap::from([(meter(0), overridden.clone()), (meter(2), overridden.clone())]),
                floor: Some(floor),
            },
            ..PriceVersion::derived(at(0), "base", markup)
        };
        book.put_list(list("child", vec![child])).unwrap();
        let quantity = Decimal::from(quantity);
        let parent = amount(&book, "base", meter(0), at(1), quantity).unwrap();
        let child_amount = amount(&book, "child", meter(0), at(1), quantity).unwrap();
        let own_amount = overridden.amount(quantity).unwrap();
        prop_assert!(child_amount >= parent * (Decimal::ONE + floor));
        prop_assert_eq!(child_amount, own_amount.max(parent * (Decimal::ONE + floor)));
        // A markup below the floor is lifted to it.
        let derived = amount(&book, "child", meter(1), at(1), quantity).unwrap();
        prop_assert_eq!(derived, (parent * (Decimal::ONE + markup)).max(parent * (Decimal::ONE + floor)));
        // An override of a meter the parent does not price stands alone; a meter neither prices is unpriced.
        prop_assert_eq!(amount(&book, "child", meter(2), at(1), quantity), Some(own_amount));
        prop_assert_eq!(amount(&book, "child", meter(3), at(1), quantity), None);
    }
}

// --------------------------------------------------------------------------------------------- change sets

/// An independent statement of the rounding rule: half away from zero at `scale`.
fn rounded(value: Decimal, scale: u32) -> Decimal {
    value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
}

#[derive(Debug, Clone)]
struct ChangeCase {
    rates: Vec<u32>,
    percent: bool,
    value: i64,
    scale: u32,
    filter: Vec<bool>,
    quantity: u32,
}

fn change_case() -> impl Strategy<Value = ChangeCase> {
    (
        proptest::collection::vec(0u32..1_000_000, 4),
        any::<bool>(),
        -50i64..200,
        0u32..7,
        proptest::collection::vec(any::<bool>(), 4),
        0u32..10_000,
    )
        .prop_map(|(rates, percent, value, scale, filter, quantity)| ChangeCase {
            rates,
            percent,
            value,
            scale,
            filter,
            quantity,
        })
}

proptest! {
    /// After a change set: from its effective instant, matching meters have the adjusted rounded rates and
    /// the others their old ones; before it, the old rates; an exempt tenant keeps the old rates; a change
    /// that fails (a rate below zero) leaves the book as it was.
    #[test]
    fn change_sets_adjust_what_they_match(case in change_case()) {
        let old: Vec<Decimal> = case.rates.iter().map(|rate| Decimal::new(i64::from(*rate), 5)).collect();
        let prices: Vec<(usize, Decimal)> = old.iter().copied().enumerate().collect();
        let mut book = PriceBook::new();
        book.put_list(list("region", vec![own(at(0), &prices)])).unwrap();
        book.put_list(list("partner", vec![own(at(0), &prices[..2])])).unwrap();
        book.assign(PriceScope::Region("local".into()), "region").unwrap();
        book.assign(PriceScope::Node("p1".into()), "partner").unwrap();
        let matching: BTreeSet<MeterId> = (0..4).filter(|&m| case.filter[m]).map(meter).collect();
        let (change, factor_or_addend) = if case.percent {
            let percent = Decimal::new(case.value, 2);
            (PriceChange::Percent(percent), percent)
        } else {
            let fixed = Decimal::new(case.value, 4);
            (PriceChange::Fixed(fixed), fixed)
        };
        let change_set = ChangeSet {
            id: "cs-1".into(),
            scope: ChangeScope::Region("LOCAL".into()),
            meters: MeterFilter::Meters(matching.clone()),
            change,
            effective: at(100),
            scale: case.scale,
            exempt_tenants: BTreeSet::from(["t-exempt".to_owned()]),
        };
        let expected_rate = |rate: Decimal| {
            let changed = if case.percent { rate * (Decimal::ONE + factor_or_addend) } else { rate + factor_or_addend };
            rounded(changed, case.scale)
        };
        let any_negative = (0..4).any(|m| case.filter[m] && expected_rate(old[m]) < Decimal::ZERO);
        let before = book.clone();
        let result = book.apply_change_set(&change_set);
        if matching.is_empty() || any_negative {
            prop_assert_eq!(result.unwrap_err().code(), "invalid_value");
            prop_assert_eq!(&book, &before);
            return Ok(());
        }
        prop_assert_eq!(result.unwrap(), vec!["region".to_owned()]);
        let quantity = Decimal::from(case.quantity);
        for (index, rate) in old.iter().enumerate() {
            let price_at = |minutes: i64, tenant: Option<&str>| {
                let resolved = book.resolve(&["s1"], Some("local"), meter(index), at(minutes), tenant).unwrap().unwrap();
                (resolved.amount(quantity).unwrap(), resolved.change_set().map(str::to_owned))
            };
            let new_rate = if case.filter[index] { expected_rate(*rate) } else { *rate };
            prop_assert_eq!(price_at(100, None), (new_rate * quantity, Some("cs-1".to_owned())));
            prop_assert_eq!(price_at(5000, Some("t-other")).0, new_rate * quantity);
            prop_assert_eq!(price_at(99, None), (*rate * quantity, None));
            prop_assert_eq!(price_at(5000, Some("T-EXEMPT")), (*rate * quantity, None));
        }
        // Lists out of scope keep one version.
        prop_assert_eq!(book.list("partner").unwrap().versions.len(), 1);
    }
}

// ------------------------------------------------------------------------------------------------ goldens

#[test]
fn models_price_through_the_book() {
    let tiers =
        vec![Tier { from: dec("0"), rate: dec("0.008") }, Tier { from: dec("5000"), rate: dec("0.0072") }];
    let prices = BTreeMap::from([
        (
            meter(0),
            MeterPrice::new(
                "vCPU-hours",
                PriceModel::Tiered(TierSchedule::new(TierMode::Graduated, tiers.clone(), "m").unwrap()),
            ),
        ),
        (
            meter(1),
            MeterPrice::new(
                "vCPU-hours",
                PriceModel::Tiered(TierSchedule::new(TierMode::Volume, tiers, "m").unwrap()),
            ),
        ),
        (meter(2), MeterPrice::new("GB", PriceModel::Package { size: dec("100"), price: dec("2.5") })),
        (meter(3), MeterPrice::new("month", PriceModel::FlatFee { amount: dec("49") })),
    ]);
    let mut book = PriceBook::new();
    book.put_list(list("l", vec![PriceVersion::own(at(0), prices)])).unwrap();
    let amount_of =
        |index: usize, quantity: &str| amount(&book, "l", meter(index), at(1), dec(quantity)).unwrap();
    assert_eq!(amount_of(0, "6000"), dec("47.2"));
    assert_eq!(amount_of(1, "6000"), dec("43.2"));
    assert_eq!(amount_of(1, "5000"), dec("40"));
    assert_eq!(amount_of(2, "250"), dec("7.5"));
    assert_eq!(amount_of(2, "300"), dec("7.5"));
    assert_eq!(amount_of(2, "0"), dec("0"));
    assert_eq!(amount_of(3, "0"), dec("0"));
    assert_eq!(amount_of(3, "0.5"), dec("49"));
}

#[test]
fn lists_are_validated() {
    let mut book = PriceBook::new();
    let negative = own(at(0), &[(0, dec("-0.01"))]);
    let error = book.put_list(list("l", vec![negative])).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains(&meter(0).to_string()), "{error}");
    let package = MeterPrice::new("GB", PriceModel::Package { size: dec("0"), price: dec("1") });
    assert!(
        book.put_list(list("l", vec![PriceVersion::own(at(0), BTreeMap::from([(meter(0), package)]))]))
            .is_err()
    );
    let out_of_order = list("l", vec![own(at(5), &[]), own(at(5), &[])]);
    assert_eq!(book.put_list(out_of_order).unwrap_err().code(), "invalid_value");
    let commitment = BookList { minimum_commitment: Some(dec("-1")), ..list("l", Vec::new()) };
    assert!(book.put_list(commitment).is_err());
    assert!(book.put_list(list("", Vec::new())).is_err());
    assert_eq!(book.lists().count(), 0);
    book.put_list(list("l", Vec::new())).unwrap();
    assert_eq!(book.put_list(list("l", Vec::new())).unwrap_err().code(), "invalid_value");
    assert_eq!(book.assign(PriceScope::Default, "nope").unwrap_err().code(), "unknown_node");
    assert_eq!(book.append_version("nope", own(at(0), &[])).unwrap_err().code(), "unknown_node");
    assert!(book.assign(PriceScope::Node(String::new()), "l").is_err());
    let mut derived = PriceVersion::derived(at(0), "l", dec("-1.5"));
    assert!(book.append_version("l", derived.clone()).is_err());
    derived = PriceVersion::derived(at(0), "nope", dec("0.1"));
    assert_eq!(book.append_version("l", derived).unwrap_err().code(), "unknown_node");
}

#[test]
fn assignments_replace_and_unassign() {
    let mut book = PriceBook::new();
    book.put_list(list("a", vec![own(at(0), &[(0, dec("1"))])])).unwrap();
    book.put_list(list("b", vec![own(at(0), &[(0, dec("2"))])])).unwrap();
    book.assign(PriceScope::Region("East".into()), "a").unwrap();
    book.assign(PriceScope::Region("EAST".into()), "b").unwrap();
    assert_eq!(book.assignments().count(), 1);
    let resolved = book.resolve(&[], Some("east"), meter(0), at(1), None).unwrap().unwrap();
    assert_eq!((resolved.list_id(), resolved.scope()), ("b", Some(&PriceScope::Region("east".into()))));
    assert_eq!(book.assigned(&PriceScope::Region("eAsT".into())).map(|list| list.id.as_str()), Some("b"));
    assert_eq!(book.unassign(&PriceScope::Region("East".into())), Some("b".to_owned()));
    assert!(book.resolve(&[], Some("east"), meter(0), at(1), None).unwrap().is_none());
}

#[test]
fn clone_list_copies_every_version() {
    let mut book = PriceBook::new();
    let mut second = own(at(10), &[(0, dec("2"))]);
    second.change_set = Some("cs".into());
    second.exempt_tenants.insert("t1".into());
    let source = BookList {
        tier_scope: TierScope::Tenant,
        minimum_commitment: Some(dec("100")),
        ..list("region-a", vec![own(at(0), &[(0, dec("1"))]), second])
    };
    book.put_list(source.clone()).unwrap();
    book.clone_list("region-a", "region-b", "Region B").unwrap();
    let copy = book.list("region-b").unwrap();
    assert_eq!((copy.id.as_str(), copy.name.as_str()), ("region-b", "Region B"));
    assert_eq!(copy.versions, source.versions);
    assert_eq!(
        (copy.tier_scope, copy.minimum_commitment, copy.currency),
        (TierScope::Tenant, Some(dec("100")), Currency::USD)
    );
    assert_eq!(amount(&book, "region-b", meter(0), at(20), Decimal::ONE), Some(dec("2")));
    let exempt = book.price_of_list("region-b", meter(0), at(20), Some("T1")).unwrap().unwrap();
    assert_eq!((exempt.version_index(), exempt.amount(Decimal::ONE).unwrap()), (0, dec("1")));
    assert!(book.clone_list("region-a", "region-b", "again").is_err());
    assert_eq!(book.clone_list("nope", "x", "x").unwrap_err().code(), "unknown_node");
}

#[test]
fn derivation_cycles_are_refused() {
    let mut book = PriceBook::new();
    assert!(book.put_list(list("self", vec![PriceVersion::derived(at(0), "self", dec("0"))])).is_err());
    book.put_list(list("a", vec![own(at(0), &[(0, dec("1"))])])).unwrap();
    book.put_list(list("b", vec![PriceVersion::derived(at(0), "a", dec("0.1"))])).unwrap();
    book.put_list(list("c", vec![PriceVersion::derived(at(0), "b", dec("0.1"))])).unwrap();
    let before = book.clone();
    // Directly, and through a later version (a version not in effect at the same time still counts).
    for (list_id, parent) in [("a", "b"), ("a", "c"), ("b", "c")] {
        let error =
            book.append_version(list_id, PriceVersion::derived(at(100), parent, dec("0"))).unwrap_err();
        assert_eq!(error.code(), "invalid_value", "{list_id} <- {parent}");
        assert!(error.to_string().contains("cycle"), "{error}");
    }
    assert_eq!(book, before);
    // A diamond is no cycle.
    book.put_list(list("d", vec![PriceVersion::derived(at(0), "a", dec("0.2"))])).unwrap();
    book.append_version("c", PriceVersion::derived(at(50), "d", dec("0"))).unwrap();
    assert_eq!(amount(&book, "c", meter(0), at(60), dec("10")), Some(dec("12.0")));
    // A stored book with a cycle does not load.
    let text = serde_json::to_string(&book).unwrap();
    let cyclic = text.replacen(r#""parent":"a""#, r#""parent":"c""#, 1);
    assert_ne!(cyclic, text);
    assert!(serde_json::from_str::<PriceBook>(&cyclic).is_err());
}

#[test]
fn derived_lists_share_the_parent_currency() {
    let mut book = PriceBook::new();
    let euro = BookList { currency: Currency::EUR, ..list("euro", vec![own(at(0), &[(0, dec("1"))])]) };
    book.put_list(euro).unwrap();
    let error =
        book.put_list(list("usd", vec![PriceVersion::derived(at(0), "euro", dec("0.1"))])).unwrap_err();
    assert_eq!(error.code(), "currency_mismatch");
    book.put_list(list("usd", vec![own(at(0), &[])])).unwrap();
    let error = book.append_version("usd", PriceVersion::derived(at(1), "euro", dec("0.1"))).unwrap_err();
    assert_eq!(error.code(), "currency_mismatch");
}

#[test]
fn exemptions_fall_back_to_earlier_versions() {
    let mut book = PriceBook::new();
    let mut only = own(at(0), &[(0, dec("2"))]);
    only.exempt_tenants.insert("t1".into());
    book.put_list(list("region", vec![only])).unwrap();
    book.put_list(list("default", vec![own(at(0), &[(0, dec("1"))])])).unwrap();
    book.assign(PriceScope::Region("r".into()), "region").unwrap();
    book.assign(PriceScope::Default, "default").unwrap();
    // Exempt from the region list's only version: that list prices nothing for t1, so the default wins.
    let resolved = book.resolve(&["s1", "t1"], Some("r"), meter(0), at(1), Some("T1")).unwrap().unwrap();
    assert_eq!(resolved.list_id(), "default");
    let resolved = book.resolve(&["s2", "t2"], Some("r"), meter(0), at(1), Some("t2")).unwrap().unwrap();
    assert_eq!(resolved.list_id(), "region");
}

#[test]
fn exemptions_follow_the_resale_chain() {
    let mut book = PriceBook::new();
    book.put_list(list("base", vec![own(at(0), &[(0, dec("10"))])])).unwrap();
    book.put_list(list("reseller", vec![PriceVersion::derived(at(0), "base", dec("0.5"))])).unwrap();
    let change_set = ChangeSet {
        id: "raise".into(),
        scope: ChangeScope::Lists(vec!["base".into()]),
        meters: MeterFilter::All,
        change: PriceChange::Percent(dec("0.1")),
        effective: at(100),
        scale: 2,
        exempt_tenants: BTreeSet::from(["t1".to_owned()]),
    };
    assert_eq!(book.apply_change_set(&change_set).unwrap(), ["base"]);
    let price = |tenant| {
        book.price_of_list("reseller", meter(0), at(200), tenant).unwrap().unwrap().amount(dec("1")).unwrap()
    };
    assert_eq!(price(None), dec("16.500"));
    assert_eq!(price(Some("t1")), dec("15.0"));
}

#[test]
fn change_sets_on_derived_lists_change_overrides_only() {
    let mut book = PriceBook::new();
    book.put_list(list("base", vec![own(at(0), &[(0, dec("10")), (1, dec("20"))])])).unwrap();
    let child = PriceVersion {
        content: VersionContent::Derived {
            parent: "base".into(),
            markup: dec("0.1"),
            overrides: BTreeMap::from([(meter(1), per_unit(dec("25")))]),
            floor: None,
        },
        ..PriceVersion::derived(at(0), "base", dec("0.1"))
    };
    book.put_list(list("child", vec![child])).unwrap();
    let mut change_set = ChangeSet {
        id: "cs".into(),
        scope: ChangeScope::Lists(vec!["child".into()]),
        meters: MeterFilter::Meters(BTreeSet::from([meter(0)])),
        change: PriceChange::Fixed(dec("1")),
        effective: at(10),
        scale: 2,
        exempt_tenants: BTreeSet::new(),
    };
    // Meter 0 of the child is derived by markup: nothing to change there.
    assert_eq!(book.plan_change_set(&change_set).unwrap_err().code(), "invalid_value");
    change_set.meters = MeterFilter::All;
    let plan = book.plan_change_set(&change_set).unwrap();
    assert_eq!(plan.len(), 1);
    let VersionContent::Derived { overrides, markup, .. } = &plan[0].1.content else { panic!("derived") };
    assert_eq!((overrides[&meter(1)].clone(), *markup), (per_unit(dec("26.00")), dec("0.1")));
    book.apply_change_set(&change_set).unwrap();
    assert_eq!(amount(&book, "child", meter(0), at(20), Decimal::ONE), Some(dec("11.0")));
    assert_eq!(amount(&book, "child", meter(1), at(20), Decimal::ONE), Some(dec("26.00")));
}

#[test]
fn change_set_errors_change_nothing() {
    let mut book = PriceBook::new();
    book.put_list(list("a", vec![own(at(0), &[(0, dec("1"))])])).unwrap();
    book.put_list(list("b", vec![own(at(0), &[(0, dec("0.5"))])])).unwrap();
    book.put_list(list("later", vec![own(at(0), &[(0, dec("1"))]), own(at(200), &[(0, dec("1"))])])).unwrap();
    book.put_list(list("empty", Vec::new())).unwrap();
    book.assign(PriceScope::Node("t1".into()), "a").unwrap();
    book.assign(PriceScope::Node("s1".into()), "b").unwrap();
    let base = ChangeSet {
        id: "cs".into(),
        scope: ChangeScope::All,
        meters: MeterFilter::All,
        change: PriceChange::Fixed(dec("-0.75")),
        effective: at(100),
        scale: 2,
        exempt_tenants: BTreeSet::new(),
    };
    let before = book.clone();
    let with_scope = |scope: ChangeScope| ChangeSet { scope, ..base.clone() };
    let cases = [
        // "b" would go below zero after "a" was planned: neither is versioned.
        with_scope(ChangeScope::Nodes(vec!["t1".into(), "s1".into(), "unassigned".into()])),
        with_scope(ChangeScope::Lists(vec!["a".into(), "later".into()])),
        with_scope(ChangeScope::Lists(vec!["a".into(), "empty".into()])),
        with_scope(ChangeScope::Nodes(vec!["nobody".into()])),
        with_scope(ChangeScope::Region("nowhere".into())),
        with_scope(ChangeScope::All),
        ChangeSet { scale: 29, ..with_scope(ChangeScope::Lists(vec!["a".into()])) },
    ];
    for change_set in &cases {
        let error = book.apply_change_set(change_set).unwrap_err();
        assert_eq!(error.code(), "invalid_value", "{change_set:?}");
        assert_eq!(book, before);
    }
    let error = book.apply_change_set(&cases[0]).unwrap_err();
    assert!(error.to_string().contains(&format!("meter {} in price list b", meter(0))), "{error}");
    let unknown = with_scope(ChangeScope::Lists(vec!["nope".into()]));
    assert_eq!(book.apply_change_set(&unknown).unwrap_err().code(), "unknown_node");
    // The same change on the nodes that can take it.
    let fine = ChangeSet { change: PriceChange::Fixed(dec("-0.25")), ..cases[0].clone() };
    let preview = book.with_change_set(&fine).unwrap();
    assert_eq!(book, before);
    assert_eq!(book.apply_change_set(&fine).unwrap(), ["a", "b"]);
    assert_eq!(book, preview);
    assert_eq!(amount(&book, "b", meter(0), at(100), Decimal::ONE), Some(dec("0.25")));
}

#[test]
fn change_sets_filter_by_category() {
    let compute = catalogue().iter().find(|info| info.category == Category::Compute).unwrap().id;
    let storage = catalogue().iter().find(|info| info.category == Category::Storage).unwrap().id;
    let custom = MeterId::from_u128(42);
    let prices = [compute, storage, custom].into_iter().map(|meter| (meter, per_unit(dec("1")))).collect();
    let mut book = PriceBook::new();
    book.put_list(list("l", vec![PriceVersion::own(at(0), prices)])).unwrap();
    let change_set = ChangeSet {
        id: "compute-up".into(),
        scope: ChangeScope::Lists(vec!["l".into()]),
        meters: MeterFilter::Categories(BTreeSet::from(["Compute".to_owned()])),
        change: PriceChange::Percent(dec("0.05")),
        effective: at(10),
        scale: 4,
        exempt_tenants: BTreeSet::new(),
    };
    book.apply_change_set(&change_set).unwrap();
    assert_eq!(amount(&book, "l", compute, at(10), Decimal::ONE), Some(dec("1.0500")));
    assert_eq!(amount(&book, "l", storage, at(10), Decimal::ONE), Some(dec("1")));
    assert_eq!(amount(&book, "l", custom, at(10), Decimal::ONE), Some(dec("1")));
    assert_eq!(book.change_instants(at(0), at(20)), [at(10)]);
}

#[test]
fn estimates_price_what_they_can() {
    let mut book = PriceBook::new();
    let package = MeterPrice::new("GB", PriceModel::Package { size: dec("100"), price: dec("3") });
    let mut prices = BTreeMap::from([(meter(1), package)]);
    prices.insert(meter(0), per_unit(dec("0.046")));
    book.put_list(list("region", vec![PriceVersion::own(at(0), prices)])).unwrap();
    book.put_list(list("tenant", vec![own(at(0), &[(0, dec("0.04"))])])).unwrap();
    book.assign(PriceScope::Region("local".into()), "region").unwrap();
    book.assign(PriceScope::Node("t1".into()), "tenant").unwrap();
    let items = [(meter(0), dec("744")), (meter(1), dec("250")), (meter(2), dec("5"))];
    let lines = book.estimate(&["s1", "t1"], Some("local"), Some("t1"), at(1), &items).unwrap();
    let lists_and_amounts: Vec<Option<(&str, Decimal)>> = lines
        .iter()
        .map(|line| line.price.as_ref().map(|price| (price.list.as_str(), price.amount)))
        .collect();
    assert_eq!(lists_and_amounts, [Some(("tenant", dec("29.76"))), Some(("region", dec("9"))), None]);
    assert!(!lines[2].is_priced());
    assert_eq!(lines[1].price.as_ref().unwrap().unit, "GB");
    assert_eq!(lines[0].price.as_ref().unwrap().scope, PriceScope::Node("t1".into()));
    assert_eq!(estimate_totals(&lines).unwrap(), BTreeMap::from([(Currency::USD, dec("38.76"))]));
    let error = book.estimate(&["s1"], None, None, at(1), &[(meter(0), dec("-1"))]).unwrap_err();
    assert_eq!(error.code(), "negative_quantity");
    // Before any version, nothing is priced.
    let early = book.estimate(&["s1"], Some("local"), None, at(-1), &items).unwrap();
    assert!(early.iter().all(|line| !line.is_priced()));
}

#[test]
fn the_book_round_trips_through_json() {
    let mut book = PriceBook::new();
    let tiers =
        vec![Tier { from: dec("0"), rate: dec("0.01") }, Tier { from: dec("10"), rate: dec("0.005") }];
    let prices = BTreeMap::from([
        (
            meter(0),
            MeterPrice::new(
                "h",
                PriceModel::Tiered(TierSchedule::new(TierMode::Volume, tiers, "m").unwrap()),
            ),
        ),
        (meter(1), MeterPrice::new("GB", PriceModel::Package { size: dec("10"), price: dec("1.5") })),
        (meter(2), MeterPrice::new("month", PriceModel::FlatFee { amount: dec("20") })),
    ]);
    let base = BookList {
        pass_through_uplift: Some(dec("0.08")),
        ..list("base", vec![PriceVersion::own(at(0), prices)])
    };
    book.put_list(base).unwrap();
    let mut child = PriceVersion::derived(at(5), "base", dec("0.2"));
    child.exempt_tenants.insert("t9".into());
    child.change_set = Some("cs".into());
    if let VersionContent::Derived { floor, overrides, .. } = &mut child.content {
        *floor = Some(dec("0"));
        overrides.insert(meter(2), MeterPrice::new("month", PriceModel::FlatFee { amount: dec("15") }));
    }
    book.put_list(BookList { tier_scope: TierScope::PriceList, ..list("child", vec![child]) }).unwrap();
    book.assign(PriceScope::Node("p1".into()), "child").unwrap();
    book.assign(PriceScope::Region("Local".into()), "base").unwrap();
    book.assign(PriceScope::Default, "base").unwrap();
    let text = serde_json::to_string_pretty(&book).unwrap();
    let loaded: PriceBook = serde_json::from_str(&text).unwrap();
    assert_eq!(loaded, book);
    assert!(text.contains(r#""kind": "derived""#), "{text}");
    assert_eq!(amount(&loaded, "child", meter(2), at(6), dec("1")), Some(dec("20")));
    assert_eq!(loaded.pass_through(&["s1", "p1"], None).map(|list| list.id.as_str()), Some("base"));
    // Loading checks what a put checks.
    let unknown_parent = text.replace(r#""parent": "base""#, r#""parent": "gone""#);
    assert!(serde_json::from_str::<PriceBook>(&unknown_parent).is_err());
    let unknown_list = text.replace(r#""list": "child""#, r#""list": "gone""#);
    assert!(serde_json::from_str::<PriceBook>(&unknown_list).is_err());
}
